"""Stride-1 convolution without im2col, on a flattened padded buffer ("shift-GEMM").

Pad ``x`` into a (C, N * Hp * Wp) matrix ``X``. Kernel tap (i, j) of a stride-1 correlation
then reads ``X`` shifted by ``off = i * dh * Wp + j * dw`` columns: a plain 2D slice that BLAS
reads in place. Output pixel (n, y, x) sits at column ``n * Hp * Wp + y * Wp + x`` of an
(O, N * Hp * Wp) result, and every valid pixel lies before ``M = N * Hp * Wp - last offset``;
the other columns are discarded by the final crop (a view). Three ways to form the sum, picked
by what moves the least memory:

- ``taps``: ``out += W[:, :, i, j] @ X[:, off:off + M]`` for each tap (no extra buffer);
- ``gather``: copy the shifted slices once into (C*kh*kw, M) and do one GEMM (small C);
- ``scatter``: one GEMM (kh*kw*O, C) @ X, then add the shifted row blocks (small O).

The weight gradient is, per tap, ``G @ X[:, off:off + M]^T`` with the output gradient ``G``
laid out in the same padded frame (one GEMM over a gathered copy when C*kh*kw is small).
"""

from __future__ import annotations

from torch import Tensor

Pair = tuple[int, int]


def _padded_matrix(x: Tensor, padding: Pair) -> tuple[Tensor, int, int]:
    """(C, N*Hp*Wp) zero-padded copy of a (N, C, H, W) tensor, with Hp and Wp."""
    n, c, h, w = x.shape
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    xp = x.new_zeros(c, n, hp, wp)
    xp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x.transpose(0, 1)
    return xp.view(c, n * hp * wp), hp, wp


def _offsets(kernel: Pair, dilation: Pair, wp: int) -> list[int]:
    return [i * dilation[0] * wp + j * dilation[1] for i in range(kernel[0]) for j in range(kernel[1])]


def _gather(xf: Tensor, kernel: Pair, dilation: Pair, wp: int, m: int) -> Tensor:
    """(C*kh*kw, M): row (c, i, j) is ``xf[c, off_ij : off_ij + M]`` (one strided copy)."""
    c, rows = xf.shape[0], xf.stride(0)
    view = xf.as_strided((c, kernel[0], kernel[1], m), (rows, dilation[0] * wp, dilation[1], 1), xf.storage_offset())
    return view.reshape(c * kernel[0] * kernel[1], m)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, padding: Pair, dilation: Pair) -> Tensor:
    """Stride-1, ungrouped ``conv2d``; returns a (N, O, Ho, Wo) view of a (O, N, Hp, Wp) buffer."""
    n = x.shape[0]
    out_c, c, kh, kw = weight.shape
    xf, hp, wp = _padded_matrix(x, padding)
    offs = _offsets((kh, kw), dilation, wp)
    length = xf.shape[1]
    m = length - offs[-1]
    ho, wo = hp - dilation[0] * (kh - 1), wp - dilation[1] * (kw - 1)
    out = x.new_empty(out_c, length)
    head = out[:, :m]
    taps = kh * kw
    if c * taps <= 2 * out_c or taps == 1:  # gather: the copy is small next to the output
        result = weight.reshape(out_c, c * taps) @ _gather(xf, (kh, kw), dilation, wp, m)
        head.copy_(result)
    elif out_c * taps <= 2 * c:  # scatter: one GEMM over all taps, then shifted adds
        y = weight.permute(2, 3, 0, 1).reshape(taps * out_c, c) @ xf
        head.copy_(y[:out_c, :m])
        for t in range(1, taps):
            head += y[t * out_c : (t + 1) * out_c, offs[t] : offs[t] + m]
    else:  # taps: accumulate one GEMM per kernel tap into the output
        head.zero_()
        for t, off in enumerate(offs):
            head.addmm_(weight[:, :, t // kw, t % kw], xf[:, off : off + m])
    if bias is not None:
        head += bias.view(-1, 1)
    return out.view(out_c, n, hp, wp)[:, :, :ho, :wo].transpose(0, 1)


def conv2d_input_grad(grad: Tensor, weight: Tensor, padding: Pair, dilation: Pair) -> Tensor:
    """Adjoint of :func:`conv2d` in ``x``: the full correlation of the output gradient with the
    flipped, transposed kernel (needs ``padding <= dilation * (kernel - 1)``)."""
    kh, kw = weight.shape[2:]
    full = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
    return conv2d(grad, weight.flip(2, 3).transpose(0, 1), None, full, dilation)


def conv2d_weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], padding: Pair, dilation: Pair) -> Tensor:
    """Gradient of :func:`conv2d` w.r.t. its weight: per tap, ``G @ X_shifted^T``."""
    out_c, c, kh, kw = weight_shape
    xf, hp, wp = _padded_matrix(x, padding)
    offs = _offsets((kh, kw), dilation, wp)
    m = xf.shape[1] - offs[-1]
    n, _, ho, wo = grad.shape
    g = grad.new_zeros(out_c, n, hp, wp)  # the output gradient in the padded frame
    g[:, :, :ho, :wo] = grad.transpose(0, 1)
    taps = kh * kw
    if c * taps <= 4 * out_c or taps == 1:  # gather the shifted inputs: one GEMM
        gm = g.view(out_c, -1)[:, :m]
        return (gm @ _gather(xf, (kh, kw), dilation, wp, m).t()).view(weight_shape)
    if out_c * taps <= 4 * c:  # gather the shifted output gradients instead: one GEMM
        # Row (i', j', o) reads G shifted right by off(kh-1-i', kw-1-j') = last - off(i, j).
        gp = grad.new_zeros(out_c, offs[-1] + g.numel() // out_c)
        gp[:, offs[-1] :] = g.view(out_c, -1)
        stacked = _gather(gp, (kh, kw), dilation, wp, xf.shape[1])  # rows (o, i', j')
        gw = (stacked @ xf.t()).view(out_c, kh, kw, c).flip(1, 2)
        return gw.permute(0, 3, 1, 2)
    gm = g.view(out_c, -1)[:, :m]
    gw = grad.new_empty(kh, kw, out_c, c)
    for t, off in enumerate(offs):  # one GEMM per kernel tap
        gw[t // kw, t % kw] = gm @ xf[:, off : off + m].t()
    return gw.permute(2, 3, 0, 1)
