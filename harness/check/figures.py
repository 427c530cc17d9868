"""A picture of a numeric finding's error: where the target's tensor and torch's differ.

:func:`pattern` says in words which of the patterns people recognise the error's *support*
(the elements where ``|target - torch| > tol``) shows: only the border (padding), every other
or every k-th row or column (stride), one whole channel (channel mixing), one batch item (batch
handling), else everywhere or scattered. :func:`write_figures` draws, per channel, the target's
values, torch's and ``|target - torch|`` side by side as small PNGs, and :func:`picture` does
both for a finding: the engine hands it the two tensors and stores what it returns in the
finding (``pattern``, ``figures``: paths relative to the report's folder), which the Markdown
and HTML reports then show (:func:`.class_report.figure_lines`, :mod:`.class_page`).

Drawn with matplotlib's object API on an Agg canvas: no pyplot, no global backend, no display."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from impl.app.checkpoint import atomic_write

FIGURES = "figures"  # the folder of a report's pictures of its errors, beside the report
WHOLE = 0.9  # the share of a region in error above which the error is "everywhere" in it
CHANNEL_SHARE = 0.5  # the share of one channel in error above which that channel is "whole"
DENSE = 0.5  # the share of a border band or of every k-th line in error for it to be the pattern
MAX_CHANNELS = 6  # pictures per finding: the channels with the largest error


def support(actual: Tensor, expected: Tensor, tol: float | Tensor) -> Tensor:
    """Where the error is: ``|actual - expected| > tol``, a NaN on one side only counting as error."""
    diff = (actual.double() - expected.double()).abs()
    both_nan = actual.isnan() & expected.isnan()
    return ~(diff <= torch.as_tensor(tol, dtype=torch.float64)) & ~both_nan


def pattern(actual: Tensor, expected: Tensor, tol: float | Tensor) -> list[str]:
    """The patterns of the error's support in words, for (N, C, H, W) tensors (others: only
    "everywhere" or "scattered"); an empty list when nothing is beyond ``tol``."""
    bad = support(actual, expected, tol)
    if not bool(bad.any()):
        return []
    if float(bad.double().mean()) >= WHOLE:
        return ["everywhere"]
    if bad.dim() != 4:
        return ["scattered"]
    items, channels = bad.flatten(1).any(1), bad.transpose(0, 1).flatten(1).any(1)
    words = []
    if bad.shape[0] > 1 and int(items.sum()) == 1:
        words.append(f"one batch item (item {int(items.nonzero()[0])})")
    if bad.shape[1] > 1 and int(channels.sum()) == 1:
        c = int(channels.nonzero()[0])
        whole = float(bad[items][:, c].double().mean()) >= CHANNEL_SHARE
        words.append(f"one whole channel (channel {c})" if whole else f"one channel (channel {c})")
    region = bad[items][:, channels]
    if float(region.double().mean()) < WHOLE:
        words += _spatial(region.any(0).any(0)) or ["scattered"]
    return words


def _spatial(plane: Tensor) -> list[str]:
    """The patterns of an (H, W) support: a border band, or every k-th row and/or column; each
    only where it is dense (most of the band or of the lines is in error, not a few points that
    happen to line up)."""
    h, w = plane.shape
    i, j = plane.nonzero().unbind(1)
    band = int(torch.minimum(torch.minimum(i, h - 1 - i), torch.minimum(j, w - 1 - j)).max()) + 1
    if band <= min(h, w) // 4:  # a band no wider than a quarter of the smaller side: an interior is left
        inside = torch.zeros_like(plane)
        inside[band : h - band, band : w - band] = True
        if float(plane[~inside].double().mean()) >= DENSE:
            return ["only the border" + (f" ({band} pixels wide)" if band > 1 else "")]
    rows, columns = _progression(plane.any(1)), _progression(plane.any(0))
    lattice = plane[rows or slice(None)][:, columns or slice(None)]
    if (rows or columns) and float(lattice.double().mean()) >= DENSE:
        return [_every(k.step, what) for k, what in ((rows, "row"), (columns, "column")) if k]
    return []


def _progression(lines: Tensor) -> slice | None:
    """The lines in error as ``slice(start, None, k)`` when they are exactly every k-th line
    (2 <= k <= half the lines) across the whole image; else None."""
    where = lines.nonzero().flatten().tolist()
    if len(where) < 2 or len(where) == len(lines):
        return None
    k = math.gcd(*[b - a for a, b in zip(where, where[1:])])
    spans = where[0] < k and where[-1] + k >= len(lines) and len(where) == (where[-1] - where[0]) // k + 1
    return slice(where[0], None, k) if 2 <= k and 2 * k <= len(lines) and spans else None


def _every(k: int, what: str) -> str:
    return f"every other {what}" if k == 2 else f"every {_ordinal(k)} {what}"


def _ordinal(k: int) -> str:
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def write_figures(
    actual: Tensor, expected: Tensor, tol: float | Tensor, folder: Path, stem: str, limit: int = MAX_CHANNELS
) -> list[Path]:
    """One PNG per channel (the ``limit`` channels with the largest error, of the batch item with
    the largest): the target's values, torch's, and ``|target - torch|`` with the support
    outlined. (N, C, H, W) tensors only; anything else gets no picture."""
    if actual.dim() != 4 or actual.shape != expected.shape or actual.numel() == 0:
        return []
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    diff = (a - e).abs().nan_to_num(nan=math.inf)
    n = int(diff.flatten(1).amax(1).argmax())
    worst = diff[n].flatten(1).amax(1)
    channels = sorted(worst.argsort(descending=True)[:limit].tolist())
    folder.mkdir(parents=True, exist_ok=True)
    bad = support(a, e, tol)[n]
    return [
        _draw(a[n, c], e[n, c], diff[n, c], bad[c], folder / f"{stem}_item{n}_channel{c}.png", n, c) for c in channels
    ]


def _draw(a: Tensor, e: Tensor, diff: Tensor, bad: Tensor, path: Path, n: int, c: int) -> Path:
    figure = Figure(figsize=(7.2, 2.4), dpi=72, layout="constrained")
    FigureCanvasAgg(figure)
    low, high = float(torch.minimum(a, e).nan_to_num().min()), float(torch.maximum(a, e).nan_to_num().max())
    panels: tuple[tuple[Tensor, str, str, float, float | None], ...]
    panels = ((a, "target", "viridis", low, high), (e, "torch", "viridis", low, high))
    finite = diff[diff.isfinite()]
    shown = diff.nan_to_num(posinf=float(finite.max()) if finite.numel() else 1.0)  # a NaN: the largest error
    panels += ((shown, "|target - torch|", "magma", 0.0, None),)
    for k, (values, title, cmap, vmin, vmax) in enumerate(panels):
        ax = figure.add_subplot(1, 3, k + 1)
        image = ax.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        if k == 2 and bool(bad.any()) and not bool(bad.all()):
            ax.contour(bad.double().numpy(), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        figure.colorbar(image, ax=ax, shrink=0.8)
    figure.suptitle(f"batch item {n}, channel {c}", fontsize=9)
    return atomic_write(path, lambda f: figure.savefig(f, format="png"))


def picture(actual: Tensor, expected: Tensor, tol: float | Tensor, folder: Path, stem: str) -> dict[str, list[str]]:
    """What a numeric finding carries: ``pattern`` (words) and ``figures`` (PNGs written under
    ``folder / FIGURES``, named relative to ``folder``, the report's folder)."""
    paths = write_figures(actual, expected, tol, folder / FIGURES, stem)
    return {"pattern": pattern(actual, expected, tol), "figures": [p.relative_to(folder).as_posix() for p in paths]}
