"""Tolerances and the comparison of a result with torch's: one engine for the project's suite
(``tests/helpers.py``) and for ``n2n check``."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def tolerance(dtype: torch.dtype, reduction: int) -> float:
    """Absolute tolerance (relative to the largest expected value, at least 1).

    A sum of ``reduction`` products rounds with an error that grows about like
    ``sqrt(reduction) * eps`` (random-walk); 16x that leaves room for different summation
    orders. In float64 this is ~1e-14 * sqrt(K): a kernel that computed in float32 internally
    (error ~1e-7) fails it by six orders of magnitude.

    Winograd's minimal filtering (:mod:`impl._winograd`) also rounds in its transforms, whose
    entries reach 8 (A^T of F(4x4, 3x3)) and 5 (B^T) beside G's 1/24: its error is the direct
    method's times a constant set by the tile, not growing with ``reduction``, so the same bound
    holds with less of the 16x room to spare. How much is measured, not assumed: ``n2n bench``
    reports each strategy's error against this tolerance on the product's shapes and its largest
    share of it on the suite's own small shapes (``reports/bench.md``). The tolerance is the same
    for every strategy; it was not changed for Winograd, in float32 or float64.
    """
    return 16 * torch.finfo(dtype).eps * math.sqrt(max(reduction, 1))


def mismatch(actual: Tensor, expected: Tensor, reduction: int) -> str | None:
    """Why ``actual`` is not torch's ``expected`` (shape, dtype, device, inf/nan, or the largest
    error against the tolerance), or None when it is."""
    if actual.shape != expected.shape:
        return f"shape {tuple(actual.shape)} != torch's {tuple(expected.shape)}"
    if actual.dtype != expected.dtype:
        return f"dtype {actual.dtype} != torch's {expected.dtype}"
    if actual.device != expected.device:
        return f"device {actual.device} != torch's {expected.device}"
    finite = expected.isfinite()
    same_special = (actual == expected) | (actual.isnan() & expected.isnan())
    if not bool(same_special[~finite].all()):
        return f"inf/nan where torch has {expected[~finite].tolist()}"
    special = ~actual[finite].isfinite()
    if bool(special.any()):  # said as what it is: a NaN is no "error of inf"
        kind = "NaN" if bool(actual[finite].isnan().any()) else "inf"
        return f"{kind} at {int(special.sum())} of {special.numel()} values where torch's are finite"
    err, tol = error_and_tolerance(actual[finite], expected[finite], reduction)
    return None if err <= tol else f"max abs error {err:.3e} > tolerance {tol:.3e}"


def error_and_tolerance(actual: Tensor, expected: Tensor, reduction: int) -> tuple[float, float]:
    """(largest absolute error, tolerance scaled by the largest expected value, at least 1)."""
    if expected.numel() == 0:
        return 0.0, 0.0
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    return (err if math.isfinite(err) else math.inf), tolerance(actual.dtype, reduction) * scale


def max_errors(actual: Tensor, expected: Tensor) -> tuple[float, float]:
    """(max absolute error, max relative error) — used by the verification report."""
    if actual.numel() == 0:
        return 0.0, 0.0
    diff = (actual - expected).abs()
    return diff.max().item(), (diff / expected.abs().clamp(min=1e-30)).max().item()
