"""Timing for ``n2n bench`` on a machine shared with other work: interleaved rounds, and rounds that
other processes disturbed are measured again.

A round runs every function once, in turn (each sees the same machine state). While it runs,
the CPU time that *other* processes take is read from ``/proc`` (the machine's busy ticks less
this process's own): above :data:`DISTURBED` (a tenth of one CPU), the round is set aside and
another one run, up to :data:`RETRIES` times the rounds asked for; then the least disturbed
rounds are taken. A parallel step disturbed on a 2-core machine is not slower by a little but
by a lot (each of its thousands of parallel regions waits for a thread the scheduler gave away),
so a median over disturbed rounds measures the neighbours, not the code. Where ``/proc`` cannot
be read, no round counts as disturbed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

DISTURBED = 10.0
"""Other processes' CPU ticks per second of a round above which it is measured again (the
kernel counts 100 ticks per CPU-second: 10 is a tenth of one CPU)."""

RETRIES = 3
"""At most this many times the rounds asked for are run to collect undisturbed ones."""

ROUNDS = {"measured": 0, "disturbed": 0}
"""Rounds run and rounds set aside as disturbed since the process started (for the report)."""


def _ticks() -> tuple[int, int]:
    """(busy ticks of the whole machine, ticks of this process); (0, 0) without /proc."""
    try:
        cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return 0, 0
    return sum(cpu) - cpu[3] - cpu[4], int(own[11]) + int(own[12])  # less idle and iowait; utime + stime


def timed_round(fns: Sequence[Callable[[], object]]) -> tuple[list[float], float]:
    """Seconds of each function, run once in turn, and the other processes' ticks per second
    meanwhile."""
    busy, own = _ticks()
    start, seconds = time.perf_counter(), []
    for f in fns:
        t = time.perf_counter()
        f()
        seconds.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    busy2, own2 = _ticks()
    return seconds, ((busy2 - busy) - (own2 - own)) / max(wall, 1e-9)


def medians(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Milliseconds, the median of ``repeats`` rounds that run every function in turn (after two
    warm-up rounds), disturbed rounds measured again (module docstring)."""
    for _ in range(2):
        for f in fns:
            f()
    rounds: list[tuple[float, list[float]]] = []
    while sum(others <= DISTURBED for others, _ in rounds) < repeats and len(rounds) < RETRIES * repeats:
        seconds, others = timed_round(fns)
        rounds.append((others, seconds))
    ROUNDS["measured"] += len(rounds)
    ROUNDS["disturbed"] += sum(others > DISTURBED for others, _ in rounds)
    chosen = sorted(rounds, key=lambda r: r[0])[:repeats]  # the undisturbed first, stable
    return [statistics.median(r[1][i] for r in chosen) * 1e3 for i in range(len(fns))]
