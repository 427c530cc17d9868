"""Names the shape of a wrong answer: a constant factor (which one), a sign, a transposition, a
shift by one, a wrong shape, or one of a block's known bugs, whose wrong answers torch computes
(:mod:`harness.check.specs`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..parity import mismatch

RESIDUAL = 1e-5  # a factor explains the error when what is left is this small (float32 inputs too)


def _close(a: Tensor, b: Tensor) -> bool:
    if a.shape != b.shape or b.numel() == 0:
        return False
    scale = max(b.abs().max().item(), 1e-30)
    return (a - b).abs().max().item() <= RESIDUAL * scale


def factor_names(config: dict[str, Any], quantity: str, out_shape: tuple[int, ...]) -> dict[float, str]:
    """The constant factors a bug is known to introduce, for this configuration."""
    n = config.get("batch", 1)
    pixels = out_shape[-1] * out_shape[-2] if len(out_shape) >= 2 else 1
    names = {-1.0: "sign"}
    if quantity in ("loss gradient", "loss value"):
        numel = 1
        for s in out_shape:
            numel *= s
        names.setdefault(float(numel), "not divided by the element count")
        names.setdefault(numel / n, "normalised by the batch only")
        names.setdefault(float(n), "normalised by C*H*W only")
    else:
        for value, name in (
            (1 / n, "divided by the batch size"),
            (float(n), "multiplied by the batch size"),
            (1 / (n * pixels), "mean instead of sum"),
            (1 / pixels, "divided by the pixel count"),
        ):
            names.setdefault(value, name)  # where two coincide (a batch of one), the first is kept
    names.setdefault(2.0, "factor 2")
    names.setdefault(0.5, "factor 0.5")
    return names


def diagnose(
    actual: Tensor | None,
    expected: Tensor,
    config: dict[str, Any],
    quantity: str,
    alternatives: dict[str, Tensor],
    initial: Tensor | None = None,
    output_shape: tuple[int, ...] | None = None,
) -> str | None:
    """The diagnosis of ``actual`` against torch's ``expected``, or None when the error has no
    known shape. ``alternatives`` maps a bug to torch's result with that bug; ``initial`` is the
    gradient buffer as it was before the first backward; ``output_shape`` the block's output's
    (for factors that count its pixels)."""
    if actual is None:
        return "no input gradient returned" if quantity == "input gradient" else "nothing returned"
    for name, alternative in alternatives.items():  # first: an ignored argument changes the shape too
        if alternative.shape == actual.shape and _close(actual.to(torch.float64), alternative.to(torch.float64)):
            return name
    if actual.shape != expected.shape:
        return "wrong shape"
    actual, expected = actual.to(torch.float64), expected.to(torch.float64)
    if initial is not None and initial.shape == actual.shape and bool(initial.ne(0).any()):
        if _close(actual - initial.to(torch.float64), expected):
            return "not initialised"
    energy = (expected * expected).sum().item()
    if energy > 0:
        k = (actual * expected).sum().item() / energy
        if _close(actual, k * expected):
            names = factor_names(config, quantity, output_shape or tuple(expected.shape))
            best = min(names, key=lambda f: abs(f - k) / abs(f))
            if abs(best - k) <= 1e-3 * abs(best):
                return names[best]
            if expected.numel() > 1:  # one number is a multiple of any other: say nothing then
                return f"wrong by a factor {k:.4g}"
    return _layout(actual, expected)


def _layout(actual: Tensor, expected: Tensor) -> str | None:
    if (
        expected.dim() >= 2
        and expected.transpose(0, 1).shape == actual.shape
        and _close(actual, expected.transpose(0, 1))
    ):
        return "transposed"
    if expected.dim() >= 2 and _close(actual, expected.transpose(-1, -2)):
        return "transposed"
    for dim in (-1, -2):
        if expected.dim() < 2 or expected.shape[dim] < 3:
            continue
        for shift in (1, -1):
            inner = [slice(None)] * expected.dim()
            inner[dim] = slice(1, -1)
            rolled = expected.roll(shift, dims=dim)
            if _close(actual[tuple(inner)], rolled[tuple(inner)]):
                return "shifted by one"
    return None


def compare(actual: Tensor | None, expected: Tensor, reduction: int) -> str | None:
    """Why ``actual`` is wrong, or None (a thin wrapper: a missing result is wrong too)."""
    if actual is None:
        return "nothing returned"
    return mismatch(actual, expected, reduction)
