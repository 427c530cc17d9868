"""The checker's side of the child process: start it (isolated: :mod:`.isolation`), send one
request at a time, read the reply with a deadline on every byte, validate it
(:mod:`.replies`), restart the child for the next request after a hang, a crash or a reply that
cannot be trusted. The target's prints are captured within bounds (:class:`.capture.Capture`),
and nothing is written into the target's folder (no ``__pycache__``: the child runs with
bytecode writing off, from a scratch directory)."""

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

import torch

from . import isolation as iso
from . import protocol, replies
from .capture import Capture, escape

# starting Python and importing torch and the target can take longer than one check on a busy
# machine: the import gets at least this many seconds, whatever the per-check limit
LOAD_LIMIT = 30.0
CLOSE_GRACE = 2.0  # seconds a finished worker gets to exit cleanly (a coverage run saves its data then)
WAIT_LIMIT = 2.0  # seconds a child that closed its reply pipe gets to exit before it is killed
DEFAULT_TOTAL_TIME = 1800.0
CHECKER_ROOT = Path(__file__).resolve().parents[2]
READ_SIZE = 1 << 16


class Child:
    """One worker process for one target; ``ask`` returns its validated reply or a
    ``crash``/``timeout``/``invalid`` record. ``total_time`` bounds the whole run: once spent,
    every request answers a timeout at once. ``rule``: record the course rule's violations
    (:attr:`violations`)."""

    def __init__(
        self,
        target: dict[str, str],
        adapter: str | None,
        time_limit: float,
        total_time: float = DEFAULT_TOTAL_TIME,
        isolation: str = "auto",
        rule: bool = False,
    ) -> None:
        self.target, self.adapter, self.time_limit, self.rule = target, adapter, time_limit, rule
        self.isolation = iso.choose(isolation)
        self.total_time, self.end = total_time, time.monotonic() + total_time
        self.scratch = tempfile.TemporaryDirectory(prefix="n2n-check-", ignore_cleanup_errors=True)
        self.work = iso.make_scratch(Path(self.scratch.name))
        self.capture = Capture()
        self.reaper = iso.Reaper()
        self.proc: subprocess.Popen[bytes] | None = None
        self.loaded: dict[str, Any] | None = None
        self.violations: list[dict[str, Any]] = []  # the course rule's, from every reply
        self.out_of_time = False

    # starting --------------------------------------------------------------------------------
    def _argv(self) -> list[str]:
        limits = iso.limits(self.total_time + LOAD_LIMIT)
        argv = [sys.executable, "-m", "harness.check.worker", ",".join(f"{k}={v}" for k, v in limits.items())]
        # bound again over what bubblewrap hides (the home folder, /tmp), in case any lives there
        readable = [Path(self.target["root"]), CHECKER_ROOT, Path(sys.prefix), Path(sys.base_prefix)]
        readable += [Path(self.adapter).parent] if self.adapter else []
        hidden = [Path("/tmp"), iso.hidden_home() or Path("/tmp")]
        readable += [Path(p) for p in _import_paths() if any(Path(p).is_relative_to(h) for h in hidden)]
        return iso.command(self.isolation, argv, Path(self.scratch.name), readable)

    def _start(self) -> dict[str, Any]:
        env = iso.environment(Path(self.scratch.name), _import_paths(), torch.get_num_threads())
        self.proc = subprocess.Popen(
            self._argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.work,
            env=env,
            start_new_session=True,
            bufsize=0,
        )
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
        request = {"op": "load", "target": self.target, "adapter": self.adapter, "rule": self.rule}
        return self._exchange(request, max(self.time_limit, LOAD_LIMIT))

    def load(self) -> dict[str, Any]:
        """The target's blocks, or its import error / crash / timeout."""
        if self.loaded is None:
            self.loaded = self._start()
        return self.loaded

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            if self._left() <= 0:
                return self._spent()
            loaded = self._start()
            if "blocks" not in loaded:
                return loaded
        return self._exchange(request, self.time_limit)

    # one exchange ----------------------------------------------------------------------------
    def _left(self) -> float:
        return self.end - time.monotonic()

    def _spent(self) -> dict[str, Any]:
        self.out_of_time = True
        self.stop()
        return {"timeout": self.total_time}

    def _exchange(self, request: dict[str, Any], limit: float) -> dict[str, Any]:
        limit = min(limit, self._left())
        if limit <= 0:
            return self._spent()
        try:
            payload = self._talk(protocol.frame(protocol.encode_request(request)), time.monotonic() + limit)
        except TimeoutError:
            self.stop()
            self.out_of_time = self._left() <= 0  # the run's limit came first
            return {"timeout": limit}
        except EOFError as e:
            return self._crashed(str(e))
        except ValueError as e:
            self.stop()
            return {"crash": f"unreadable reply ({e})"}
        try:
            reply = protocol.decode_reply(payload)
        except Exception as e:  # noqa: BLE001 (a reply the checker cannot read is a crash of the target)
            self.stop()
            return {"crash": f"unreadable reply ({type(e).__name__}: {escape(str(e))})"}
        problem = replies.check(request, reply)
        if problem is not None:  # a forged or broken reply: the protocol may be out of step now
            self.stop()
            return {"invalid": problem}
        self.violations += reply.pop("rule", [])
        return reply

    def _talk(self, data: bytes, deadline: float) -> bytes:
        """Write ``data``, read one reply frame, draining the prints all along; TimeoutError at
        ``deadline``, EOFError when the child closes its reply pipe (half-way or before)."""
        assert self.proc is not None and self.proc.stdin and self.proc.stdout and self.proc.stderr
        reader, view = protocol.FrameReader(), memoryview(data)
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            sel.register(self.proc.stderr, selectors.EVENT_READ)
            sel.register(self.proc.stdin, selectors.EVENT_WRITE)
            while True:
                events = sel.select(max(0.0, deadline - time.monotonic()))
                if not events:
                    raise TimeoutError
                for key, _ in events:
                    if key.fileobj is self.proc.stdin:
                        view = self._write(view, sel)
                    elif key.fileobj is self.proc.stderr:
                        self._drain(sel)
                    elif (payload := self._read(reader)) is not None:
                        return payload

    def _write(self, view: memoryview, sel: selectors.BaseSelector) -> memoryview:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            view = view[os.write(self.proc.stdin.fileno(), view) :]
        except BlockingIOError:
            return view
        except OSError as e:  # the child closed its requests: it will never answer
            raise EOFError("the target's process closed its request pipe") from e
        if not view:
            sel.unregister(self.proc.stdin)
        return view

    def _read(self, reader: protocol.FrameReader) -> bytes | None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            chunk = os.read(self.proc.stdout.fileno(), READ_SIZE)
        except BlockingIOError:
            return None
        if not chunk:
            raise EOFError("it closed its reply pipe half-way through a reply" if reader.started else "")
        return reader.feed(chunk)

    def _drain(self, sel: selectors.BaseSelector) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            chunk = os.read(self.proc.stderr.fileno(), READ_SIZE)
        except BlockingIOError:
            return
        if chunk:
            self.capture.add(chunk)
        else:  # closed (a target can close its own stderr): stop watching it
            sel.unregister(self.proc.stderr)

    def _crashed(self, why: str) -> dict[str, Any]:
        assert self.proc is not None
        try:
            code: int | None = self.proc.wait(WAIT_LIMIT)
        except subprocess.TimeoutExpired:
            code = None
        self.stop()
        if code is None:
            return {"crash": why or "the target's process closed its reply pipe and did not exit"}
        signum = -code if code < 0 else code - 128 if self.isolation == "bwrap" and code > 128 else 0
        how = f"killed by {_signal_name(signum)}" if signum else f"exited with status {code}"
        return {"crash": f"the target's process {how}" + (f" ({why})" if why else "")}

    # ending ----------------------------------------------------------------------------------
    def stop(self, grace: float = 0.0) -> None:
        """End the child: after closing its requests, ``grace`` seconds to exit by itself (its
        end-of-input exit), then SIGKILL to its process group and to every process that descends
        from n2n since (``setsid`` or not: n2n is their subreaper)."""
        if self.proc is not None:
            if grace and self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()
            self.reaper.sweep()
            self._drain_rest()
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                with contextlib.suppress(OSError):
                    stream and stream.close()
        self.proc = None
        self.reaper.sweep()

    def _drain_rest(self) -> None:
        """What the dead child printed last (a traceback); bounded, in case a process the sweep
        could not reach still holds the pipe open."""
        assert self.proc is not None and self.proc.stderr is not None
        end = time.monotonic() + 0.2
        while time.monotonic() < end:
            try:
                chunk = os.read(self.proc.stderr.fileno(), READ_SIZE)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except OSError:
                return
            if not chunk:
                return
            self.capture.add(chunk)

    def prints(self) -> str:
        """What the target printed (stdout and stderr), bounded and escaped, for the report."""
        return self.capture.text()

    def close(self) -> None:
        """Stop the child, kill all it left, remove the scratch folder; after this no process of
        the target runs (the report is written only then)."""
        try:
            self.stop(grace=CLOSE_GRACE)
        finally:
            self.reaper.close()
            self.scratch.cleanup()


def _import_paths() -> list[str]:
    """The checker's folder, then the folders n2n imports from (not its working directory)."""
    skip = {"", str(CHECKER_ROOT), os.getcwd()}  # (a folder of the user's could shadow the target's modules)
    return [str(CHECKER_ROOT)] + [p for p in sys.path if p not in skip and os.path.isdir(p)]


def _signal_name(signum: int) -> str:
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
    reason = {"SIGXCPU": " (its CPU time limit)", "SIGXFSZ": " (its file size limit)"}.get(name, "")
    return name + reason
