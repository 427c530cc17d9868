"""A headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
commands on the browser's fd 3, replies on its fd 4, each message JSON ended by a NUL byte), with
the standard library only. Enough for a test to load a page, click where an element is, and read
what the page shows."""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
]


class Browser:
    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout, self.next_id, self.buffer = timeout, 0, b""
        self.profile = tempfile.mkdtemp(prefix="n2n-chromium-")
        to_browser, self.commands = _pipe_above(4)
        self.replies, from_browser = _pipe_above(4)

        def as_fd_3_and_4() -> None:  # in the browser's process, before exec; both ends are above 4
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        # close_fds=False: subprocess would close fds 3 and 4 after preexec_fn otherwise
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=as_fd_3_and_4,
            close_fds=False,
        )
        os.close(to_browser)
        os.close(from_browser)
        self.session = ""

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """One command; its result (events in between are skipped)."""
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        sid = self.session if session is None else session  # "": the browser itself
        if sid:
            message["sessionId"] = sid
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self.buffer:
            if not select.select([self.replies], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError(f"no reply from Chromium within {self.timeout} s")
            chunk = os.read(self.replies, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(message)

    def open(self, url: str) -> None:
        """A new page at ``url``, which later commands go to."""
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} still false after {self.timeout} s")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A mouse click (press and release) at the middle of the element ``selector`` finds."""
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView();"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = found
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        try:
            self.send("Browser.close", session="")
            self.proc.wait(10)
        except (OSError, RuntimeError, EOFError, TimeoutError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self.commands)
            os.close(self.replies)
            shutil.rmtree(self.profile, ignore_errors=True)


def _pipe_above(low: int) -> tuple[int, int]:
    """A pipe whose two ends are numbered above ``low`` (so that moving them to 3 and 4 clobbers neither)."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, low + 1))
        os.close(fd)
    return ends[0], ends[1]
