"""``n2n check`` over a class: many submissions, each checked in its own process, several at
once, each with a wall-clock limit, its reports written into ``OUT/<name>/`` and its result
cached by :mod:`.cache`'s key. A submission that hangs, crashes or cannot be imported gets an
``error`` record with the reason and never stops the others.

Each submission's process is forked from a server that has already imported torch and the
checker (multiprocessing's ``forkserver``, preloading this module): starting one costs a fork,
not an interpreter and a torch import, and no thread of the parent (a progress bar's) is ever
forked. The target's code still runs in that process's own child worker (:mod:`.child`)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import cache
from .class_folder import FIGURES, REPORTS, RESULT, manifest, read_record, write_class, write_record
from .command import (
    DEFAULT_TIME_LIMIT,
    UsageError,
    blocks_option,
    check,
    resolve,
    write_json,
    write_junit,
    write_markdown,
)

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


# which submissions ------------------------------------------------------------------------------
def submissions(targets: list[str], each: str | None, adapter: str | None) -> list[Submission]:
    """The class: the ``targets`` and every sub-folder of ``each`` holding a submission, by name."""
    if adapter is not None and not Path(adapter).is_file():
        raise UsageError(f"adapter: {adapter}: no such file", "adapter")
    paths = [Path(t) for t in targets] + (_class_folder(Path(each)) if each else [])
    found = sorted((_submission(p, adapter) for p in paths), key=lambda s: s.name)
    for a, b in zip(found, found[1:]):
        if a.name == b.name:
            raise UsageError(f"two submissions are named {a.name!r} ({a.target}, {b.target}); rename one")
    return found


def _class_folder(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise UsageError(f"each: {folder}: not a folder", "each")
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith((".", "__")) and _holds(d)]
    if not subs:
        raise UsageError(f"each: {folder}: no sub-folder holds Miniproject_2/model.py or model.py", "each")
    return subs


def _holds(folder: Path) -> bool:
    return (folder / "Miniproject_2" / "model.py").is_file() or (folder / "model.py").is_file()


def _submission(path: Path, adapter: str | None) -> Submission:
    """A folder (its own ``adapter.py`` is used unless ``adapter`` is given) or a ``.py`` file."""
    if not path.is_dir() and path.suffix != ".py":
        raise UsageError(f"{path}: a class holds folders and .py files (a module name has no files to cache by)")
    resolve(str(path))  # the same errors as a single check: no model.py, no such file
    folder = path if path.is_dir() else path.parent  # a file may import its neighbours: hash them too
    own = path / "adapter.py" if path.is_dir() else None
    chosen = adapter or (str(own) if own is not None and own.is_file() else None)
    name = path.resolve().name if path.is_dir() else path.stem
    return Submission(name, str(path), str(folder), chosen)


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N."""
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise UsageError(f"shard must be K/N with 1 <= K <= N, got {text!r}", "shard")
    return int(k), int(n)


def shard(subs: list[Submission], k: int, n: int) -> list[Submission]:
    """The K-th of N deterministic slices: the ``i``-th submission by name when ``i % N == K - 1``."""
    ordered = sorted(subs, key=lambda s: s.name)
    return [s for i, s in enumerate(ordered) if i % n == k - 1]


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
    for what, write in (("json", write_json), ("junit", write_junit), ("markdown", write_markdown)):
        write(report, out / REPORTS[what])
    findings = [asdict(f) | {"line": f.line()} for f in report.findings]
    return {
        "name": sub.name,
        "target": sub.target,
        "status": "pass" if report.ok else "FAIL",
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


def cached(folder: Path, key: str) -> dict[str, Any] | None:
    """The record in ``folder`` if it answers ``key`` and its reports are all there."""
    record = read_record(folder)
    if record is None or record.get("key") != key or not record.get("cacheable"):
        return None
    if record["status"] != "error" and not all((folder / name).is_file() for name in REPORTS.values()):
        return None
    return record


# the class -----------------------------------------------------------------------------------------------
def run_class(
    subs: list[Submission], settings: Settings, out: Path, jobs: int, progress: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """Every submission's record (by name) and how many came from the cache."""
    version, flags = cache.checker_version(), settings.flags()
    keys = {s.name: cache.key(Path(s.files), Path(s.adapter) if s.adapter else None, flags, version) for s in subs}
    records = {s.name: r for s in subs if (r := cached(out / s.name, keys[s.name])) is not None}
    todo = [s for s in subs if s.name not in records]
    runs = Runs(settings, out, keys, jobs)
    with tqdm(total=len(todo), desc="n2n check", unit="submission", file=sys.stderr, disable=not progress) as bar:
        try:
            for sub in todo:
                while len(runs.running) >= jobs:
                    records |= runs.collect(bar)
                runs.start(sub)
            while runs.running:
                records |= runs.collect(bar)
        finally:
            runs.stop_all()
    return [records[s.name] for s in sorted(subs, key=lambda s: s.name)], len(subs) - len(todo)


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


@dataclass
class ClassRun:
    """What a class check did: every submission's record (by name) and how many came from the cache."""

    records: list[dict[str, Any]]
    from_cache: int
    files: list[Path]

    @property
    def ok(self) -> bool:
        return all(r["status"] == "pass" for r in self.records)


def check_class(
    targets: list[str],
    each: str | None,
    out: Path,
    settings: Settings,
    jobs: int | None = None,
    part: tuple[int, int] | None = None,
    progress: bool = True,
) -> ClassRun:
    """Check the class (``part``: only the K-th of N shards) into ``out`` and write its class files."""
    jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if jobs < 1:
        raise UsageError(f"jobs must be >= 1, got {jobs}", "jobs")
    if settings.wall_limit <= 0:
        raise UsageError(f"wall_limit must be positive, got {settings.wall_limit}", "wall_limit")
    subs = submissions(targets, each, settings.adapter)
    if part is not None:
        subs = shard(subs, *part)
    records, from_cache = run_class(subs, settings, out, jobs, progress)
    about = manifest(records, settings.flags(), cache.checker_version(), part)
    return ClassRun(records, from_cache, write_class(out, records, about))
