"""``n2n bench``'s class case: the test suite's submissions (tests/data/submissions, the
hand-written ones and those ``_make_bugs.py`` generates) checked as one class with
``--quick``, at 1 and at 2 jobs, from a cold cache each time; the seconds of each run, the
speed-up, and each submission's own wall and CPU seconds. Runs in a source checkout only
(the submissions are the tests'); nothing here imports ``tests/``: the generator runs as a script."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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
        if folder.is_dir() and folder.name.startswith("ok_"):
            shutil.copytree(folder, dest / folder.name)
    for folder in sorted(d for d in dest.iterdir() if d.is_dir())[limit:] if limit else []:
        shutil.rmtree(folder)
    return dest


def class_times(
    jobs_list: tuple[int, ...] = JOBS, settings: Settings = SETTINGS, limit: int | None = None
) -> dict[str, Any]:
    """Seconds to check the suite's submissions as a class at each number of jobs, the speed-up
    of the last over the first, and the median seconds (wall, CPU) of one submission at the first."""
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
    how = ["--quick"] * settings.quick + ([f"--blocks {settings.blocks}"] if settings.blocks else [])
    return {
        "submissions": len(run.records),
        "seconds": seconds,
        "speedup": seconds[jobs_list[0]] / seconds[jobs_list[-1]],
        "one_wall": statistics.median(s for s, _ in per),
        "one_cpu": statistics.median(c for _, c in per),
        "settings": ", ".join([*how, f"--time-limit {settings.time_limit:g}"]),
    }


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
    return lines
