"""``n2n bench``: impl against its torch.nn twin, in one process, alternating the two.

Each case times the same work on both sides (warm-up, then ``repeats`` alternating rounds) and
reports medians and the impl/reference ratio. Layer cases run forward + backward with the input
gradient on both sides (the reference input requires grad, as inside a network). Peak memory of
a training step is measured in a fresh subprocess per side (resident memory sampled over the steps,
above what the process held before them).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import impl
import reference
import reference.models as ref_models
from impl.app.checkpoint import atomic_write
from impl.app.config import DEFAULT_BATCH_SIZE
from impl.functional import BLOCK_ROWS
from impl.models import course_network, unet

from .check.command import check


@dataclass
class Record:
    case: str
    threads: int
    impl_ms: float
    reference_ms: float
    ratio: float
    unit: str = "ms"


def _median_pair(run_impl: Callable[[], object], run_ref: Callable[[], object], repeats: int) -> tuple[float, float]:
    for _ in range(2):
        run_impl()
        run_ref()
    a, b = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        run_impl()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        run_ref()
        b.append(time.perf_counter() - t)
    return statistics.median(a) * 1e3, statistics.median(b) * 1e3


def _networks(name: str) -> tuple[Any, Any]:
    """The impl network ``name`` ('unet', or the course network's upsampling) and its torch.nn twin, same weights."""
    torch.manual_seed(0)
    if name == "unet":
        net, ref = unet(), ref_models.unet()
    else:
        net, ref = course_network(name), ref_models.course_network(name)
    ref.load_state_dict(net.state_dict())
    return net, ref


def layer_cases(batch: int, repeats: int, threads: int) -> list[Record]:
    """Forward + backward of every layer of both course networks, on its real input shape."""
    records = []
    for variant in ("nearest", "transpose"):
        net, ref = _networks(variant)
        x = torch.rand(batch, 3, 32, 32)
        for i, (mod, rmod) in enumerate(zip(net, ref)):
            out = mod(x)
            g = torch.randn(out.shape)
            xr = x.clone().requires_grad_(True)

            def run_impl(mod: Any = mod, x: Any = x, g: Any = g) -> None:
                mod(x)
                mod.backward(g)

            def run_ref(rmod: Any = rmod, xr: Any = xr, g: Any = g) -> None:
                rmod(xr).backward(g)
                xr.grad = None

            a, b = _median_pair(run_impl, run_ref, repeats)
            records.append(Record(f"{variant}[{i}] {mod!r} fwd+bwd, batch {batch}", threads, a, b, a / b))
            x = out.detach()
    return records


def step_case(name: str, batch: int, repeats: int, threads: int, size: int = 32) -> Record:
    """A full training step: forward, MSE loss, backward, Adam step."""

    net, ref = _networks(name)
    opt, ref_opt = impl.Adam(net.param(), lr=1e-4), reference.Adam(ref.parameters(), lr=1e-4)
    loss, ref_loss = impl.MSELoss(), reference.MSELoss()
    x, t = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)

    def run_impl() -> None:
        opt.zero_grad()
        loss(net(x), t)
        net.backward(loss.backward())
        opt.step()

    def run_ref() -> None:
        ref_opt.zero_grad()
        ref_loss(ref(x), t).backward()
        ref_opt.step()

    a, b = _median_pair(run_impl, run_ref, repeats)
    return Record(f"training step {name}, batch {batch}, {size}x{size}", threads, a, b, a / b)


def predict_case(name: str, repeats: int, threads: int, size: int = 512) -> Record:
    """Inference on one size x size image (impl forward; reference forward under no_grad)."""
    net, ref = _networks(name)
    x = torch.rand(1, 3, size, size)

    def run_ref() -> None:
        with torch.no_grad():
            ref(x)

    a, b = _median_pair(lambda: net(x), run_ref, repeats)
    return Record(f"predict {name} {size}x{size}", threads, a, b, a / b)


PEAK_RUNS = 3


def peak_memory_case(name: str, batch: int) -> Record:
    """Peak resident memory of three training steps above the memory before them (MiB, the median
    of :data:`PEAK_RUNS` fresh processes per side, :mod:`harness.bench_peak`)."""
    kib = {}
    for side in ("impl", "reference"):
        command = [sys.executable, "-m", "harness.bench_peak", name, str(batch), side]
        runs = [
            int(subprocess.run(command, capture_output=True, text=True, check=True).stdout) for _ in range(PEAK_RUNS)
        ]
        kib[side] = statistics.median(runs)
    mib = {k: v / 1024 for k, v in kib.items()}
    # no growth at all means "not measured", not 1.0
    ratio = mib["impl"] / mib["reference"] if min(kib.values()) > 0 else float("nan")
    return Record(
        f"peak memory of a training step {name}, batch {batch}", 1, mib["impl"], mib["reference"], ratio, unit="MiB"
    )


def scaling_case(batch: int = 128, steps: int = 10) -> dict[str, float]:
    """Images/s of course-network training steps at the same global batch: one process with 2
    threads against two gloo processes (torchrun's environment, loopback) with 1 thread each."""
    command = [sys.executable, "-m", "harness.bench_scaling", str(batch), str(steps)]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rates = {}
    for procs, threads in ((1, 2), (2, 1)):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        env.pop("WORLD_SIZE", None)
        if procs > 1:
            env["WORLD_SIZE"] = str(procs)
        runs = [
            subprocess.Popen(
                command,
                env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                stdout=subprocess.PIPE,
                text=True,
            )
            for r in range(procs)
        ]
        seconds = max(float(p.communicate()[0].split()[-1]) for p in runs)
        rates[f"{procs} process(es) x {threads} thread(s)"] = batch * steps / seconds
    return rates


def gflops_case(batch: int, repeats: int, threads: int) -> tuple[float, float, float]:
    """GFLOP/s of the largest course-network convolution (48->48, 3x3, 16x16, forward): impl's,
    torch's (oneDNN) and the machine's matmul on the products impl's engine runs for it (one
    (rows, 48) @ (48, 48) per tap over blocks of ``BLOCK_ROWS``, impl._gemm): the first over the
    third is the distance to what this way of computing can reach; the second shows the limit of
    the BLAS products themselves."""

    torch.manual_seed(0)
    conv, ref = impl.Conv2d(48, 48, 3, padding=1), reference.Conv2d(48, 48, 3, padding=1)
    x = torch.rand(batch, 48, 16, 16)
    flops = 2 * 48 * 48 * 9 * 16 * 16 * batch
    rows = BLOCK_ROWS
    a, b, out = torch.rand(rows, 48), torch.rand(48, 48), torch.empty(rows, 48)
    calls = max(1, round(flops / (2 * rows * 48 * 48)))

    def products() -> None:
        for _ in range(calls):
            out.addmm_(a, b, beta=0)

    def run_ref() -> None:
        with torch.no_grad():
            ref(x)

    conv_ms, ref_ms = _median_pair(lambda: conv(x), run_ref, repeats)
    mm_ms, _ = _median_pair(products, lambda: None, repeats)
    mm_flops = calls * 2 * rows * 48 * 48
    return flops / conv_ms / 1e6, flops / ref_ms / 1e6, mm_flops / mm_ms / 1e6


def machine() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # pragma: no cover - not Linux
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


def run(threads_list: list[int], batches: list[int], repeats: int, quick: bool = False) -> dict[str, Any]:
    records: list[Record] = []
    gflops: dict[int, tuple[float, float, float]] = {}
    previous = torch.get_num_threads()
    try:
        for threads in threads_list:
            torch.set_num_threads(threads)
            print(f"threads {threads}: {machine()}", file=sys.stderr)
            for batch in batches:
                records += layer_cases(batch, repeats, threads)
            for name in ("nearest", "transpose") + (() if quick else ("unet",)):
                records.append(step_case(name, batches[0], repeats, threads))
            for name in ("nearest",) + (() if quick else ("unet",)):  # at the batch the training runs use
                records.append(step_case(name, DEFAULT_BATCH_SIZE, repeats, threads))
            for name in ("nearest",) + (() if quick else ("transpose", "unet")):
                records.append(predict_case(name, repeats, threads, size=128 if quick else 512))
            gflops[threads] = gflops_case(batches[-1], repeats, threads)
    finally:
        torch.set_num_threads(previous)
    for name in ("nearest",) + (() if quick else ("transpose", "unet")):
        records.append(peak_memory_case(name, batches[0]))
    scaling = scaling_case(batch=16 if quick else 128, steps=2 if quick else 10)
    result = {"machine": machine(), "records": [asdict(r) for r in records], "gflops": gflops, "scaling": scaling}
    return result | {"check": check_times(quick)}


CHECKED = {
    "this repository's Miniproject_2 (impl: GEMM engine)": ".",
    "a submission looping over kernel taps (ok_positional_order)": "tests/data/submissions/ok_positional_order",
}


def check_times(quick: bool) -> dict[str, float]:
    """Seconds ``n2n check`` takes on the shipped blocks and on a submission written with Python
    loops over kernel taps (in a source checkout, where the test submissions are)."""
    root = Path(__file__).resolve().parents[1]
    times = {}
    for what, target in CHECKED.items():
        if (root / target).is_dir():
            start = time.perf_counter()
            check(str(root / target), quick=quick)
            times[what] = time.perf_counter() - start
    return times


def markdown(result: dict[str, Any]) -> str:
    rows = result["records"]
    time_rows = [r for r in rows if r["unit"] == "ms"]
    worst = max(r["ratio"] for r in time_rows)
    lines = [
        "# Benchmark: impl against torch.nn",
        "",
        f"Machine: {result['machine']}. Generated by `n2n bench` (also `tox -e bench`): impl and its",
        "torch.nn twin in the same process, alternating, warm-up first; medians. Ratio = impl / reference",
        "(below 1: impl is faster). Layer cases include the input gradient on both sides.",
        "",
        f"Worst time ratio: **{worst:.2f}**; targets: at most 1.0 for every case, peak memory at most 1.2.",
        "",
        "| case | threads | impl | reference | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        flag = " ✗" if (r["unit"] == "ms" and r["ratio"] > 1.0) or (r["unit"] == "MiB" and r["ratio"] > 1.2) else ""
        lines.append(
            f"| {r['case']} | {r['threads']} | {r['impl_ms']:.2f} {r['unit']} | {r['reference_ms']:.2f} {r['unit']} "
            f"| {r['ratio']:.2f}{flag} |"
        )
    lines += [
        "",
        "## Distance to the hardware limit",
        "",
        "The largest convolution (48->48, 3x3, 16x16, forward): impl, torch's oneDNN convolution, and",
        "this machine's matmul (BLAS) on the very products impl runs for it, one (rows, 48) @ (48, 48)",
        "per kernel tap. impl / matmul is how close the engine gets to its BLAS; oneDNN / matmul above",
        "1 means torch's direct convolution outruns any product of those shapes on this CPU.",
        "",
        "| threads | impl GFLOP/s | oneDNN GFLOP/s | matmul GFLOP/s | impl / matmul | oneDNN / matmul |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for threads, (conv, ref, mm) in sorted(result["gflops"].items()):
        lines.append(f"| {threads} | {conv:.1f} | {ref:.1f} | {mm:.1f} | {conv / mm:.2f} | {ref / mm:.2f} |")
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
    return "\n".join(lines) + "\n"


def main(
    out: str = "reports/bench.md",
    json_path: str | None = None,
    threads: list[int] | None = None,
    batches: list[int] | None = None,
    repeats: int = 15,
    quick: bool = False,
) -> dict[str, Any]:
    result = run(threads or [1, 2], batches or [64, 128], repeats, quick)
    atomic_write(out, lambda f: f.write(markdown(result).encode()))
    if json_path:
        atomic_write(json_path, lambda f: f.write(json.dumps(result["records"], indent=1).encode()))
    print(markdown(result))
    return result


__all__ = ["main", "run", "markdown", "Record"]
