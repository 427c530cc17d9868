"""``n2n bench``'s class case: the test suite's submissions (tests/data/submissions, the
hand-written ones and those ``_make_bugs.py`` generates) checked as one class: with ``--quick``
at 1 and at 2 jobs, from a cold cache each time (the seconds of each run, the speed-up), and once
with every check (no ``--quick``) at the most jobs, for the time one submission takes (median wall
and CPU seconds, its worker's included). Runs in a source checkout only (the submissions are the
tests'); nothing here imports ``tests/``: the generator runs as a script."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .check.classroom import Settings, check_class

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "tests" / "data" / "submissions"
JOBS = (1, 2)
# a hanging submission waits this long per check (the default, 30 s, would be most of the bench)
TIME_LIMIT = 5.0


SETTINGS = Settings(quick=True, time_limit=TIME_LIMIT)


def _class_folder(dest: Path, limit: int | None) -> Path:
    """The suite's submissions in ``dest`` (``limit``: only the first so many by name)."""
    subprocess.run([sys.executable, str(SUBMISSIONS / "_make_bugs.py"), str(dest)], check=True, capture_output=True)
    for folder in sorted(SUBMISSIONS.iterdir()):
        if (folder / "Miniproject_2").is_dir():  # the hand-written ones (the generator wrote the rest)
            shutil.copytree(folder, dest / folder.name, dirs_exist_ok=True)
    for folder in sorted(d for d in dest.iterdir() if d.is_dir())[limit:] if limit else []:
        shutil.rmtree(folder)
    return dest


def class_times(
    jobs_list: tuple[int, ...] = JOBS, settings: Settings = SETTINGS, limit: int | None = None, full_check: bool = True
) -> dict[str, Any]:
    """Seconds to check the suite's submissions as a class at each number of jobs, the speed-up
    of the last over the first, the median seconds (wall, CPU) of one submission at the first;
    ``full_check``: also the median of one submission checked with every check."""
    if not (SUBMISSIONS / "_make_bugs.py").is_file():
        return {}
    seconds, per = {}, []
    with tempfile.TemporaryDirectory(prefix="n2n-bench-class-") as tmp:
        folder = _class_folder(Path(tmp) / "class", limit)
        for jobs in jobs_list:
            start = time.perf_counter()
            run = check_class([], str(folder), Path(tmp) / f"out{jobs}", settings, jobs=jobs, progress=False)
            seconds[jobs] = time.perf_counter() - start
            if jobs == jobs_list[0]:  # one submission's own cost, alone on the machine
                per = [(r["seconds"], r["cpu_seconds"]) for r in run.records if "cpu_seconds" in r]
        full = replace(settings, quick=False) if full_check else None
        if full is not None:  # every check: what one student waits for
            run = check_class([], str(folder), Path(tmp) / "full", full, jobs=jobs_list[-1], progress=False)
            every = [(r["seconds"], r["cpu_seconds"]) for r in run.records if "cpu_seconds" in r]
    how = ["--quick"] * settings.quick + ([f"--blocks {settings.blocks}"] if settings.blocks else [])
    result = {
        "submissions": len(run.records),
        "seconds": seconds,
        "speedup": seconds[jobs_list[0]] / seconds[jobs_list[-1]],
        "one_wall": statistics.median(s for s, _ in per),
        "one_cpu": statistics.median(c for _, c in per),
        "settings": ", ".join([*how, f"--time-limit {settings.time_limit:g}"]),
    }
    if full is not None:
        walls = sorted(s for s, _ in every)
        result["full"] = {
            "jobs": jobs_list[-1],
            "median_wall": statistics.median(walls),
            "median_cpu": statistics.median(c for _, c in every),
            "slowest_wall": walls[-1],
        }
    return result


def markdown(result: dict[str, Any]) -> list[str]:
    """The section of bench.md (empty without a class result)."""
    if not result:
        return []
    lines = ["", f"## Time to check a class (`n2n check --each`, the suite's {result['submissions']} submissions)"]
    lines += ["", f"{result['settings']}; each submission in its own process, a cold cache each run.", ""]
    lines += ["| jobs | seconds | per submission |", "|---:|---:|---:|"]
    n = result["submissions"]
    lines += [f"| {jobs} | {s:.1f} | {s / n:.2f} |" for jobs, s in result["seconds"].items()]
    jobs = list(result["seconds"])
    one = f"{result['one_wall']:.1f} s wall, {result['one_cpu']:.1f} s of CPU, its worker's included"
    lines += ["", f"Speed-up at {jobs[-1]} jobs over {jobs[0]}: {result['speedup']:.2f}. One submission (median, at"]
    lines += [f"{jobs[0]} job): {one}."]
    if "full" in result:
        f = result["full"]
        lines += ["", f"Every check (no --quick), {f['jobs']} jobs: one submission takes {f['median_wall']:.1f} s wall"]
        lines += [f"(median; {f['median_cpu']:.1f} s of CPU), the slowest {f['slowest_wall']:.1f} s."]
    return lines
