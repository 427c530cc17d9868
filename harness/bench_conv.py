"""The 3x3 stride-1 convolutions of ``n2n bench``: the shipped networks' convolution layers beside
both torch twins, each engine strategy of each direction timed in one process (Winograd's two
tile sizes, the direct methods), their rounding error in float32 against the exact float64
result, and the machine's GEMM rate, all in "effective GFLOP/s": the direct method's
multiply-adds (2 * pixels * C * O * 9 per direction) over the time taken.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

import impl
import reference
from impl import _gemm

from .bench_timing import medians
from .parity import error_and_tolerance, tolerance

UNET_CONVS = [(3, 48, 32), (96, 48, 32), (48, 48, 16), (96, 48, 16), (48, 48, 8), (96, 48, 8), (48, 48, 4)]
"""(in, out, size) of every distinct 3x3 stride-1 convolution of ``unet()`` (width 48) on a 32x32
input: the top level's first and last, then each level's pair at half the size (the bottom's two
are alike)."""

COURSE_CONVS = [(48, 48, 16), (48, 3, 32)]
"""The same for ``course_network('nearest')`` (the convolution after each upsampling)."""

STRATEGIES = ("per tap", "patches", "winograd 2x2", "winograd 4x4")
"""The engine strategies set beside each other for a 3x3 stride-1 convolution (and the planned
one, when it is another): the direct per-tap and patch products, Winograd's two tiles."""

LAST = torch.channels_last


def direct_flops(batch: int, c: int, out_c: int, size: int) -> float:
    """One direction of a 3x3 'same' convolution, computed directly: 2 * N*H*W * C * O * 9."""
    return 2.0 * batch * size * size * c * out_c * 9


def _shape(batch: int, c: int, out_c: int, size: int) -> _gemm.Shape:
    return _gemm.Shape(batch, c, out_c, (3, 3), (1, 1), (1, 1), (1, 1), 1, (size, size), (size, size))


def _operands(batch: int, c: int, out_c: int, size: int) -> tuple[torch.Tensor, ...]:
    """float32 (x, weight, bias, output gradient), at torch's initial weight scale, channels-last
    activations (as the layers hand them to the engine)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c, size, size, generator=g).contiguous(memory_format=LAST)
    w = torch.randn(out_c, c, 3, 3, generator=g) / (3 * c**0.5)
    b = torch.randn(out_c, generator=g) / (3 * c**0.5)
    grad = torch.randn(batch, out_c, size, size, generator=g).contiguous(memory_format=LAST)
    return x, w, b, grad


def _engine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, grad: torch.Tensor) -> dict[str, Callable[..., Any]]:
    """Each direction of the convolution on the engine, as a function of the strategy."""
    one, size = (1, 1), (x.shape[2], x.shape[3])
    return {
        "forward": lambda st: _gemm.conv2d(x, w, b, one, one, one, 1, st),
        "input grad": lambda st: _gemm.conv2d_input_grad(grad, w, one, one, one, 1, size, st),
        "weight grad": lambda st: _gemm.conv2d_weight_grad(x, grad, w.shape, one, one, one, 1, st),
    }


def _by_torch(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, grad: torch.Tensor) -> dict[str, torch.Tensor]:
    x, w = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    y = torch.nn.functional.conv2d(x, w, b, padding=1)
    gx, gw = torch.autograd.grad(y, (x, w), grad)
    return {"forward": y.detach(), "input grad": gx, "weight grad": gw}


def strategy_rows(batch: int, c: int, out_c: int, size: int, repeats: int, threads: int) -> list[dict[str, Any]]:
    """Per direction: the planned strategy and each strategy's milliseconds, timed in turn."""
    rows = []
    s = _shape(batch, c, out_c, size)
    for direction, call in _engine(*_operands(batch, c, out_c, size)).items():
        planned = _gemm.plan(direction, s)
        names = [planned] + [n for n in STRATEGIES if n != planned and n in _gemm.strategies(direction, s)]
        with torch.no_grad():
            ms = medians([lambda n=n, call=call: call(n) for n in names], repeats)  # type: ignore[misc]
        rows.append(
            dict(
                conv=f"{c}->{out_c}, {size}x{size}, batch {batch}",
                threads=threads,
                direction=direction,
                planned=planned,
                ms=dict(zip(names, ms)),
                flops=direct_flops(batch, c, out_c, size),
            )
        )
    return rows


def _relative_error(actual: torch.Tensor, exact: torch.Tensor) -> float:
    """The parity suite's measure: max |actual - exact| over max(1, max |exact|)."""
    return ((actual.double() - exact).abs().max() / exact.abs().max().clamp(min=1)).item()


ROUNDED = ("per tap", "winograd 2x2", "winograd 4x4")
"""The engine strategies whose float32 error is measured: the direct method and Winograd's tiles."""


def error_rows(batch: int, c: int, out_c: int, size: int) -> list[dict[str, Any]]:
    """Per direction: the float32 error of torch's convolution, of the direct method ('per tap')
    and of each Winograd tile against the exact result (torch in float64 on the same operands),
    with the float32 tolerance the parity suite applies to this shape (``harness.parity``)."""
    single = _operands(batch, c, out_c, size)
    exact = _by_torch(*(t.double() for t in single))
    by_torch, engine = _by_torch(*single), _engine(*single)
    reduction = batch * max(c, out_c) * size * size  # max(x.numel(), y.numel()), as assert_parity
    rows = []
    with torch.no_grad():
        for direction, truth in exact.items():
            errors = {"torch": _relative_error(by_torch[direction], truth)}
            errors |= {name: _relative_error(engine[direction](name), truth) for name in ROUNDED}
            rows.append(
                dict(
                    conv=f"{c}->{out_c}, {size}x{size}, batch {batch}",
                    direction=direction,
                    errors=errors,
                    tolerance=tolerance(torch.float32, reduction),
                )
            )
    return rows


def layer_case(batch: int, c: int, out_c: int, size: int, repeats: int) -> tuple[str, list[float], float]:
    """Conv2d(c, out_c, 3, padding=1) forward + backward (input gradient too) on impl, on the torch
    twin with contiguous tensors and on the twin with channels-last ones (torch's faster
    configuration): (case, [impl, contiguous, channels-last] milliseconds, direct FLOPs)."""
    torch.manual_seed(0)
    mod = impl.Conv2d(c, out_c, 3, padding=1)
    ref = reference.Conv2d(c, out_c, 3, padding=1)
    ref.load_state_dict(mod.state_dict())
    ref_last = reference.Conv2d(c, out_c, 3, padding=1).to(memory_format=LAST)  # type: ignore[call-overload]
    ref_last.load_state_dict(mod.state_dict())
    # each side's input and output gradient in the layout its network hands over: impl's blocks
    # keep activations and gradients channels-last, the contiguous twin contiguous
    x = torch.rand(batch, c, size, size).contiguous(memory_format=LAST)
    g = torch.randn(batch, out_c, size, size)
    xr, xl = x.contiguous().requires_grad_(True), x.clone().requires_grad_(True)
    gl = g.contiguous(memory_format=LAST)

    def run_impl() -> None:
        mod(x)
        mod.backward(gl)

    def run_ref(m: Any, xin: torch.Tensor, gin: torch.Tensor) -> None:
        m(xin).backward(gin)
        xin.grad = None

    ms = medians([run_impl, lambda: run_ref(ref, xr, g), lambda: run_ref(ref_last, xl, gl)], repeats)
    return f"{mod!r} fwd+bwd, {size}x{size}, batch {batch}", ms, 3 * direct_flops(batch, c, out_c, size)


def gemm_rate(repeats: int, rows: int = 16 * 32 * 32, depth: int = 48 * 9, cols: int = 48) -> float:
    """GFLOP/s of one MKL matmul of an im2col shape: (N*H*W, C*9) @ (C*9, O), 48 channels at 16x
    32x32 by default; what a direct method built on BLAS products can reach at best."""
    a, b = torch.rand(rows, depth), torch.rand(depth, cols)
    out = torch.empty(rows, cols)
    (ms,) = medians([lambda: out.addmm_(a, b, beta=0)], repeats)
    return 2.0 * rows * depth * cols / ms / 1e6


def suite_margins(trials: int, seed: int = 0) -> list[dict[str, Any]]:
    """The largest error / tolerance of the direct method and each Winograd tile (the strategies
    of :data:`ROUNDED`), per dtype and direction, over ``trials``
    random small convolutions of the parity suite's kind (1-3 images, 1-6 channels, sizes up to
    11, padding 0-3: where the tolerance, scaled by the tensor sizes, is tightest), each against
    torch in its own dtype exactly as the suite compares (``harness.parity``)."""
    rng = random.Random(seed)
    worst: dict[tuple[str, str, str], float] = {}
    for trial in range(trials):
        n, c, out_c = rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6)
        padding = (rng.randint(0, 3), rng.randint(0, 3))
        size = (rng.randint(max(1, 3 - 2 * padding[0]), 11), rng.randint(max(1, 3 - 2 * padding[1]), 11))
        for dtype in (torch.float32, torch.float64):
            g = torch.Generator().manual_seed(trial)
            x, w = (torch.randn(*s, generator=g, dtype=dtype) for s in ((n, c, *size), (out_c, c, 3, 3)))
            b = torch.randn(out_c, generator=g, dtype=dtype)
            xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
            y = torch.nn.functional.conv2d(xg, wg, b, padding=padding)
            grad = torch.randn(y.shape, generator=g, dtype=dtype)
            gx, gw = torch.autograd.grad(y, (xg, wg), grad)
            reduction, one = max(x.numel(), y.numel()), (1, 1)
            for st in ROUNDED:
                with torch.no_grad():
                    got = {
                        "forward": (_gemm.conv2d(x, w, b, one, padding, one, 1, st), y.detach()),
                        "weight grad": (_gemm.conv2d_weight_grad(x, grad, w.shape, one, padding, one, 1, st), gw),
                    }
                    if st == "per tap" or max(padding) <= 2:  # Winograd's input gradient: padding 2 - p
                        got["input grad"] = (_gemm.conv2d_input_grad(grad, w, one, padding, one, 1, size, st), gx)
                for direction, (actual, expected) in got.items():
                    err, tol = error_and_tolerance(actual, expected, reduction)
                    key = (st, str(dtype).removeprefix("torch."), direction)
                    worst[key] = max(worst.get(key, 0.0), err / tol)
    return [dict(strategy=t, dtype=d, direction=r, worst=v, trials=trials) for (t, d, r), v in sorted(worst.items())]
