"""The maths of the blocks, each kernel written once (STYLE.md: gradients by duality).

- ``conv2d`` is one matrix product over the input patches (see :mod:`impl._gemm`).
- ``conv_transpose2d`` is its adjoint: the transposed product and a scatter-add (col2im). It is
  both the input gradient of ``conv2d`` and the forward of ``ConvTranspose2d``; ``conv2d`` is
  in turn the input gradient of ``ConvTranspose2d``.
- ``conv2d_weight_grad`` serves both layers (for the transpose, with input and output swapped).
- ``pad`` gathers with index tensors; ``pad_backward`` is its adjoint, a scatter-add.
- ``nearest_index`` gives the source pixel of every output pixel; its adjoint is a sum.

Only tensor methods and ``torch.arange``/``torch.empty`` are used (the EE-559 rule).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from . import _exact, _gemm, _winograd
from ._gemm import BLOCK_ROWS as BLOCK_ROWS  # the engine's row block, public for the benchmark

Pair = tuple[int, int]
Pad4 = tuple[int, int, int, int]  # (top, bottom, left, right)


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> Tensor:
    """Cross-correlation of a batched ``x`` (N, C, H, W) with ``weight`` (O, C/g, kh, kw): torch's
    own product where that is a plain one (bit for bit, :mod:`impl._exact`), else the fast engine."""
    if _exact.conv2d_applies(x, weight, groups):
        return _exact.conv2d(x, weight, bias, stride, padding, dilation)
    return _gemm.conv2d(x, weight, bias, stride, padding, dilation, groups)


def conv2d_keeping(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    earlier: Tensor | _winograd.Tiles | None = None,
) -> tuple[Tensor, Tensor | _winograd.Tiles]:
    """:func:`conv2d` and what :func:`conv2d_weight_grad` should be given for it: ``x``, or
    what the forward computed from ``x`` that the weight gradient would compute again (the
    engine's choice, :func:`impl._gemm.conv2d_keeping`; ``earlier``: what an earlier call
    returned, whose memory it may reuse)."""
    if _exact.conv2d_applies(x, weight, groups):
        return _exact.conv2d(x, weight, bias, stride, padding, dilation), x
    return _gemm.conv2d_keeping(x, weight, bias, stride, padding, dilation, groups, earlier)


def transposed_size(size: Sequence[int], kernel: Sequence[int], stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    """The smallest output of a transposed convolution (output_padding 0):
    ``(size - 1) * stride - 2 * padding + dilation * (kernel - 1) + 1`` per dimension."""
    h, w = ((i - 1) * s - 2 * p + d * (k - 1) + 1 for i, s, p, d, k in zip(size, stride, padding, dilation, kernel))
    return h, w


def conv_transpose2d(
    y: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    output_size: Pair,
) -> Tensor:
    """Adjoint of :func:`conv2d` in ``x`` (bias aside): ``y`` (N, C, H, W) with ``weight``
    (C, O/g, kh, kw) gives (N, O, *output_size). It is both the input gradient of ``conv2d``
    and the forward of ``ConvTranspose2d`` (torch's own product where that is a plain one)."""
    reach = transposed_size(y.shape[2:], weight.shape[2:], stride, padding, dilation)
    extra = (output_size[0] - reach[0], output_size[1] - reach[1])
    if _exact.conv_transpose2d_applies(y, weight, groups, stride, extra):
        return _exact.conv_transpose2d(y, weight, bias, stride, padding, dilation, output_size)
    return _gemm.conv2d_input_grad(y, weight, stride, padding, dilation, groups, output_size, bias=bias)


def conv2d_weight_grad(
    x: Tensor | _winograd.Tiles,
    grad_out: Tensor,
    weight_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
) -> Tensor:
    """Gradient of :func:`conv2d` w.r.t. its weight: ``grad_out`` times the input patches,
    summed over the batch and the output positions (those of ``grad_out``); ``x`` the input or
    what :func:`conv2d_keeping` returned in its stead."""
    return _gemm.conv2d_weight_grad(x, grad_out, weight_shape, stride, padding, dilation, groups)


def bias_grad(grad_out: Tensor) -> Tensor:
    """Gradient w.r.t. a per-channel bias of a (N, C, H, W) output: a sum, not a mean.
    (The spatial dims are contiguous in every layout used here: reduce them first.)"""
    return grad_out.sum(dim=(2, 3)).sum(0)


def _pad_index(size: int, before: int, after: int, mode: str, device: torch.device) -> Tensor:
    """Source index along one axis for each padded position (reflect/replicate/circular)."""
    i = torch.arange(-before, size + after, device=device)
    if mode == "reflect":
        return (size - 1) - ((size - 1) - i.abs()).abs()
    if mode == "replicate":
        return i.clamp(0, size - 1)
    return i % size  # circular: floor modulo wraps negative positions


def pad(x: Tensor, padding: Pad4, mode: str) -> Tensor:
    """Pad the last two dims of ``x`` by (top, bottom, left, right) as ``F.pad`` does."""
    top, bottom, left, right = padding
    h, w = x.shape[-2:]
    if mode == "zeros":
        out = x.new_zeros(*x.shape[:-2], h + top + bottom, w + left + right)
        out[..., top : top + h, left : left + w] = x
        return out
    rows = _pad_index(h, top, bottom, mode, x.device)
    cols = _pad_index(w, left, right, mode, x.device)
    if mode != "circular" and x.dim() == 4 and _exact.strides_like_channels_last(x):
        # ATen's reflection and replication pads keep a channels-last layout (its circular pad
        # does not), and the convolution after them reads the layout
        return gather2d(x.permute(0, 2, 3, 1), rows, cols, dims=(1, 2)).permute(0, 3, 1, 2)
    return gather2d(x, rows, cols)


def pad_backward(grad: Tensor, shape: torch.Size, padding: Pad4, mode: str) -> Tensor:
    """Adjoint of :func:`pad`: every padded position sends its gradient to its source."""
    top, bottom, left, right = padding
    h, w = shape[-2:]
    if mode == "zeros":
        return grad[..., top : top + h, left : left + w]
    rows = _pad_index(h, top, bottom, mode, grad.device)
    cols = _pad_index(w, left, right, mode, grad.device)
    return gather2d_backward(grad, shape, rows, cols)


def nearest_index(out_size: int, in_size: int, scale: float | None, exact: bool, device: torch.device) -> Tensor:
    """Source index of each output pixel, as ATen's ``upsample_nearest`` computes it.

    ATen works in float32: ``scale`` is ``1 / scale_factor`` when a scale factor was given,
    else ``in / out``, and the index is ``min(floor(i * scale), in - 1)`` (``nearest``) or
    ``min(floor((i + 0.5) * scale), in - 1)`` (``nearest-exact``).
    """
    i = torch.arange(out_size, device=device)
    if not exact and out_size == in_size:
        return i
    if not exact and out_size == 2 * in_size:
        return i.div(2, rounding_mode="floor")
    ratio = 1.0 / scale if scale is not None and scale > 0 else in_size / out_size
    ratio32 = torch.empty((), dtype=torch.float32, device=device).fill_(ratio)
    if exact:  # ATen: floorf((i + 0.5) * scale), the product in double, rounded to float
        pos = (i.to(torch.float64) + 0.5) * ratio32.to(torch.float64)
        src = pos.to(torch.float32).floor()
    else:  # ATen: floorf(i * scale), all in float
        src = (i.to(torch.float32) * ratio32).floor()
    return src.to(torch.int64).clamp(max=in_size - 1)


def gather2d(x: Tensor, rows: Tensor, cols: Tensor, dims: tuple[int, int] = (-2, -1)) -> Tensor:
    """``x[..., rows, :][..., cols]`` (``rows`` and ``cols`` along ``dims``): the forward of
    nearest resampling."""
    return x.index_select(dims[0], rows).index_select(dims[1], cols)


def gather2d_backward(grad: Tensor, shape: torch.Size, rows: Tensor, cols: Tensor) -> Tensor:
    """Adjoint of :func:`gather2d`: sums the gradient of every output that copied an input."""
    g = grad.new_zeros(*grad.shape[:-1], shape[-1]).index_add_(-1, cols, grad)
    return g.new_zeros(*shape).index_add_(-2, rows, g)


def repeat_factor(index: Tensor, in_size: int) -> int | None:
    """``r`` when ``index`` is ``[0]*r + [1]*r + ...`` (each input copied ``r`` times), else None."""
    out_size = index.shape[0]
    if out_size % in_size:
        return None
    r = out_size // in_size
    expected = torch.arange(out_size, device=index.device).div(r, rounding_mode="floor")
    return r if bool(index.equal(expected)) else None


def repeat2d(x: Tensor, rh: int, rw: int) -> Tensor:
    """``gather2d`` for whole-number repeats: a broadcast view and one copy, no indexing. A
    channels-last (N, C, H, W) input gives a channels-last output (the copy runs along C)."""
    if x.dim() == 4 and x.stride(1) == 1 and x.shape[1] > 1:
        n, c, h, w = x.shape
        xl = x.permute(0, 2, 3, 1)[:, :, None, :, None, :]
        return xl.expand(n, h, rh, w, rw, c).reshape(n, h * rh, w * rw, c).permute(0, 3, 1, 2)
    *lead, h, w = x.shape
    return x[..., :, None, :, None].expand(*lead, h, rh, w, rw).reshape(*lead, h * rh, w * rw)


def repeat2d_backward(grad: Tensor, rh: int, rw: int) -> Tensor:
    """Adjoint of :func:`repeat2d`: a sum over each ``rh x rw`` block, as strided adds, the
    columns first and then the rows (a reduction over short strided dims is far slower)."""
    out = _block_sum(_block_sum(grad, -1, rw), -2, rh)
    return out.clone() if out is grad else out


def _block_sum(g: Tensor, dim: int, r: int) -> Tensor:
    """Sum of each run of ``r`` neighbours along the negative ``dim``."""
    if r == 1:
        return g
    parts = g.unflatten(dim, (-1, r)).unbind(dim)
    out = parts[0] + parts[1]
    for part in parts[2:]:
        out += part
    return out
