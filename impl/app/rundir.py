"""A run's folder: where it may be, who holds it, and its log.

- :func:`run_directory`: ``RUNS_DIR/NAME``, refused when ``NAME`` would leave ``RUNS_DIR``;
- :class:`RunLock`: an OS lock (``fcntl.flock``) on ``.n2n.lock`` in the folder, held for the whole
  run. The kernel drops it when its holder exits, however it exits (SIGKILL included), so a killed
  run never blocks the next one; a second run on a held folder is refused at once, naming the PID
  of the holder (written into the lock file);
- :class:`RunLog`: ``log.jsonl``, one JSON object per line.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from .errors import UserError, field_error

LOCK = ".n2n.lock"


def run_directory(runs_dir: str | Path, name: str) -> Path:
    """``runs_dir / name``, refusing a name that is empty or absolute or leads out of ``runs_dir``."""
    runs = Path(runs_dir)
    inside = Path(os.path.abspath(runs / name))
    if not name or Path(name).is_absolute() or Path(os.path.abspath(runs)) not in inside.parents:
        raise field_error("name", f"must be a folder name inside the runs folder {runs}, got {name!r}")
    return runs / name


class RunLock:
    """``with RunLock(directory):`` holds the run in ``directory`` (created if missing) for the block.

    Raises:
        UserError: another process holds it (the message names its PID).
    """

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / LOCK
        self.file: IO[str] | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "unknown"
            file.close()
            raise UserError(
                f"{self.path.parent} is in use by another n2n process (PID {holder}): wait for it to finish, "
                f"stop it, or pick another --name"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file
        return self

    def __exit__(self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        assert self.file is not None
        self.file.close()  # closing the last descriptor releases the lock; the file stays (no race on unlink)
        self.file = None


class RunLog:
    """``log.jsonl``: appends one JSON object per call, flushed at once.

    A resumed run (``keep_until`` a step) keeps the records up to that step and drops the rest (written
    after the checkpoint, or cut short by a crash); a new run (``keep_until=None``) starts empty. The
    file is rewritten only by :meth:`begin` (called by the first record, or before the first
    checkpoint), so a run that fails before its first step leaves the old log as it was.
    """

    def __init__(self, path: Path, keep_until: int | None) -> None:
        self.path, self.kept, self.begun = path, [], False
        self.last: dict[str, Any] = {}  # the last record kept: where a resumed run's averages start
        if keep_until is not None and path.is_file():
            for line in path.read_text().splitlines():
                record = _record(line)
                if record is not None and record["step"] <= keep_until:
                    self.kept.append(line)
                    self.last = record

    def begin(self) -> None:
        if not self.begun:
            self._write("w", "".join(line + "\n" for line in self.kept))
            self.begun = True

    def __call__(self, record: dict[str, Any]) -> None:
        self.begin()
        self._write("a", json.dumps(record) + "\n")

    def _write(self, mode: str, text: str) -> None:
        try:
            with self.path.open(mode) as f:
                f.write(text)
        except OSError as e:  # a full disk, most often
            raise UserError(f"could not write {self.path}: {e.strerror or e}") from None


def _record(line: str) -> dict[str, Any] | None:
    """A log line as a dict with an integer ``step``, or None (a line cut short by a crash)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(record, dict) and isinstance(record.get("step"), int)
    return record if ok else None
