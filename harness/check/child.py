"""The checker's side of the child process: start it, send one request at a time with a time
limit, turn a hang into a timeout and a death into a crash, restart it for the next request.
The target's prints go to a captured file, and nothing is written into the target's folder
(no ``__pycache__``: the child runs with bytecode writing off, from a scratch directory)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import protocol

# starting Python and importing torch and the target can take longer than one check on a busy
# machine: the import gets at least this many seconds, whatever the per-check limit
LOAD_LIMIT = 30.0
CLOSE_GRACE = 2.0  # seconds a finished worker gets to exit cleanly (a coverage run saves its data then)


class Child:
    """One worker process for one target; ``ask`` returns its reply or a ``crash``/``timeout`` record."""

    def __init__(self, target: dict[str, str], adapter: str | None, time_limit: float) -> None:
        self.target, self.adapter, self.time_limit = target, adapter, time_limit
        self.scratch = tempfile.TemporaryDirectory(prefix="n2n-check-")
        self.output = Path(self.scratch.name) / "output.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.loaded: dict[str, Any] | None = None

    def _start(self) -> dict[str, Any]:
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.check.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=out,
                cwd=self.scratch.name,
                env=env,
                start_new_session=True,
                bufsize=0,
            )
        request = {"op": "load", "target": self.target, "adapter": self.adapter}
        return self._exchange(request, max(self.time_limit, LOAD_LIMIT))

    def load(self) -> dict[str, Any]:
        """The target's blocks, or its import error / crash / timeout."""
        if self.loaded is None:
            self.loaded = self._start()
        return self.loaded

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            loaded = self._start()
            if "blocks" not in loaded:
                return loaded
        return self._exchange(request, self.time_limit)

    def _exchange(self, request: dict[str, Any], limit: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        try:
            protocol.write_frame(self.proc.stdin, protocol.encode_request(request))
        except (BrokenPipeError, OSError):
            return self._crashed()
        deadline = time.monotonic() + limit
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(max(0.0, deadline - time.monotonic())):
                self.stop()
                return {"timeout": limit}
        try:
            return protocol.decode_reply(protocol.read_frame(self.proc.stdout))
        except EOFError:
            return self._crashed()
        except Exception as e:  # noqa: BLE001 (a reply the checker cannot read is a crash of the target)
            self.stop()
            return {"crash": f"unreadable reply ({type(e).__name__}: {e})"}

    def _crashed(self) -> dict[str, Any]:
        assert self.proc is not None
        code = self.proc.wait()
        self.proc = None
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
        return {"crash": f"the target's process {how}"}

    def stop(self, grace: float = 0.0) -> None:
        """End the child: after closing its requests, ``grace`` seconds to exit by itself (its
        end-of-input exit), then SIGKILL to its whole process group, whatever the target started."""
        if self.proc is not None:
            if grace and self.proc.stdin is not None:
                self.proc.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def prints(self) -> str:
        """What the target printed (stdout and stderr), for the report."""
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def close(self) -> None:
        self.stop(grace=CLOSE_GRACE)
        self.scratch.cleanup()
