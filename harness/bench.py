"""``n2n bench``: impl against its torch.nn twin, in one process, alternating them.

Each case times the same work on impl and on two torch references, the torch.nn twin on
contiguous tensors (as a network given an ordinary batch runs) and the same twin on channels-last
tensors and weights (torch's faster configuration for convolutions): warm-up, then ``repeats``
rounds that run the three in turn (rounds other processes disturbed measured again,
:mod:`harness.bench_timing`); medians, and the impl/reference ratios against both. Layer
cases run forward + backward with the input gradient on every side (the reference input requires
grad, as inside a network). Peak memory of a training step is measured in a fresh subprocess per
side (resident memory sampled over the steps, above what the process held before them). The 3x3
stride-1 convolutions have their own sections (:mod:`harness.bench_conv`); where each training
step's time goes, per operation, is :mod:`harness.bench_profile`'s; the targets and the Markdown
are :mod:`harness.bench_report`'s (issue 29's and the parallel efficiencies:
:mod:`harness.bench_parallel`).
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import impl
import reference
import reference.models as ref_models
from impl.app.checkpoint import atomic_write
from impl.app.config import DEFAULT_BATCH_SIZE
from impl.models import course_network, unet

from . import bench_conv, bench_profile, bench_timing
from .bench_class import class_times
from .bench_conv import LAST
from .bench_report import markdown
from .bench_timing import medians
from .check.command import check


@dataclass
class Record:
    """One case: milliseconds (or MiB) of impl, of the contiguous twin and of the channels-last twin
    (NaN where not measured), and the direct method's FLOPs of a convolution case (else 0)."""

    case: str
    threads: int
    impl_ms: float
    reference_ms: float
    ratio: float
    unit: str = "ms"
    reference_cl_ms: float = math.nan
    ratio_cl: float = math.nan
    flops: float = 0.0


def _record(case: str, ms: list[float], flops: float, threads: int) -> Record:
    a, b, cl = ms
    return Record(case, threads, a, b, a / b, reference_cl_ms=cl, ratio_cl=a / cl, flops=flops)


def _channels_last(ref: Any) -> Any:
    """The twin in torch's faster configuration: a copy with channels-last weights."""
    return copy.deepcopy(ref).to(memory_format=LAST)


def _last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=LAST) if x.dim() == 4 else x


def _networks(name: str) -> tuple[Any, Any]:
    """The impl network ``name`` ('unet', or the course network's upsampling) and its torch.nn twin, same weights."""
    torch.manual_seed(0)
    if name == "unet":
        net, ref = unet(), ref_models.unet()
    else:
        net, ref = course_network(name), ref_models.course_network(name)
    ref.load_state_dict(net.state_dict())
    return net, ref


def _conv_flops(mod: Any, x: torch.Tensor, out: torch.Tensor) -> float:
    """Forward and both gradients of a convolution layer, computed directly: 3 * 2 * pixels *
    C_in * C_out / groups * kh * kw, the pixels those of the side the kernel is applied at
    (a strided convolution's output, a transposed one's input: the smaller), 0 for any other layer."""
    if not isinstance(mod, (impl.Conv2d, impl.ConvTranspose2d)):
        return 0.0
    pixels = min(x[0, 0].numel(), out[0, 0].numel()) * x.shape[0]
    kh, kw = mod.kernel_size
    return 3 * 2.0 * pixels * mod.in_channels * mod.out_channels / mod.groups * kh * kw


def layer_cases(batch: int, repeats: int, threads: int) -> list[Record]:
    """Forward + backward of every layer of both course networks, on its real input shape."""
    records = []
    for variant in ("nearest", "transpose"):
        net, ref = _networks(variant)
        x = torch.rand(batch, 3, 32, 32)
        for i, (mod, rmod) in enumerate(zip(net, ref)):
            out = mod(x)
            g = torch.randn(out.shape)
            # detach: x itself is impl's input, and _last returns it as it is when it is channels-last
            xr, xl = x.clone().requires_grad_(True), _last(x).detach().requires_grad_(True)
            gl, rlast = _last(g), _channels_last(rmod)

            def run_impl(mod: Any = mod, x: Any = x, g: Any = g) -> None:
                mod(x)
                mod.backward(g)

            def run_ref(rmod: Any, xr: Any, g: Any) -> None:
                rmod(xr).backward(g)
                xr.grad = None

            sides = [run_impl, lambda r=rmod, a=xr, b=g: run_ref(r, a, b), lambda r=rlast, a=xl, b=gl: run_ref(r, a, b)]
            ms = medians(sides, repeats)
            flops = _conv_flops(mod, x, out)
            records.append(_record(f"{variant}[{i}] {mod!r} fwd+bwd, batch {batch}", ms, flops, threads))
            x = out.detach()
    return records


def step_case(name: str, batch: int, repeats: int, threads: int, size: int = 32) -> Record:
    """A full training step: forward, MSE loss, backward, Adam step (the channels-last twin gets
    channels-last images and weights)."""

    net, ref = _networks(name)
    last = _channels_last(ref)
    opt, loss = impl.Adam(net.param(), lr=1e-4), impl.MSELoss()
    ref_opt, last_opt = reference.Adam(ref.parameters(), lr=1e-4), reference.Adam(last.parameters(), lr=1e-4)
    ref_loss = reference.MSELoss()
    x, t = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
    xl, tl = _last(x), _last(t)

    def run_impl() -> None:
        opt.zero_grad()
        loss(net(x), t)
        net.backward(loss.backward())
        opt.step()

    def run_ref(model: Any, optimizer: Any, x: torch.Tensor, t: torch.Tensor) -> None:
        optimizer.zero_grad()
        ref_loss(model(x), t).backward()
        optimizer.step()

    ms = medians([run_impl, lambda: run_ref(ref, ref_opt, x, t), lambda: run_ref(last, last_opt, xl, tl)], repeats)
    return _record(f"training step {name}, batch {batch}, {size}x{size}", ms, 0.0, threads)


def predict_case(name: str, repeats: int, threads: int, size: int = 512) -> Record:
    """Inference on one size x size image (impl forward in eval mode; the references under no_grad)."""
    net, ref = _networks(name)
    net.eval()
    last = _channels_last(ref)
    x = torch.rand(1, 3, size, size)
    xl = _last(x)

    def run_ref(model: Any, x: torch.Tensor) -> None:
        with torch.no_grad():
            model(x)

    ms = medians([lambda: net(x), lambda: run_ref(ref, x), lambda: run_ref(last, xl)], repeats)
    return _record(f"predict {name} {size}x{size}", ms, 0.0, threads)


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


PROFILED = ("nearest", "transpose", "unet")


def profile_case(threads: int, quick: bool) -> list[dict[str, Any]]:
    """Per-operation profile of each network's training step at the training runs' batch
    (``quick``: the course network with nearest upsampling, one step)."""
    rows = []
    for name in PROFILED[:1] if quick else PROFILED:
        net, ref = _networks(name)
        rows += bench_profile.profile_rows(name, net, ref, DEFAULT_BATCH_SIZE, 1 if quick else 10, threads)
    return rows


def machine() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # pragma: no cover - not Linux
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


def conv_sections(batches: list[int], repeats: int, threads: int, quick: bool) -> dict[str, Any]:
    """The 3x3 stride-1 convolutions at ``threads``: the U-Net's as layer cases (at the training
    runs' batch; the course network's are among the layer cases), every strategy of each direction
    of both networks' timed in turn, and the machine's GEMM rate. ``quick``: one U-Net convolution,
    at the layer cases' batch."""
    unet_convs, batch = bench_conv.UNET_CONVS, DEFAULT_BATCH_SIZE
    if quick:
        unet_convs, batch = unet_convs[-3:-2], batches[0]
    shapes = [(batch, *conv) for conv in unet_convs] + [(batches[0], *conv) for conv in bench_conv.COURSE_CONVS]
    layers = [_record(*bench_conv.layer_case(batch, *conv, repeats), threads) for conv in unet_convs]
    strategies = [row for shape in shapes for row in bench_conv.strategy_rows(*shape, repeats, threads)]
    return {"layers": layers, "strategies": strategies, "gemm": bench_conv.gemm_rate(repeats)}


def run(threads_list: list[int], batches: list[int], repeats: int, quick: bool = False) -> dict[str, Any]:
    records: list[Record] = []
    strategies: list[dict[str, Any]] = []
    profile: list[dict[str, Any]] = []
    gemm: dict[int, float] = {}
    previous = torch.get_num_threads()
    bench_timing.ROUNDS.update(measured=0, disturbed=0)
    steps = [batches[0]] + ([DEFAULT_BATCH_SIZE] if DEFAULT_BATCH_SIZE != batches[0] else [])
    try:
        for threads in threads_list:
            torch.set_num_threads(threads)
            print(f"threads {threads}: {machine()}", file=sys.stderr)
            for batch in batches:
                records += layer_cases(batch, repeats, threads)
            convs = conv_sections(batches, repeats, threads, quick)
            records += convs["layers"]
            strategies += convs["strategies"]
            gemm[threads] = convs["gemm"]
            for batch in steps:  # the layer cases' batch and the training runs' default one
                for name in ("nearest", "transpose") + (() if quick else ("unet",)):
                    records.append(step_case(name, batch, repeats, threads))
            for name in ("nearest",) + (() if quick else ("transpose", "unet")):
                records.append(predict_case(name, repeats, threads, size=128 if quick else 512))
            profile += profile_case(threads, quick)
    finally:
        torch.set_num_threads(previous)
    for name in ("nearest",) + (() if quick else ("transpose", "unet")):
        records.append(peak_memory_case(name, batches[0]))
    errors = [row for shape in _error_shapes(batches, quick) for row in bench_conv.error_rows(*shape)]
    scaling = scaling_case(batch=16 if quick else 128, steps=2 if quick else 10)
    result = {
        "machine": machine(),
        "records": [asdict(r) for r in records],
        "strategies": strategies,
        "gemm": gemm,
        "errors": errors,
        "margins": bench_conv.suite_margins(10 if quick else SUITE_TRIALS),
        "scaling": scaling,
        "profile": profile,
        "rounds": dict(bench_timing.ROUNDS),
    }
    result["check"] = check_times(quick)
    if not quick:  # a few minutes: the class at 1 and 2 jobs
        result["class"] = class_times()
    return result


SUITE_TRIALS = 200
"""Random small convolutions over which the suite's margins are measured (the hypothesis ``ci``
profile's number of examples)."""


def _error_shapes(batches: list[int], quick: bool) -> list[tuple[int, int, int, int]]:
    """The convolutions whose float32 error is measured: every 3x3 stride-1 one of both networks
    (at the training runs' batch; ``quick``: one, at the layer cases' batch)."""
    if quick:
        return [(batches[0], *bench_conv.UNET_CONVS[-3])]
    convs = bench_conv.UNET_CONVS + [c for c in bench_conv.COURSE_CONVS if c not in bench_conv.UNET_CONVS]
    return [(DEFAULT_BATCH_SIZE, *conv) for conv in convs]


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
