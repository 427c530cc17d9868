"""Stride-2 3x3 convolutions as stride-1 products over the input's 2x2 stride phases (the
sub-pixel, or polyphase, form), in all three directions; a transposed convolution's forward is
the input gradient here.

Split the zero-padded input into its four phases, ``S[n, Q, R, (a, b)] = xpad[n, 2Q + a, 2R + b]``
(space to depth), channels-last, one row per frame position (n, Q, R) holding all four phases:
(rows, 4*C). Kernel tap (i, j) = (2*di + a, 2*dj + b) of output (Y, X) reads phase (a, b) at frame
row (Y + di, X + dj): each output is a 2x2 window of S. Of the window's 16 (offset, phase) pairs
only 9 are taps (i = 2*di + a < 3): offset (0, 0) uses all four phases, (1, 0) the two with
a = 0, (0, 1) the two with b = 0, (1, 1) phase (0, 0) only. With the phases stored in
:data:`ORDER`, each offset's phases are one contiguous run of columns, so a direction is four
GEMMs, one per offset, with K (or N) = 4C, 2C, 2C, C: exactly the direct method's
multiplications, in four products instead of nine (:mod:`impl._gemm`'s ``'per tap'``), and the
input gradient (a transposed convolution's forward) written in S's layout, each product
gathering from the output gradient rather than scatter-adding nine times into a zeroed buffer.
Going back from S to the input (depth to space) is one strided copy per phase.

Rows: the frame (Hq, Wq) = (ceil((H + 2p) / 2), ceil((W + 2p) / 2)) per image, images stacked;
the valid outputs (Hq - 1, Wq - 1) of an image are its first rows and columns, a window at the
frame's edge reads the next image's first row (or nothing), outputs nobody reads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import _scratch

Pair = tuple[int, int]
Blocks = Callable[[int], list[slice]]

ORDER = ((1, 0), (0, 0), (0, 1), (1, 1))
"""The phases (a, b) along S's phase axis: (0, *) and (*, 0) are runs, (0, 0) inside both."""

OFFSETS = ((0, 0, 0, 4, 0), (1, 0, 1, 3, 4), (0, 1, 0, 2, 6), (1, 1, 1, 2, 8))
"""Per window offset (di, dj, ...): the run [lo, hi) of :data:`ORDER` whose taps it holds and
the first of its hi - lo slots in the packed weight (:data:`SLOTS`). The first offset covers every
phase: its product (beta=0) starts the result."""

SLOTS = [(2 * di + ORDER[k][0], 2 * dj + ORDER[k][1]) for di, dj, lo, hi, _ in OFFSETS for k in range(lo, hi)]
"""The kernel tap (i, j) of each packed weight slot: the offsets' runs one after the other."""


def applies(kernel: Pair, stride: Pair, dilation: Pair) -> bool:
    return kernel == (3, 3) and stride == (2, 2) and dilation == (1, 1)


def frame(size: Pair, padding: Pair) -> Pair:
    """(Hq, Wq): frame positions per image of an input of spatial ``size`` padded by ``padding``."""
    return -(-(size[0] + 2 * padding[0]) // 2), -(-(size[1] + 2 * padding[1]) // 2)


def _span(size: int, pad: int, a: int) -> tuple[int, int, int]:
    """Phase a along one axis: (first frame position, its input index, count) of the input pixels
    it holds; padded position 2*Q + a is input index 2*Q + a - pad."""
    q0 = max(0, -(-(pad - a) // 2))
    r0 = 2 * q0 + a - pad
    return q0, r0, max(0, -(-(size - r0) // 2))


def _phase_views(s: Tensor, size: Pair, padding: Pair) -> list[tuple[Tensor, tuple[slice, slice], tuple[slice, slice]]]:
    """Per phase of ``s`` (N, Hq, Wq, 4, C): its (N, Hq, Wq, C) view, the frame slices it holds
    input pixels at and the (rows, columns) slices of those pixels in the input."""
    views = []
    for k, (a, b) in enumerate(ORDER):
        q0, r0, nq = _span(size[0], padding[0], a)
        p0, c0, np_ = _span(size[1], padding[1], b)
        at = (slice(q0, q0 + nq), slice(p0, p0 + np_))
        src = (slice(r0, r0 + 2 * nq - 1, 2), slice(c0, c0 + 2 * np_ - 1, 2))
        views.append((s[:, :, :, k], at, src))
    return views


def _space_to_depth(x: Tensor, padding: Pair) -> tuple[Tensor, Pair]:
    """S of (N, C, H, W) ``x`` as an (N*Hq*Wq, 4*C) temporary of the arena, and (Hq, Wq)."""
    n, c, h, w = x.shape
    hq, wq = frame((h, w), padding)
    s = _scratch.take((n, hq, wq, 4, c), x)
    for phase, (rows, cols), (src_rows, src_cols) in _phase_views(s, (h, w), padding):
        phase[:, : rows.start] = 0  # only the padding zeroed (a phase of padding only: all of it)
        phase[:, rows.stop :] = 0
        phase[:, rows, : cols.start] = 0
        phase[:, rows, cols.stop :] = 0
        phase[:, rows, cols] = x[:, :, src_rows, src_cols].permute(0, 2, 3, 1)
    return s.view(n * hq * wq, 4 * c), (hq, wq)


def _grad_frame(grad: Tensor, fr: Pair, lead: int = 0) -> Tensor:
    """(lead + N*Hq*Wq, O) temporary: ``lead`` zero rows, then the (N, O, Ho, Wo) gradient
    channels-last in the frame, zero beyond the outputs."""
    n, o, ho, wo = grad.shape
    g = _scratch.take((lead + n * fr[0] * fr[1], o), grad)
    g[:lead] = 0
    body = g[lead:].view(n, *fr, o)
    body[:, ho:] = 0
    body[:, :ho, wo:] = 0
    body[:, :ho, :wo] = grad.permute(0, 2, 3, 1)
    return g


def _packed(weight: Tensor) -> Tensor:
    """(9*C, O) of an (O, C, 3, 3) ``weight``: slot t's (C, O) block is tap :data:`SLOTS` [t]."""
    return torch.cat([weight[:, :, i, j].t() for i, j in SLOTS])


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, padding: Pair, out: Pair, blocks: Blocks) -> Tensor:
    """Correlation of (N, C, H, W) ``x`` with (O, C, 3, 3) ``weight`` at stride 2: per offset,
    S's rows shifted by it, its run of phases, times the packed weights. The (N, O, *out)
    channels-last view."""
    n, c = x.shape[:2]
    o = weight.shape[0]
    s, (hq, wq) = _space_to_depth(x, padding)
    w = _packed(weight)
    y = x.new_empty(n * hq * wq, o)
    m = y.shape[0] - wq - 1  # rows whose whole window lies in the frame: every valid output
    for rows in blocks(m):
        block = y[rows]
        for di, dj, lo, hi, slot in OFFSETS:
            shifted = s[rows.start + di * wq + dj : rows.stop + di * wq + dj, lo * c : hi * c]
            block.addmm_(shifted, w[slot * c : (slot + hi - lo) * c], beta=min(di + dj, 1))
        if bias is not None:
            block += bias
    y[m:] = 0  # rows past the last valid output: never read, but keep them defined
    return y.view(n, hq, wq, o)[:, : out[0], : out[1]].permute(0, 3, 1, 2)


def input_grad(grad: Tensor, weight: Tensor, bias: Tensor | None, padding: Pair, size: Pair, blocks: Blocks) -> Tensor:
    """Adjoint of :func:`conv2d` in ``x`` (the forward of a transposed convolution, whose
    ``bias`` starts every output): S's gradient, every row gathering from the output gradient
    at its rows less each offset (the gradient frame starts ``lead`` zero rows early, so none is
    negative), then depth to space. The (N, C, *size) channels-last result."""
    n, o = grad.shape[:2]
    c = weight.shape[1]
    hq, wq = frame(size, padding)
    lead = wq + 1
    g = _grad_frame(grad, (hq, wq), lead)
    w = _packed(weight)
    sg = _scratch.take((n * hq * wq, 4 * c), grad)
    for rows in blocks(sg.shape[0]):
        block = sg[rows]
        if bias is not None:
            block.view(-1, 4, c).copy_(bias)
        for di, dj, lo, hi, slot in OFFSETS:
            shifted = g[rows.start + lead - di * wq - dj : rows.stop + lead - di * wq - dj]
            beta = 1 if bias is not None or di + dj else 0
            block[:, lo * c : hi * c].addmm_(shifted, w[slot * c : (slot + hi - lo) * c].t(), beta=beta)
    out = grad.new_empty(n, *size, c)
    for phase, at, src in _phase_views(sg.view(n, hq, wq, 4, c), size, padding):
        out[:, src[0], src[1]] = phase[:, at[0], at[1]]
    return out.permute(0, 3, 1, 2)


def weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], padding: Pair, blocks: Blocks) -> Tensor:
    """Gradient of :func:`conv2d` w.r.t. its weight: per offset, (S's shifted rows, its run)^T @
    (the gradient's rows), summed over row blocks, each slot then put at its tap."""
    o, c = weight_shape[:2]
    s, (hq, wq) = _space_to_depth(x, padding)
    g = _grad_frame(grad, (hq, wq))  # zero beyond the outputs
    m = s.shape[0] - wq - 1
    gw = g.new_empty(9 * c, o)
    for b, rows in enumerate(blocks(m)):
        for di, dj, lo, hi, slot in OFFSETS:
            shifted = s[rows.start + di * wq + dj : rows.stop + di * wq + dj, lo * c : hi * c]
            gw[slot * c : (slot + hi - lo) * c].addmm_(shifted.t(), g[rows], beta=min(b, 1))
    taps = torch.cat([gw[SLOTS.index((i, j)) * c :][:c] for i in range(3) for j in range(3)])
    return taps.view(3, 3, c, o).permute(3, 2, 0, 1)
