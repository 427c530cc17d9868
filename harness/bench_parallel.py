"""How ``n2n bench``'s cases scale with threads: the parallel efficiency of impl and of torch side
by side, issue 29's targets as rows, and the per-operation profile of the training steps, each
computed here as data (:func:`efficiencies`, :func:`targets`) and written out as Markdown apart
(:func:`markdown`).

Parallel efficiency of a case at n threads: (its 1-thread time) / (n x its n-thread time); 1.0
means the n threads divided the time by n.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

SIDES = (("impl", "impl_ms"), ("torch", "reference_ms"), ("torch channels-last", "reference_cl_ms"))

STEP_BAR, UNET_STEP_BAR, PREDICT_BAR, PEAK_BAR = 1.0, 0.9, 1.0, 1.2
EFFICIENCY_SLACK = 0.05
"""Issue 29: every training step at most 1.0 x torch's time (the U-Net's 0.9) at every thread
count, U-Net inference at 512x512 at most 1.0, peak memory at most 1.2 x, and impl's parallel
efficiency on each training step at least torch's minus this."""

PROFILE_ROWS = 12
"""Operations shown per network and side in the profile tables (the most expensive at 1 thread;
the rest summed in one row)."""


def efficiencies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per time case measured at 1 thread and at n > 1 threads: each side's efficiency."""
    by_case: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in records:
        if r["unit"] == "ms":
            by_case[r["case"]][r["threads"]] = r
    rows = []
    for case, runs in by_case.items():
        for n in sorted(t for t in runs if t > 1 and 1 in runs):
            one, many = runs[1], runs[n]
            eff = {side: one.get(key, math.nan) / (n * many.get(key, math.nan)) for side, key in SIDES}
            rows.append(dict(case=case, threads=n, **eff))
    return rows


def _step(case: str) -> bool:
    return case.startswith("training step ")


def targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 29's bars as rows (name, threads, bar, measured, at most/at least, met, case)."""
    rows = []
    for r in records:
        case, bar = r["case"], math.nan
        if _step(case):
            bar = UNET_STEP_BAR if case.startswith("training step unet") else STEP_BAR
        elif case == "predict unet 512x512":
            bar = PREDICT_BAR
        elif case.startswith("peak memory"):
            bar = PEAK_BAR
        if not math.isnan(bar):
            name = f"{case}: {'memory' if r['unit'] == 'MiB' else 'time'} ratio"
            rows.append(dict(name=name, threads=r["threads"], bar=bar, measured=r["ratio"], most=True))
    for e in efficiencies(records):
        if _step(e["case"]):
            name, bar = f"{e['case']}: parallel efficiency", e["torch"] - EFFICIENCY_SLACK
            rows.append(dict(name=name, threads=e["threads"], bar=bar, measured=e["impl"]))
    for row in rows:
        most = row.pop("most", False)
        row["kind"] = "at most" if most else "at least"
        row["met"] = row["measured"] <= row["bar"] if most else row["measured"] >= row["bar"]
    return rows


def _efficiency_lines(records: list[dict[str, Any]]) -> list[str]:
    rows = efficiencies(records)
    if not rows:
        return []
    lines = [
        "## Parallel efficiency",
        "",
        "(1-thread time) / (n x n-thread time) of every case timed at both thread counts; 1.00: the",
        "threads divided the time by n. 'impl - torch': impl's efficiency less the contiguous twin's.",
        "",
        "| case | threads | impl | torch | torch channels-last | impl - torch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['threads']} | {r['impl']:.2f} | {r['torch']:.2f} "
            f"| {r['torch channels-last']:.2f} | {r['impl'] - r['torch']:+.2f} |"
        )
    return lines


def _target_lines(records: list[dict[str, Any]]) -> list[str]:
    rows = targets(records)
    if not rows:
        return []
    lines = [
        "## Targets (issue 29)",
        "",
        f"Training steps at most {STEP_BAR} x torch's time (the U-Net's {UNET_STEP_BAR}) at every thread count,",
        f"U-Net inference at most {PREDICT_BAR}, peak memory at most {PEAK_BAR}, impl's parallel efficiency on",
        f"each training step at least torch's minus {EFFICIENCY_SLACK}; against the contiguous twin.",
        "",
        "| target | threads | bar | measured | met |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        met = "yes" if r["met"] else "**no**"
        lines.append(f"| {r['name']} | {r['threads']} | {r['kind']} {r['bar']:.2f} | {r['measured']:.2f} | {met} |")
    return lines


def _profile_table(rows: list[dict[str, Any]], threads: list[int]) -> list[str]:
    """Operations of one network and side: ms per step at each thread count, the efficiency at
    the largest; the costliest :data:`PROFILE_ROWS` at 1 thread, the others summed."""
    ms: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        ms[(r["op"], r["direction"])][r["threads"]] = r["ms"]
    total = ms.pop(("step", ""), None)
    order = sorted(ms, key=lambda k: -ms[k].get(threads[0], 0.0))
    shown, others = order[:PROFILE_ROWS], order[PROFILE_ROWS:]
    table = [(f"{op} {direction}".strip(), ms[(op, direction)]) for op, direction in shown]
    if others:
        summed = {t: sum(ms[k].get(t, 0.0) for k in others) for t in threads}
        table.append((f"{len(others)} other operations", summed))
    table.append(("sum of the above" if total is None else "whole step", total or _sums(ms, threads)))
    n = threads[-1]
    head = " | ".join(f"{t} thread{'s' * (t > 1)}" for t in threads)
    lines = [f"| operation | {head} | efficiency at {n} |", "|---|" + "---:|" * (len(threads) + 1)]
    for name, times in table:
        cells = " | ".join(f"{times.get(t, math.nan):.2f}" for t in threads)
        one, many = times.get(threads[0], math.nan), times.get(n, math.nan)
        eff = one / (n * many) if many > 0 and n > threads[0] else math.nan
        lines.append(f"| {name} | {cells} | {'—' if math.isnan(eff) else f'{eff:.2f}'} |")
    return lines


def _sums(ms: dict[tuple[str, str], dict[int, float]], threads: list[int]) -> dict[int, float]:
    return {t: sum(v.get(t, 0.0) for v in ms.values()) for t in threads}


def _profile_lines(profile: list[dict[str, Any]]) -> list[str]:
    if not profile:
        return []
    lines = [
        "## Where a training step's time goes",
        "",
        "Milliseconds per training step (forward, MSE loss, backward, Adam step) of each operation.",
        "impl: every layer timed in each direction (its repr and input size; 'rest': the loss, the",
        "optimizer and the containers; medians over the steps). torch: the profiler's self CPU time",
        "of each ATen operation on the calling thread (a convolution's backward is one operation, both",
        "gradients; means over the steps, the profiler's own overhead included).",
    ]
    threads = sorted({r["threads"] for r in profile})
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in profile:
        groups[(r["network"], r["batch"], r["side"])].append(r)
    for (network, batch, side), rows in groups.items():
        lines += ["", f"### {network}, batch {batch}: {side}", "", *_profile_table(rows, threads)]
    return lines


def markdown(result: dict[str, Any]) -> list[str]:
    """The sections on threads: issue 29's targets, the efficiencies, the profile."""
    records = result["records"]
    parts = [_target_lines(records), _efficiency_lines(records), _profile_lines(result.get("profile", []))]
    lines: list[str] = []
    for part in parts:
        if part:
            lines += [*part, ""]
    return lines
