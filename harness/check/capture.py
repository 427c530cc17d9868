"""The target's text, made safe to show: its prints kept within bounds (the first and the last few
KB, with how much was left out between) and every string it sends escaped and shortened, so no
control character (a colour, a cursor move, a screen clear, a bidirectional override) reaches the
terminal or a report."""

from __future__ import annotations

import unicodedata

HEAD = TAIL = 8 << 10  # bytes of the target's prints kept from its start and from its end
MESSAGE_LIMIT = 300  # characters of one message (an exception's text, a note) shown


def escape(text: str, limit: int | None = MESSAGE_LIMIT, keep_lines: bool = False) -> str:
    """``text`` with every control, format or unassigned character written as ``\\xNN`` /
    ``\\uNNNN`` (newlines and tabs kept when ``keep_lines``), cut to ``limit`` characters."""
    out = []
    for ch in text:
        if keep_lines and ch in "\n\t":
            out.append(ch)
        elif unicodedata.category(ch)[0] in "CZ" and ch != " ":
            out.append(ascii(ch)[1:-1] if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    escaped = "".join(out)
    if limit is not None and len(escaped) > limit:
        escaped = escaped[: limit - 3] + "..."
    return escaped


class Capture:
    """What the target printed: the first :data:`HEAD` and the last :data:`TAIL` bytes, the count
    of those between. Memory stays bounded whatever it prints."""

    def __init__(self, head: int = HEAD, tail: int = TAIL) -> None:
        self.head_limit, self.tail_limit = head, tail
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        self.head += data[:room]
        data = data[max(room, 0) :]
        if not data:
            return
        self.tail += data
        extra = len(self.tail) - self.tail_limit
        if extra > 0:
            del self.tail[:extra]
            self.dropped += extra

    def text(self) -> str:
        """The kept prints, decoded and escaped (lines kept), with a marker where bytes were left out."""
        head = escape(self.head.decode(errors="replace"), None, keep_lines=True)
        tail = escape(self.tail.decode(errors="replace"), None, keep_lines=True)
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes of output left out ...]\n{tail}"
        return head + tail
