"""Messages between the checker and its child: length-prefixed frames. Requests (checker to
child) are pickles, since the child trusts the checker; replies are ``torch.save`` payloads read
with ``weights_only=True``, so a target's code can never make the checker run anything. The
checker reads a reply piece by piece as it comes (:class:`FrameReader`), so that its own loop
keeps the deadline: a frame that stops half-way is the target's crash, never a hang."""

from __future__ import annotations

import io
import pickle
import struct
import warnings
from typing import IO, Any

import torch

HEADER = struct.Struct("<Q")
MAX_REPLY = 1 << 30


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(frame(payload))
    stream.flush()


class FrameReader:
    """Collects one frame from the pieces a non-blocking read gives."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.size: int | None = None

    def feed(self, data: bytes) -> bytes | None:
        """The frame's payload once it is whole, else None; ValueError for a size past
        :data:`MAX_REPLY` (said in the header, before any of it is read)."""
        self.buffer += data
        if self.size is None and len(self.buffer) >= HEADER.size:
            (self.size,) = HEADER.unpack(self.buffer[: HEADER.size])
            if self.size > MAX_REPLY:
                raise ValueError(f"a reply of {self.size} bytes is more than the checker reads")
        if self.size is not None and len(self.buffer) >= HEADER.size + self.size:
            return bytes(self.buffer[HEADER.size : HEADER.size + self.size])
        return None

    @property
    def started(self) -> bool:
        return bool(self.buffer)


def read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the child closed its pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> bytes:
    (size,) = HEADER.unpack(read_exact(stream, HEADER.size))
    if size > MAX_REPLY:
        raise ValueError(f"a reply of {size} bytes is more than the checker reads")
    return read_exact(stream, size)


def encode_request(request: dict[str, Any]) -> bytes:
    return pickle.dumps(request)


def decode_request(payload: bytes) -> dict[str, Any]:
    return pickle.loads(payload)  # noqa: S301 (from the checker, never from the target)


def encode_reply(reply: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.save(reply, buffer)
    return buffer.getvalue()


def decode_reply(payload: bytes) -> dict[str, Any]:
    with warnings.catch_warnings():  # torch's warnings about what a reply holds (quantized ...): the checker judges it
        warnings.simplefilter("ignore")
        reply = torch.load(io.BytesIO(payload), weights_only=True)
    if not isinstance(reply, dict):
        raise ValueError("a reply that is not a dict")
    return reply
