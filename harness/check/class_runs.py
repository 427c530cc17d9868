"""One submission of a class, checked in its own process: its reports and its record written
into ``OUT/<name>/`` (:mod:`.class_folder`), a wall-clock limit enforced from outside, a hang or
a crash of that process turned into an ``error`` record with the reason.

Each process is forked from a server that has already imported torch and the checker
(multiprocessing's ``forkserver``, preloading this module): starting one costs a fork, not an
interpreter and a torch import, and no thread of the parent (a progress bar's) is ever forked.
The target's code still runs in that process's own child worker (:mod:`.child`)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .class_folder import REPORTS, RESULT, read_record, write_record
from .command import DEFAULT_TIME_LIMIT, UsageError, blocks_option, check, write_json, write_junit, write_markdown
from .figures import FIGURES

DEFAULT_WALL_LIMIT = 900.0
STOP_GRACE = 10.0  # seconds a stopped submission's process gets to end its own child worker


@dataclass(frozen=True)
class Submission:
    """One submission: its name in the class, what ``check`` is given, what the cache hashes."""

    name: str
    target: str
    files: str
    adapter: str | None = None


@dataclass(frozen=True)
class Settings:
    """The options every submission of a class is checked with."""

    adapter: str | None = None
    blocks: str | None = None
    seed: int = 0
    time_limit: float = DEFAULT_TIME_LIMIT
    quick: bool = False
    wall_limit: float = DEFAULT_WALL_LIMIT

    def flags(self) -> dict[str, Any]:
        """The options that change a result (in the cache key and the class manifest)."""
        only = blocks_option(self.blocks)
        return {
            "blocks": sorted(only) if only else None,
            "seed": self.seed,
            "time_limit": self.time_limit,
            "quick": self.quick,
        }


# one submission, in its own process -----------------------------------------------------------------
def check_one(sub: Submission, settings: Settings, folder: str, key: str, threads: int) -> None:
    """Check ``sub``, write its reports and its record into ``folder``. SIGTERM (the wall-clock
    limit) ends it through ``SystemExit``, so ``check``'s cleanup stops its worker too."""
    signal.signal(signal.SIGTERM, _terminated)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the worker's torch, started from this environment
    out = Path(folder)
    _clear(out)
    start, cpu = time.perf_counter(), _cpu_seconds()
    record = _checked(sub, settings, out)
    spent = {"seconds": round(time.perf_counter() - start, 3), "cpu_seconds": round(_cpu_seconds() - cpu, 3)}
    write_record(out, record | {"key": key} | spent)


def _cpu_seconds() -> float:
    """CPU time of this process and of the children it has waited for (its workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _clear(out: Path) -> None:
    """Remove the previous outputs, so a run that stops half-way leaves none that look current."""
    for name in [*REPORTS.values(), RESULT]:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / FIGURES, ignore_errors=True)


def _checked(sub: Submission, settings: Settings, out: Path) -> dict[str, Any]:
    try:
        report = check(sub.target, sub.adapter, settings.blocks, settings.seed, settings.time_limit, settings.quick)
    except UsageError as e:  # the target cannot be imported: as certain as any result, so cached
        return error_record(sub, str(e), cacheable=True)
    except Exception as e:  # noqa: BLE001 (the checker's own failure is this row's answer, not the class's)
        return error_record(sub, f"the checker failed: {type(e).__name__}: {e}", cacheable=False)
    for what, write in (("markdown", write_markdown), ("json", write_json), ("junit", write_junit)):  # pictures first
        write(report, out / REPORTS[what])
    findings = [asdict(f) | {"line": f.line()} for f in report.findings]
    return {
        "name": sub.name,
        "target": sub.target,
        "status": {0: "pass", 1: "FAIL"}.get(report.exit_status, "not checked"),
        "reason": "",
        "dtype": report.dtype,
        "table": report.table,
        "findings": findings,
        "notes": sorted(report.notes),
        "cacheable": True,
    }


def error_record(sub: Submission, reason: str, cacheable: bool) -> dict[str, Any]:
    """The record of a submission that could not be checked, with the reason."""
    return {
        "name": sub.name,
        "target": sub.target,
        "status": "error",
        "reason": reason.strip(),
        "dtype": "",
        "table": {},
        "findings": [],
        "notes": [],
        "cacheable": cacheable,
    }


class Runs:
    """The submissions being checked, one process each, each with its deadline."""

    def __init__(self, settings: Settings, out: Path, keys: dict[str, str], jobs: int) -> None:
        self.settings, self.out, self.keys = settings, out, keys
        self.threads = max(1, (os.cpu_count() or 1) // jobs)  # jobs x threads = the cores, no more
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(["__main__", __name__])  # a script imported once, not per submission
        self.running: dict[int, tuple[Submission, Any, float]] = {}

    def start(self, sub: Submission) -> None:
        folder = self.out / sub.name
        folder.mkdir(parents=True, exist_ok=True)
        args = (sub, self.settings, str(folder), self.keys[sub.name], self.threads)
        process = self.context.Process(target=check_one, args=args, name=f"n2n check {sub.name}", daemon=False)
        process.start()
        self.running[process.sentinel] = (sub, process, time.monotonic() + self.settings.wall_limit)

    def collect(self, bar: tqdm) -> dict[str, dict[str, Any]]:
        """Wait for a process to end or a deadline to pass; the records of those that are done."""
        soonest = min(deadline for _, _, deadline in self.running.values())
        multiprocessing.connection.wait(list(self.running), timeout=max(0.0, soonest - time.monotonic()))
        done = {}
        for sentinel, (sub, process, deadline) in list(self.running.items()):
            if process.exitcode is None and time.monotonic() < deadline:
                continue
            del self.running[sentinel]
            done[sub.name] = self._record(sub, process)
            bar.set_postfix_str(sub.name, refresh=False)
            bar.update()
        return done

    def _record(self, sub: Submission, process: Any) -> dict[str, Any]:
        folder = self.out / sub.name
        if process.exitcode is None:
            stop(process)
            reason = f"no result within {self.settings.wall_limit:g} s (the time limit of a whole submission)"
        elif process.exitcode == 0 and (record := read_record(folder)) is not None:
            return record
        else:
            code = process.exitcode
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            reason = f"the checker's process for this submission {how}"
        record = error_record(sub, reason, cacheable=False) | {"key": self.keys[sub.name]}
        write_record(folder, record)  # over whatever a stopped process may have left
        return record

    def stop_all(self) -> None:
        for _, process, _ in self.running.values():
            stop(process)
        self.running.clear()


def stop(process: Any) -> None:
    """SIGTERM (the process stops its worker and exits), then SIGKILL after :data:`STOP_GRACE`."""
    process.terminate()
    process.join(STOP_GRACE)
    if process.exitcode is None:
        process.kill()
        process.join()
