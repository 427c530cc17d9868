"""Whether a training run took torch's steps, judged by what it leaves: every loss finite and
one per step, and the parameters after each step within a tolerance derived from the steps'
own size (a loss hides a step 20 times too large when the loss is flat; the parameters do not)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

# share of the steps taken so far that a parameter may be off by (float32 blocks round every
# product, and the rounding compounds along the trajectory), and a floor relative to the
# parameters' scale for steps that round to nothing
STEP_SHARE = {torch.float64: 1e-6, torch.float32: 1e-2}
FLOOR = {torch.float64: 1e-12, torch.float32: 1e-5}


def losses_problem(losses: list[float], steps: int) -> str | None:
    """What is wrong with a training's losses before they are compared: too few, or not finite."""
    if len(losses) < steps:
        return f"{len(losses)} losses for {steps} steps"
    bad = next((i for i, x in enumerate(losses) if not math.isfinite(x)), None)
    return None if bad is None else f"the loss at step {bad + 1} is {losses[bad]}"


def params_problem(
    got: list[list[dict[str, Tensor]]], want: list[list[dict[str, Tensor]]], start: list[dict[str, Tensor]]
) -> str | None:
    """What is wrong with the parameters after each step (``got``: per step, per layer, by name)
    against torch's (``want``) from the same ``start``."""
    if len(got) < len(want):
        return f"parameters after {len(got)} steps of {len(want)}"
    before, moved = start, 0.0
    for i, (g_step, w_step) in enumerate(zip(got, want)):
        moved += max((float((w[k] - b[k]).abs().max()) for w, b in zip(w_step, before) for k in w), default=0.0)
        for layer, (g, w) in enumerate(zip(g_step, w_step)):
            for name, expected in w.items():
                problem = _param_problem(g.get(name), expected, moved)
                if problem:
                    return f"after step {i + 1}, layer {layer}'s {name} {problem}"
        before = w_step
    return None


def _param_problem(actual: Tensor | None, expected: Tensor, moved: float) -> str | None:
    if actual is None:
        return "is missing"
    if actual.shape != expected.shape:
        return f"has shape {tuple(actual.shape)}, torch's {tuple(expected.shape)}"
    if not bool(actual.isfinite().all()):
        return "holds NaN or inf"
    # float64's tolerance only when both are (a target may keep float32 parameters in a float64 run)
    dtype = torch.float64 if actual.dtype == expected.dtype == torch.float64 else torch.float32
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    err = float((actual.to(expected.dtype) - expected).abs().max()) if expected.numel() else 0.0
    tol = STEP_SHARE[dtype] * moved + FLOOR[dtype] * scale
    return None if err <= tol else f"is off by {err:.3g} after steps of {moved:.3g} in all (tolerance {tol:.3g})"
