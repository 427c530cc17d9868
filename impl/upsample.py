"""Upsampling: nearest-neighbour resampling with ``torch.nn.Upsample``'s semantics."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from . import functional as F
from ._checks import check_image, pair
from .errors import ShapeError, UnknownModeError
from .module import Module

MODES = ("nearest", "nearest-exact")


def _scale_pair(scale_factor: float | Sequence[float]) -> tuple[float, float]:
    values = tuple(scale_factor) if isinstance(scale_factor, Sequence) else (scale_factor, scale_factor)
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"scale_factor must be a number or a pair of numbers, got {scale_factor!r}")
    if not all(v > 0 and math.isfinite(v) for v in values):
        raise ValueError(f"scale_factor must be positive and finite, got {scale_factor!r}")
    return (float(values[0]), float(values[1]))


class Upsampling(Module):
    """Nearest-neighbour up- (or down-) sampling of the last two dims, as ``nn.Upsample``.

    Args:
        size: output (H, W), an int or a pair; exclusive with ``scale_factor``.
        scale_factor: a number or (h, w) pair, integer or not (0.5 downsamples); the output is
            ``floor(H * scale_factor)`` and pixels are picked with ``1 / scale_factor``.
        mode: ``'nearest'`` (``src = floor(dst * scale)``, torch's legacy rule) or
            ``'nearest-exact'`` (``src = floor((dst + 0.5) * scale)``, like PIL/scikit-image).

    Shape:
        (N, C, H, W) -> (N, C, H_out, W_out). A 3D input is refused: torch.nn.Upsample reads it
        as (N, C, L) and resamples L alone, not as an unbatched image; pass ``x.unsqueeze(0)``.

    Backward sums the gradients of all output pixels copied from each input pixel.

    Example:
        >>> Upsampling(scale_factor=2)(torch.empty(1, 3, 4, 4)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
    ) -> None:
        super().__init__()
        if size is not None and scale_factor is not None:
            raise ValueError(
                f"only one of size or scale_factor should be defined, got size={size!r}, scale_factor={scale_factor!r}"
            )
        if size is None and scale_factor is None:
            raise ValueError("either size or scale_factor should be defined")
        if mode not in MODES:
            raise UnknownModeError(f"Upsampling: mode must be one of {MODES}, got {mode!r}")
        self.size = size
        self.scale_factor = scale_factor
        self.mode = mode
        self._size = None if size is None else pair(size, "size")
        self._scale = None if scale_factor is None else _scale_pair(scale_factor)

    def forward(self, x: Tensor) -> Tensor:
        x = check_image(x, "Upsampling", None, None)
        if x.dim() == 3:
            raise ShapeError(
                f"Upsampling: got a 3D input of shape {tuple(x.shape)}; torch.nn.Upsample reads 3D as (N, C, L) "
                "and resamples only L, so impl refuses it rather than differ: pass a 4D (N, C, H, W) image "
                "(x.unsqueeze(0) for one)"
            )
        if x.shape[1] == 0:
            raise ShapeError(f"Upsampling: expected at least one channel, got input of shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        scales: tuple[float, float] | tuple[None, None] = (None, None)
        if self._scale is None:
            out_size: tuple[int, int] = self._size  # type: ignore[assignment]
        else:
            out_size = (math.floor(h * self._scale[0]), math.floor(w * self._scale[1]))
            scales = self._scale
        if min(out_size) < 1:  # (check_image already refused an empty input)
            raise ShapeError(f"Upsampling: input {(h, w)} and output {out_size} sizes must be greater than 0")
        exact = self.mode == "nearest-exact"
        rows = F.nearest_index(out_size[0], h, scales[0], exact, x.device)
        cols = F.nearest_index(out_size[1], w, scales[1], exact, x.device)
        repeats = (F.repeat_factor(rows, h), F.repeat_factor(cols, w))
        self._saved = (x.shape, rows, cols, repeats)
        if repeats[0] and repeats[1]:
            return F.repeat2d(x, *repeats)  # type: ignore[arg-type]
        return F.gather2d(x, rows, cols)

    def backward(self, grad_output: Tensor) -> Tensor:
        shape, rows, cols, repeats = self._require_saved()
        expected = (*shape[:-2], rows.shape[0], cols.shape[0])
        if tuple(grad_output.shape) != expected:
            raise ShapeError(
                f"Upsampling.backward: grad_output must have shape {expected}, got {tuple(grad_output.shape)}"
            )
        if repeats[0] and repeats[1]:
            return F.repeat2d_backward(grad_output, *repeats)
        return F.gather2d_backward(grad_output, shape, rows, cols)

    def extra_repr(self) -> str:
        parts = [f"size={self.size!r}" if self.size is not None else f"scale_factor={self.scale_factor!r}"]
        return ", ".join(parts + ([f"mode={self.mode!r}"] if self.mode != "nearest" else []))


NearestUpsampling = Upsampling
