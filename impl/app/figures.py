"""The report's figures, drawn with matplotlib's Agg backend (no display needed) and saved as PNG."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display

import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
from torch import Tensor  # noqa: E402

from .checkpoint import atomic_write  # noqa: E402
from .images import to_uint8  # noqa: E402


def _save(fig: plt.Figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over at most ``window`` values (shorter at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def loss_figure(
    path: str | Path, losses: dict[str, Sequence[float]], val_psnr: dict[str, Sequence[Sequence[float]]]
) -> Path:
    """Left: training loss per step of each run (moving average); right: validation PSNR."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, values in losses.items():
        window = max(1, len(values) // 50)
        left.plot(range(1, len(values) + 1), moving_average(values, window), label=name, linewidth=1)
    left.set(xlabel="step", ylabel="training MSE (moving average)", yscale="log", title="training loss")
    left.legend()
    for name, points in val_psnr.items():
        right.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    right.set(xlabel="step", ylabel="PSNR (dB)", title="held-out PSNR during training")
    right.legend()
    return _save(fig, path)


def crops_figure(path: str | Path, columns: dict[str, Sequence[Tensor]], crop: int = 96) -> Path:
    """One row per image, one column per method: the central ``crop x crop`` window, side by side."""
    names = list(columns)
    rows = len(next(iter(columns.values())))
    fig, axes = plt.subplots(rows, len(names), figsize=(2.1 * len(names), 2.2 * rows), squeeze=False)
    for c, name in enumerate(names):
        for r, image in enumerate(columns[name]):
            h, w = image.shape[-2:]
            top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            axes[r][c].imshow(to_uint8(image[:, top : top + crop, left : left + crop]), interpolation="nearest")
            axes[r][c].set_axis_off()
            if r == 0:
                axes[r][c].set_title(textwrap.fill(name, 20), fontsize=9)  # long names on two lines
    return _save(fig, path)
