"""``reports/bench.md`` from a ``n2n bench`` result: the targets as rows computed in one place
(:func:`targets`), the Markdown written from them and from the measurements (:func:`markdown`)."""

from __future__ import annotations

import math
from typing import Any

from . import bench_class, bench_parallel

CASE_TARGET = 1.0
"""Every time case: impl at most torch's time (the earlier performance issue's bar)."""

PEAK_TARGET = 1.2

TARGETS = [
    # (name, target ratio, which records): the bars of issue 20, against the contiguous twin
    ("U-Net training step, batch 16", 0.85, lambda c: c == "training step unet, batch 16, 32x32"),
    ("course network (nearest) training step, batch 16", 0.8, lambda c: c == "training step nearest, batch 16, 32x32"),
    ("course network (nearest) training step, batch 64", 0.8, lambda c: c == "training step nearest, batch 64, 32x32"),
    (
        "course network (transpose) training step, batch 16",
        0.8,
        lambda c: c == "training step transpose, batch 16, 32x32",
    ),
    (
        "course network (transpose) training step, batch 64",
        0.8,
        lambda c: c == "training step transpose, batch 64, 32x32",
    ),
    ("every 3x3 stride-1 convolution case (worst)", 1.0, lambda c: _stride1_3x3(c)),
    ("U-Net inference, 512x512", 0.9, lambda c: c == "predict unet 512x512"),
    ("peak memory of a training step (worst)", PEAK_TARGET, lambda c: c.startswith("peak memory")),
]


def _stride1_3x3(case: str) -> bool:
    """A convolution layer case of a Conv2d with a 3x3 kernel at the default stride and dilation
    (its repr names only what differs from the defaults)."""
    plain = "stride=" not in case and "dilation=" not in case
    return " Conv2d(" in f" {case}" and "kernel_size=(3, 3)" in case and plain


def targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target and thread count that has records: the worst ratio against the
    contiguous twin (the bar) and against the channels-last twin (stated), and whether it is met."""
    rows = []
    for name, bar, selects in TARGETS:
        chosen = [r for r in records if selects(r["case"])]
        for threads in sorted({r["threads"] for r in chosen}):
            worst = max((r for r in chosen if r["threads"] == threads), key=lambda r: r["ratio"])
            cl = worst.get("ratio_cl", math.nan)
            row = dict(name=name, threads=threads, target=bar, ratio=worst["ratio"], ratio_cl=cl, case=worst["case"])
            rows.append(row)
    for row in rows:
        row["met"] = row["ratio"] <= row["target"]
    return rows


def _ratio(value: float, bar: float) -> str:
    return "—" if math.isnan(value) else f"{value:.2f}" + (" ✗" if value > bar else "")


def _cases(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| case | threads | impl | reference | ratio | channels-last reference | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        bar = PEAK_TARGET if r["unit"] == "MiB" else CASE_TARGET
        cl = r.get("reference_cl_ms", math.nan)
        cl_text = "—" if math.isnan(cl) else f"{cl:.2f} {r['unit']}"
        lines.append(
            f"| {r['case']} | {r['threads']} | {r['impl_ms']:.2f} {r['unit']} | {r['reference_ms']:.2f} {r['unit']} "
            f"| {_ratio(r['ratio'], bar)} | {cl_text} | {_ratio(r.get('ratio_cl', math.nan), bar)} |"
        )
    return lines


def _targets(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Targets (issue 20)",
        "",
        "Each bar is a ratio against the contiguous twin; the channels-last twin's is stated beside it.",
        "",
        "| target | threads | bar | ratio | ratio (channels-last twin) | met | worst case |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for t in targets(result["records"]):
        cl = "—" if math.isnan(t["ratio_cl"]) else f"{t['ratio_cl']:.2f}"
        lines.append(
            f"| {t['name']} | {t['threads']} | {t['target']:.2f} | {t['ratio']:.2f} | {cl} "
            f"| {'yes' if t['met'] else '**no**'} | {t['case']} |"
        )
    return lines


def _gflops(result: dict[str, Any]) -> list[str]:
    gemm = {int(k): v for k, v in result.get("gemm", {}).items()}
    lines = [
        "## Effective GFLOP/s of the convolution cases",
        "",
        "The direct method's multiply-adds (2 * pixels * C_in * C_out * kh * kw per direction, three",
        "directions: forward, input gradient, weight gradient) over the time taken, for impl and both",
        "twins, beside this machine's GEMM rate measured in the same run (one MKL matmul of an im2col",
        "shape: (16*32*32, 48*9) @ (48*9, 48)). A rate above the GEMM rate is past the BLAS ceiling:",
        "fewer multiplications than the direct method (Winograd), or oneDNN's direct kernels.",
        "",
        "| case | threads | impl | reference | channels-last reference | GEMM |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["records"]:
        if r.get("flops", 0) > 0:
            rates = [r["flops"] / ms / 1e6 for ms in (r["impl_ms"], r["reference_ms"], r["reference_cl_ms"])]
            lines.append(
                f"| {r['case']} | {r['threads']} | {rates[0]:.1f} | {rates[1]:.1f} | {rates[2]:.1f} "
                f"| {gemm.get(r['threads'], math.nan):.1f} |"
            )
    return lines


def _strategies(result: dict[str, Any]) -> list[str]:
    lines = [
        "## The engine's strategies for each 3x3 stride-1 convolution",
        "",
        "Each direction of every 3x3 stride-1 convolution of the shipped networks, on impl's engine",
        "with every strategy forced in turn (same process, interleaved rounds, medians): milliseconds",
        "and effective GFLOP/s (direct FLOPs over time). 'planned' is what `impl._gemm.plan` chooses;",
        "'fastest' what this run measured. Winograd F(2x2, 3x3) and F(4x4, 3x3) run here beside the",
        "direct per-tap and patch products; the planner takes F(4x4) where its thresholds allow.",
        "",
        "| convolution | threads | direction | planned | fastest | strategy: ms (GFLOP/s) |",
        "|---|---:|---|---|---|---|",
    ]
    for row in result.get("strategies", []):
        ms = row["ms"]
        cells = ", ".join(f"{name}: {t:.2f} ({row['flops'] / t / 1e6:.0f})" for name, t in ms.items())
        fastest = min(ms, key=ms.get)
        lines.append(
            f"| {row['conv']} | {row['threads']} | {row['direction']} | {row['planned']} | {fastest} | {cells} |"
        )
    return lines


def _errors(result: dict[str, Any]) -> list[str]:
    rows = result.get("errors", [])
    if not rows:
        return []
    lines = [
        "## Rounding error in float32",
        "",
        "Each direction's float32 result against the exact one (torch in float64 on the same",
        "operands: randn activations and output gradients, weights at torch's initial scale), as the",
        "parity suite measures it: the largest absolute error over max(1, largest exact value). The",
        "tolerance is the one `harness.parity.tolerance` gives the parity suite for this shape",
        "(16 eps sqrt(K), K = the larger of input and output elements); 'margin' is the tolerance over",
        "F(4x4)'s error, 'F(4x4) / direct' its error over the direct method's.",
        "",
        "| convolution | direction | torch | direct (per tap) | F(2x2) | F(4x4) | F(4x4) / direct | tolerance "
        "| margin |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        e = r["errors"]
        direct, f4 = e["per tap"], e["winograd 4x4"]
        lines.append(
            f"| {r['conv']} | {r['direction']} | {e['torch']:.1e} | {direct:.1e} | {e['winograd 2x2']:.1e} "
            f"| {f4:.1e} | {f4 / direct:.0f} | {r['tolerance']:.1e} | {r['tolerance'] / f4:.0f} |"
        )
    return lines


def _margins(result: dict[str, Any]) -> list[str]:
    rows = result.get("margins", [])
    if not rows:
        return []
    trials = rows[0]["trials"]
    lines = [
        "## Share of the parity tolerance used on the suite's own shapes",
        "",
        f"The largest error / tolerance over {trials} random small convolutions of the parity suite's",
        "kind (1-3 images, 1-6 channels, sizes up to 11, padding 0-3; randn operands), each strategy",
        "forced and compared with torch in the same dtype exactly as the suite compares: the",
        "tolerance, scaled by the tensor sizes, is tightest here, and 1.0 would fail. The tolerance",
        "is the same for every strategy and was not changed for Winograd (float64 included).",
        "",
        "| strategy | dtype | forward | input grad | weight grad |",
        "|---|---|---:|---:|---:|",
    ]
    table: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        table.setdefault((r["strategy"], r["dtype"]), {})[r["direction"]] = r["worst"]
    for (strategy, dtype), worst in table.items():
        cells = " | ".join(f"{worst[d]:.3f}" if d in worst else "—" for d in ("forward", "input grad", "weight grad"))
        lines.append(f"| {strategy} | {dtype} | {cells} |")
    return lines


def _rounds(result: dict[str, Any]) -> list[str]:
    """How many timed rounds other processes disturbed (:mod:`harness.bench_timing`)."""
    rounds = result.get("rounds")
    if not rounds:
        return []
    return [
        f"Timed rounds: {rounds['measured']}, of which {rounds['disturbed']} were disturbed (other processes",
        "took more than a tenth of a CPU meanwhile) and measured again; each median is over the least",
        "disturbed rounds.",
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    rows = result["records"]
    time_rows = [r for r in rows if r["unit"] == "ms"]
    worst = max(r["ratio"] for r in time_rows)
    lines = [
        "# Benchmark: impl against torch.nn",
        "",
        f"Machine: {result['machine']}. Generated by `n2n bench` (also `tox -e bench`): impl and its",
        "torch.nn twin in the same process, alternating, warm-up first; medians. Two references: the",
        "twin on contiguous tensors (as a network given an ordinary batch runs) and the same twin on",
        "channels-last tensors and weights (torch's faster configuration for convolutions). Ratio =",
        "impl / reference (below 1: impl is faster). Layer cases include the input gradient on every side.",
        "",
        f"Worst time ratio (contiguous twin): **{worst:.2f}**; every case's bar: at most {CASE_TARGET}"
        f" (✗ above), peak memory at most {PEAK_TARGET}.",
        "",
        *_rounds(result),
        *_targets(result),
        "",
        *bench_parallel.markdown(result),
        "## Cases",
        "",
        *_cases(rows),
        "",
        *_gflops(result),
        "",
        *_strategies(result),
        "",
        *_errors(result),
        "",
        *_margins(result),
    ]
    if "scaling" in result:
        lines += [
            "",
            "## Data-parallel scaling (torch.distributed, gloo on loopback)",
            "",
            "Course-network training steps at the same global batch on this machine:",
            "",
            "| setup | images/s | speed-up |",
            "|---|---:|---:|",
        ]
        base = next(iter(result["scaling"].values()))
        for setup, rate in result["scaling"].items():
            lines.append(f"| {setup} | {rate:.0f} | {rate / base:.2f} |")
    if result.get("check"):
        lines += ["", "## Time to check a submission (`n2n check`, every check, child process included)", ""]
        lines += ["| target | seconds |", "|---|---:|"]
        lines += [f"| {what} | {seconds:.1f} |" for what, seconds in result["check"].items()]
    lines += bench_class.markdown(result.get("class", {}))
    return "\n".join(lines) + "\n"
