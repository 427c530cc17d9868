"""Convolutions as matrix products, the batch inside every product (one engine for both directions).

- One GEMM per kernel tap (the usual case, :func:`_strategy`), channels-last: the zero-padded
  input is a (rows, C) matrix in a frame where output pixel (n, y, x) is row ``n*Hf*Wf + y*Wf + x``
  and tap (i, j) is the row block at a fixed offset, a *view*; so each product is
  (rows, C) @ (C, O), tall and skinny, the shape BLAS runs fastest. Stride 1 uses a frame whose
  rows and images share their zero padding (:func:`_frame`); a strided convolution splits its
  padded input by stride phase, one stride-1 frame per phase (:func:`_phases`). Rows go in blocks
  of :data:`BLOCK_ROWS`, every tap of a block in turn, so a block stays in cache instead of
  streaming through memory once per tap. The weight gradient is the same loop transposed,
  (C, rows) @ (rows, O) per tap; the input gradient is the full correlation with the flipped
  kernel (stride 1) or the adjoint loop, each tap's product added into the rows it was read from.
- Small inputs (the patch matrix within :data:`PATCH_FLOATS`) where products would run per tap:
  the channels-last patches, (N*Ho*Wo, kh*kw*C), one GEMM each for the output and the weight
  gradient (no padding rows, one product instead of nine small ones).
- Few input channels (``'gather'``): the patches gathered from a channel-first padded copy
  (im2col, C*kh*kw rows), one GEMM, transposed so that the output is channels-last.
- Few output channels at stride 1 (``'scatter'``): one GEMM over all taps, then shifted adds,
  channel-first (the shift trick on the flat (C, N*Hp*Wp) frame: tap (i, j) is the column slice
  ``X[:, off:off + M]``, ``off = i*dh*Wp + j*dw``).
- Groups (a batch dimension of the products) and the remaining strided cases: the general im2col
  ``gather``; their input gradient scatter-adds each tap into the padded frame (col2im).

Outputs are (N, C, H, W) views, mostly of channels-last buffers; every consumer accepts any
strides, and the blocks downstream keep the channels-last layout, so the next convolution's padded
copy is a plain copy, not a transposition.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor

Pair = tuple[int, int]

BLOCK_ROWS = 8192
"""Rows (output pixels) per block of the channels-last per-tap products: with 48 channels in and
out a block's input and output take 3 MiB, well inside the L3 cache (measured on 2 cores: blocks of
4096-8192 rows are about 1.7x faster than one product per tap over all rows)."""


def padded(x: Tensor, padding: Pair, size: Pair | None = None) -> Tensor:
    """(C, N, Hp, Wp) zero-padded, channel-first copy of (N, C, H, W) ``x``; ``size`` (Hp, Wp)
    may ask for extra zero rows/columns at the bottom/right."""
    n, c, h, w = x.shape
    hp, wp = size or (h + 2 * padding[0], w + 2 * padding[1])
    xp = x.new_zeros(c, n, hp, wp)
    xp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x.transpose(0, 1)
    return xp


def padded_last(x: Tensor, padding: Pair, size: Pair | None = None) -> Tensor:
    """(N, Hp, Wp, C) zero-padded, channels-last copy of (N, C, H, W) ``x``; ``size`` (Hp, Wp)
    may ask for extra zero rows/columns at the bottom/right. Only the border is zeroed."""
    n, c, h, w = x.shape
    hp, wp = size or (h + 2 * padding[0], w + 2 * padding[1])
    top, left = padding
    xp = x.new_empty(n, hp, wp, c)
    xp[:, :top] = 0
    xp[:, top + h :] = 0
    xp[:, top : top + h, :left] = 0
    xp[:, top : top + h, left + w :] = 0
    xp[:, top : top + h, left : left + w] = x.permute(0, 2, 3, 1)
    return xp


PATCH_FLOATS = 1 << 20
"""Largest channels-last patch matrix (N*Ho*Wo rows, kh*kw*C columns; 4 MiB of float32) that a
convolution builds for one GEMM where it would otherwise run one product per tap: small images
(the U-Net's 8x8 and 4x4 levels at batch 16), where the frame's padding rows and nine small
products cost more than the copy. Measured on 2 cores: 1.3-2x faster forward and weight gradient
up to this size, slower beyond it (48 -> 48 channels at 16x16, batch 16: 1.8M floats, 1.4x slower)."""


def _patches_fit(rows: int, c: int, taps: int) -> bool:
    return taps > 1 and rows * c * taps <= PATCH_FLOATS


def _patches(x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out: Pair) -> Tensor:
    """(N*Ho*Wo, kh*kw*C) patches of (N, C, H, W) ``x``, channels-last: row (n, y, x), column (i, j, c)."""
    n, c = x.shape[:2]
    xp = padded_last(x, padding)
    sn, sh, sw, sc = xp.stride()
    view = xp.as_strided(
        (n, out[0], out[1], kernel[0], kernel[1], c),
        (sn, stride[0] * sh, stride[1] * sw, dilation[0] * sh, dilation[1] * sw, sc),
        xp.storage_offset(),
    )
    return view.reshape(n * out[0] * out[1], kernel[0] * kernel[1] * c)


def _taps(kernel: Pair, dilation: Pair, wp: int) -> list[int]:
    return [i * dilation[0] * wp + j * dilation[1] for i in range(kernel[0]) for j in range(kernel[1])]


def gather(xp: Tensor, kernel: Pair, stride: Pair, dilation: Pair, out: Pair) -> Tensor:
    """(C*kh*kw, N*Ho*Wo) patches of a channel-first buffer (row (c, i, j), column (n, y, x))."""
    c, n = xp.shape[:2]
    sc, sn, sh, sw = xp.stride()
    view = xp.as_strided(
        (c, kernel[0], kernel[1], n, out[0], out[1]),
        (sc, dilation[0] * sh, dilation[1] * sw, sn, stride[0] * sh, stride[1] * sw),
        xp.storage_offset(),
    )
    return view.reshape(c * kernel[0] * kernel[1], n * out[0] * out[1])


def _shift_columns(xf: Tensor, kernel: Pair, dilation: Pair, wp: int, columns: int) -> Tensor:
    """Stride-1 ``gather`` in the flat frame of a (C, L) matrix whose images are ``wp`` wide:
    row (c, i, j) is ``xf[c, off_ij : off_ij + columns]``."""
    c = xf.shape[0]
    view = xf.as_strided(
        (c, kernel[0], kernel[1], columns), (xf.stride(0), dilation[0] * wp, dilation[1], 1), xf.storage_offset()
    )
    return view.reshape(c * kernel[0] * kernel[1], columns)


def _grouped(a: Tensor, groups: int) -> Tensor:
    return a.view(groups, a.shape[0] // groups, a.shape[1])


def _output(buffer: Tensor, n: int, frame: Pair, out: Pair) -> Tensor:
    """(N, O, Ho, Wo) view of a (O, N*fh*fw) result laid out in an (fh, fw) frame."""
    return buffer.view(buffer.shape[0], n, *frame)[:, :, : out[0], : out[1]].transpose(0, 1)


def _strategy(c: int, out_c: int, taps: int, factor: int) -> str:
    """How a product is formed, by the memory it moves: ``'gather'`` when the gathered patches
    (C*taps rows) are within ``factor`` times the O output rows, ``'scatter'`` when the per-tap
    outputs (O*taps rows) are within ``factor`` times the C input rows, else (and for a single
    tap, which needs neither) ``'per tap'``. Strided convolutions run per tap or else the
    general gather."""
    if taps == 1:
        return "per tap"
    if c * taps <= factor * out_c:
        return "gather"
    return "scatter" if out_c * taps <= factor * c else "per tap"


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> Tensor:
    """Cross-correlation of (N, C, H, W) ``x`` with (O, C/g, kh, kw) ``weight``."""
    n, _, h, w = x.shape
    out_c, cg, kh, kw = weight.shape
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    ho = (hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if groups == 1 and n > 0:
        strategy = _strategy(cg, out_c, kh * kw, 2)
        if strategy == "per tap" and _patches_fit(n * ho * wo, cg, kh * kw):  # small: one GEMM
            cols = _patches(x, (kh, kw), stride, padding, dilation, (ho, wo))
            wm = weight.permute(2, 3, 1, 0).reshape(-1, out_c)  # row (i, j, c)
            out = cols @ wm if bias is None else bias.addmm(cols, wm)
            return out.view(n, ho, wo, out_c).permute(0, 3, 1, 2)  # channels-last
        if strategy == "per tap":
            return _tap_conv(x, weight, bias, stride, padding, dilation, (ho, wo))
        if stride == (1, 1) and strategy == "scatter":  # few outputs: channel-first (O, N*Hp*Wp)
            out = _scatter_conv(padded_last(x, padding), weight, dilation)
            if bias is not None:
                out += bias.view(-1, 1)
            return _output(out, n, (hp, wp), (ho, wo))
        if stride == (1, 1):  # gather
            out = _gather_conv(padded(x, padding), weight, bias, dilation)
            return out.view(n, hp, wp, out_c)[:, :ho, :wo].permute(0, 3, 1, 2)  # channels-last
        # strided, few channels: the gathered patches, transposed in the product: channels-last
        cols = gather(padded(x, padding), (kh, kw), stride, dilation, (ho, wo))
        out = cols.t() @ weight.reshape(out_c, -1).t()
        if bias is not None:
            out += bias
        return out.view(n, ho, wo, out_c).permute(0, 3, 1, 2)
    cols = gather(padded(x, padding), (kh, kw), stride, dilation, (ho, wo))
    out = (weight.reshape(groups, out_c // groups, -1) @ _grouped(cols, groups)).view(out_c, -1)
    if bias is not None:
        out += bias.view(-1, 1)
    return _output(out, n, (ho, wo), (ho, wo))


def _blocks(rows: int) -> list[slice]:
    return [slice(s, min(s + BLOCK_ROWS, rows)) for s in range(0, rows, BLOCK_ROWS)]


def _shifted(rows: slice, off: int) -> slice:
    return slice(rows.start + off, rows.stop + off)


def _phases(x: Tensor, padding: Pair, stride: Pair) -> tuple[Tensor, Pair]:
    """The zero-padded input split by stride phase, channels-last: (sh*sw, N*Hq*Wq, C), where
    phase (a, b) holds the padded pixel (sh*Y + a, sw*X + b) at frame position (Y, X), and the
    frame (Hq, Wq). A strided correlation is then a stride-1 one per phase (one phase for stride 1:
    the padded copy itself)."""
    n, c, h, w = x.shape
    sh, sw = stride
    hq, wq = _phase_frame((h, w), padding, stride)
    if stride == (1, 1):
        return padded_last(x, padding, (hq, wq)).view(1, -1, c), (hq, wq)
    xs = x.new_empty(sh, sw, n, hq, wq, c)  # each phase copied straight from x: one pass less
    for a, (y0, r0, ny) in enumerate(_phase_span(h, padding[0], sh)):
        for b, (x0, c0, nx) in enumerate(_phase_span(w, padding[1], sw)):
            phase = xs[a, b]  # only its padding zeroed (a phase that holds only padding: all of it)
            phase[:, :y0] = 0
            phase[:, y0 + ny :] = 0
            phase[:, y0 : y0 + ny, :x0] = 0
            phase[:, y0 : y0 + ny, x0 + nx :] = 0
            phase[:, y0 : y0 + ny, x0 : x0 + nx] = x[:, :, r0::sh, c0::sw][:, :, :ny, :nx].permute(0, 2, 3, 1)
    return xs.view(sh * sw, -1, c), (hq, wq)


def _phase_frame(size: Pair, padding: Pair, stride: Pair) -> Pair:
    """(Hq, Wq): the frame of one stride phase of a padded input of spatial ``size``."""
    return -(-(size[0] + 2 * padding[0]) // stride[0]), -(-(size[1] + 2 * padding[1]) // stride[1])


def _phase_span(size: int, pad: int, stride: int) -> list[tuple[int, int, int]]:
    """Per phase a along one axis: (first frame position Y0, its input index r0, count) of the
    input pixels it holds; padded position stride*Y + a is input index stride*Y + a - pad."""
    spans = []
    for a in range(stride):
        y0 = max(0, -(-(pad - a) // stride))
        r0 = stride * y0 + a - pad
        spans.append((y0, r0, max(0, -(-(size - r0) // stride))))
    return spans


def _phase_taps(kernel: Pair, stride: Pair, dilation: Pair, wq: int) -> list[tuple[int, int]]:
    """(phase, row offset in the phase frame) of each kernel tap (i, j), in weight order: tap
    (i, j) of output (Y, X) reads padded row sh*Y + i*dh = sh*(Y + p) + a, with (p, a) =
    divmod(i*dh, sh), and likewise for columns."""
    taps = []
    for i in range(kernel[0]):
        p, a = divmod(i * dilation[0], stride[0])
        for j in range(kernel[1]):
            q, b = divmod(j * dilation[1], stride[1])
            taps.append((a * stride[1] + b, p * wq + q))
    return taps


class _Frame(NamedTuple):
    """The input laid out for :func:`_tap_conv`: ``data`` (phases, length, C), output (n, Y, X)
    at row n*Hq*Wq + Y*Wq + X of a (Hq, Wq) ``frame``, tap t reading phase ``taps[t][0]`` at
    that row + ``taps[t][1]``, and rows below ``rows`` (at least every valid one) readable."""

    data: Tensor
    frame: Pair
    taps: list[tuple[int, int]]
    rows: int


def _frame(x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> _Frame:
    """Stride 1 with padding up to the kernel's reach: the shared-padding frame (Hf, Wf) = (H + ph,
    W + pw). The right padding of one row is the left padding of the next, the bottom rows of one
    image the top rows of the next, and ``lead`` zeros sit before the first image: 6% fewer GEMM
    rows than the fully padded frame at 32x32, 11% at 16x16, 30% at 4x4. Else: the stride phases
    (:func:`_phases`)."""
    n, c, h, w = x.shape
    (kh, kw), (ph, pw), (dh, dw) = kernel, padding, dilation
    if stride != (1, 1) or ph > dh * (kh - 1) or pw > dw * (kw - 1):
        xs, (hq, wq) = _phases(x, padding, stride)
        taps = _phase_taps(kernel, stride, dilation, wq)
        return _Frame(xs, (hq, wq), taps, xs.shape[1] - max(off for _, off in taps))
    hf, wf = h + ph, w + pw
    lead = ph * wf + pw
    taps = [(0, lead + (i * dh - ph) * wf + j * dw - pw) for i in range(kh) for j in range(kw)]
    body = n * hf * wf
    data = x.new_empty(body + max(off for _, off in taps), c)
    data[:lead] = 0
    data[lead + body :] = 0
    images = data[lead : lead + body].view(n, hf, wf, c)
    images[:, h:] = 0
    images[:, :h, w:] = 0
    images[:, :h, :w] = x.permute(0, 2, 3, 1)
    return _Frame(data.view(1, -1, c), (hf, wf), taps, body)


def _tap_conv(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Pair, dilation: Pair, out: Pair
) -> Tensor:
    """Correlation with one GEMM per tap, channels-last, in blocks of rows of the frame (see
    :func:`_frame`). Returns the (N, O, Ho, Wo) channels-last view."""
    n, out_c, (kh, kw) = x.shape[0], weight.shape[0], weight.shape[2:]
    xs, (hq, wq), taps, m = _frame(x, (kh, kw), stride, padding, dilation)
    w = weight.permute(2, 3, 1, 0).reshape(kh * kw, -1, out_c)  # tap t: (C, O)
    y = x.new_empty(n * hq * wq, out_c)
    for rows in _blocks(m):
        block = y[rows]
        for t, (phase, off) in enumerate(taps):
            block.addmm_(xs[phase][_shifted(rows, off)], w[t], beta=min(t, 1))  # beta=0: never read
        if bias is not None:
            block += bias
    y[m:] = 0  # rows past the last valid pixel: never read, but keep them defined
    return y.view(n, hq, wq, out_c)[:, : out[0], : out[1]].permute(0, 3, 1, 2)


def _tap_input_grad(grad: Tensor, weight: Tensor, stride: Pair, padding: Pair, dilation: Pair, size: Pair) -> Tensor:
    """Adjoint of :func:`_tap_conv`: each tap's product (gradient rows) @ (O, C) weights is added
    into the rows of its phase it was read from; the phases are then put back together and the
    padding cropped. Returns the (N, C, *size) channels-last view."""
    n, out_c = grad.shape[:2]
    c, (kh, kw), (sh, sw) = weight.shape[1], weight.shape[2:], stride
    hq, wq = _phase_frame(size, padding, stride)
    g = padded_last(grad, (0, 0), (hq, wq)).view(-1, out_c)  # zero beyond the valid outputs
    taps = _phase_taps((kh, kw), stride, dilation, wq)
    m = g.shape[0] - max(off for _, off in taps)
    w = weight.permute(2, 3, 0, 1).reshape(kh * kw, out_c, c)  # tap t: (O, C)
    gx = grad.new_zeros(sh * sw, g.shape[0], c)
    for rows in _blocks(m):
        for t, (phase, off) in enumerate(taps):
            gx[phase][_shifted(rows, off)].addmm_(g[rows], w[t])
    full = gx.view(sh, sw, n, hq, wq, c).permute(2, 3, 0, 4, 1, 5).reshape(n, hq * sh, wq * sw, c)
    return full[:, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]].permute(0, 3, 1, 2)


def _gather_conv(xp: Tensor, weight: Tensor, bias: Tensor | None, dilation: Pair) -> Tensor:
    """Stride-1 correlation for few input channels: the patches of a channel-first padded ``xp``
    gathered as (C*taps, M), one GEMM with them transposed: (N*Hp*Wp, O), valid rows first."""
    out_c, c, kh, kw = weight.shape
    xf = xp.view(c, -1)
    m = xf.shape[1] - _taps((kh, kw), dilation, xp.shape[-1])[-1]
    out = xp.new_empty(xf.shape[1], out_c)
    cols = _shift_columns(xf, (kh, kw), dilation, xp.shape[-1], m)
    out[:m].addmm_(cols.t(), weight.reshape(out_c, c * kh * kw).t(), beta=0)
    if bias is not None:
        out[:m] += bias
    out[m:] = 0
    return out


def _scatter_conv(xl: Tensor, weight: Tensor, dilation: Pair) -> Tensor:
    """Stride-1 correlation for few output channels: one GEMM of every tap's weights with the
    channels-last padded ``xl`` read as (C, N*Hp*Wp), then shifted adds: (O, N*Hp*Wp), valid
    columns first."""
    out_c, c, kh, kw = weight.shape
    xf = xl.view(-1, c).t()
    offs = _taps((kh, kw), dilation, xl.shape[2])
    length = xf.shape[1]
    m = length - offs[-1]
    y = weight.permute(2, 3, 0, 1).reshape(kh * kw * out_c, c) @ xf
    out = xl.new_empty(out_c, length)
    head = out[:, :m]
    head.copy_(y[:out_c, :m])
    for t in range(1, kh * kw):
        head += y[t * out_c : (t + 1) * out_c, offs[t] : offs[t] + m]
    out[:, m:] = 0  # columns past the last valid pixel: never read, but keep them defined
    return out


def conv2d_input_grad(
    grad: Tensor, weight: Tensor, stride: Pair, padding: Pair, dilation: Pair, groups: int, size: Pair
) -> Tensor:
    """Adjoint of :func:`conv2d` in ``x`` for an input of spatial ``size``: (N, O, Ho, Wo)
    ``grad`` to (N, C, *size). Also the forward of the transposed convolution."""
    n, out_c, ho, wo = grad.shape
    c, kh, kw = weight.shape[1] * groups, weight.shape[2], weight.shape[3]
    full = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1])
    natural = (ho + full[0] - padding[0], wo + full[1] - padding[1])
    if stride == (1, 1) and groups == 1 and n > 0 and min(full) >= 0 and natural == tuple(size):
        # the full correlation of the gradient with the flipped kernel, channels swapped
        return conv2d(grad, weight.flip(2, 3).transpose(0, 1), None, (1, 1), full, dilation, 1)
    if groups == 1 and n > 0 and _strategy(out_c, c, kh * kw, 2) == "per tap":
        return _tap_input_grad(grad, weight, stride, padding, dilation, size)
    if groups == 1:  # (O, N*Ho*Wo): a view of a channels-last gradient
        g = grad.permute(0, 2, 3, 1).reshape(-1, out_c).t()
    else:
        g = grad.transpose(0, 1).reshape(out_c, n * ho * wo)
    cols = weight.reshape(groups, out_c // groups, -1).transpose(1, 2) @ _grouped(g, groups)
    cols = cols.view(c, kh, kw, n, ho, wo)
    frame = (size[0] + 2 * padding[0], size[1] + 2 * padding[1])
    xp = grad.new_zeros(c, n, *frame)
    for i in range(kh):  # col2im: scatter-add each kernel tap into the padded frame
        for j in range(kw):
            rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (ho - 1) + 1, stride[0])
            columns = slice(j * dilation[1], j * dilation[1] + stride[1] * (wo - 1) + 1, stride[1])
            xp[:, :, rows, columns] += cols[:, i, j]
    return xp[:, :, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]].transpose(0, 1)


def conv2d_weight_grad(
    x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], stride: Pair, padding: Pair, dilation: Pair, groups: int
) -> Tensor:
    """Gradient of :func:`conv2d` w.r.t. its weight. The output positions are those of ``grad``
    (so a transposed convolution's extra output_padding rows are simply never read)."""
    out_c, cg, kh, kw = weight_shape
    n, _, ho, wo = grad.shape
    if groups == 1 and n > 0:
        strategy = _strategy(cg, out_c, kh * kw, 4)
        if strategy == "per tap" and _patches_fit(n * ho * wo, cg, kh * kw):  # small: one GEMM
            cols = _patches(x, (kh, kw), stride, padding, dilation, (ho, wo))
            gw = cols.t() @ grad.permute(0, 2, 3, 1).reshape(-1, out_c)
            return gw.view(kh, kw, cg, out_c).permute(3, 2, 0, 1)
        if strategy == "per tap":
            return _tap_weight_grad(x, grad, weight_shape, stride, padding, dilation)
        if stride == (1, 1) and strategy == "scatter":
            return _scatter_weight_grad(padded_last(x, padding), grad, weight_shape, dilation)
        # few input channels: the patches at the valid outputs times the gradient channels-last (a
        # view when it is); no padded copy of the gradient (3 -> 48 at 32x32: 3.3 -> 1.4 ms)
        cols = gather(padded(x, padding), (kh, kw), stride, dilation, (ho, wo))
        return _from_taps_last(cols @ grad.permute(0, 2, 3, 1).reshape(-1, out_c), weight_shape)
    cols = gather(padded(x, padding), (kh, kw), stride, dilation, (ho, wo))
    g = grad.transpose(0, 1).reshape(out_c, n * ho * wo)
    return (_grouped(g, groups) @ _grouped(cols, groups).transpose(1, 2)).view(weight_shape)


def _tap_weight_grad(
    x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], stride: Pair, padding: Pair, dilation: Pair
) -> Tensor:
    """:func:`_tap_conv`'s products transposed: tap t's gradient is the sum over row blocks of
    (its phase's shifted input rows)^T @ (gradient rows), (C, O)."""
    out_c, c, kh, kw = weight_shape
    xs, (hq, wq), taps, m = _frame(x, (kh, kw), stride, padding, dilation)
    g = padded_last(grad, (0, 0), (hq, wq)).view(-1, out_c)  # zero beyond the valid outputs
    gw = g.new_empty(kh * kw, c, out_c)
    for b, rows in enumerate(_blocks(m)):
        for t, (phase, off) in enumerate(taps):
            gw[t].addmm_(xs[phase][_shifted(rows, off)].t(), g[rows], beta=min(b, 1))  # beta=0: gw starts empty
    return gw.view(kh, kw, c, out_c).permute(3, 2, 0, 1)


def _from_taps_last(gw: Tensor, weight_shape: tuple[int, ...]) -> Tensor:
    """The (O, C, kh, kw) view of a (C*kh*kw, O) weight gradient: the patches times the gradient,
    (C*kh*kw, M) @ (M, O), measured 1.7x faster than the transposed product (O, M) @ (M, C*kh*kw)
    for 3 -> 48 channels at M = 18k on one thread of these cores."""
    out_c, c, kh, kw = weight_shape
    return gw.view(c, kh, kw, out_c).permute(3, 0, 1, 2)


def _scatter_weight_grad(xl: Tensor, grad: Tensor, weight_shape: tuple[int, ...], dilation: Pair) -> Tensor:
    """Few output channels: one GEMM of the shifted output gradients, gathered channel-first, with
    the channels-last padded input."""
    out_c, c, kh, kw = weight_shape
    hp, wp = xl.shape[1:3]
    xf = xl.view(-1, c)
    last = _taps((kh, kw), dilation, wp)[-1]
    # row (o, i', j') reads G shifted right by off(kh-1-i', kw-1-j') = last - off(i, j)
    n, _, ho, wo = grad.shape
    gp = grad.new_zeros(out_c, last + xf.shape[0])
    gp[:, last:].view(out_c, n, hp, wp)[:, :, :ho, :wo] = grad.transpose(0, 1)  # G in the padded frame
    stacked = _shift_columns(gp, (kh, kw), dilation, wp, xf.shape[0])
    return (stacked @ xf).view(out_c, kh, kw, c).flip(1, 2).permute(0, 3, 1, 2)
