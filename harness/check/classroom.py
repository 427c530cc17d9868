"""``n2n check`` over a class: which submissions (several targets, the sub-folders of one, a
shard of them), which of them the cache (:mod:`.cache`) already answers, the others checked
several at once, each in its own process (:mod:`.class_runs`), and the class files written
(:mod:`.class_folder`). A submission that hangs, crashes or cannot be imported gets an ``error``
row with the reason and never stops the others."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import cache
from .class_folder import REPORTS, manifest, read_record, write_class
from .class_runs import DEFAULT_WALL_LIMIT, Runs, Settings, Submission
from .command import UsageError, resolve

__all__ = ["DEFAULT_WALL_LIMIT", "ClassRun", "Settings", "Submission", "check_class", "parse_shard", "submissions"]


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
