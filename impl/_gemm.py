"""Convolutions as matrix products, the batch inside every product (one engine for both directions).

One function, :func:`plan`, chooses the strategy of every direction (forward, input gradient,
weight gradient) from a :class:`Shape`, by the rules :data:`RULES` over the named thresholds of
:data:`TESTS`; each strategy is one function in its direction's table (:data:`IMPLEMENTATIONS`).

- ``'per tap'``, one GEMM per kernel tap (the usual case), channels-last: the zero-padded input
  is a (rows, C) matrix in a frame where output pixel (n, y, x) is row ``n*Hf*Wf + y*Wf + x``
  and tap (i, j) is the row block at a fixed offset, a *view*; so each product is
  (rows, C) @ (C, O), tall and skinny, the shape BLAS runs fastest. Stride 1 uses a frame whose
  rows and images share their zero padding (:func:`_frame`); a strided convolution splits its
  padded input by stride phase, one stride-1 frame per phase (:func:`_phases`). Rows go in blocks
  of :data:`BLOCK_ROWS`, every tap of a block in turn, so a block stays in cache instead of
  streaming through memory once per tap. The weight gradient is the same loop transposed,
  (C, rows) @ (rows, O) per tap; the strided input gradient is the adjoint loop, each tap's
  product added into the rows it was read from.
- ``'flipped'``: the stride-1 input gradient, the full correlation with the flipped kernel (a
  forward, planned as one).
- ``'patches'``: small inputs (the patch matrix within :data:`PATCH_FLOATS`) where products would
  run per tap: the channels-last patches, (N*Ho*Wo, kh*kw*C), one GEMM each for the output and
  the weight gradient (no padding rows, one product instead of nine small ones).
- ``'gather'``, few input channels (or, strided, few outputs): the patches gathered from a
  channel-first padded copy (im2col, C*kh*kw rows), one GEMM, transposed so that the output is
  channels-last; its input gradient scatter-adds each tap into the padded frame (col2im).
- ``'scatter'``, few output channels at stride 1: one GEMM over all taps, then shifted adds,
  channel-first (the shift trick on the flat (C, N*Hp*Wp) frame: tap (i, j) is the column slice
  ``X[:, off:off + M]``, ``off = i*dh*Wp + j*dw``).
- ``'winograd 4x4'`` (and ``'winograd 2x2'``, forceable), 3x3 stride-1 undilated kernels with
  enough channels and pixels: Winograd's minimal filtering F(m x m, 3 x 3), fewer multiplications
  than any direct method (:mod:`impl._winograd`); the input gradient is its forward with the
  flipped kernel, the weight gradient its adjoint.
- ``'sub-pixel'``, 3x3 stride-2 undilated kernels with few outputs (a strided convolution down to
  a few channels, a transposed one up from a few): the input's four stride phases side by side,
  four GEMMs in all, one per 2x2 window offset (:mod:`impl._subpixel`); the gathered patches
  would be nine times the input, the per-tap products nine narrow ones.
- ``'grouped gather'``, groups (a batch dimension of the products) and empty batches: the general
  im2col ``gather``, and col2im for the input gradient.

Outputs are (N, C, H, W) views, mostly of channels-last buffers; every consumer accepts any
strides, and the blocks downstream keep the channels-last layout, so the next convolution's padded
copy is a plain copy, not a transposition.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

from torch import Tensor

from . import _scratch, _subpixel, _winograd

Pair = tuple[int, int]

BLOCK_ROWS = 8192
"""Rows (output pixels) per block of the channels-last per-tap products: with 48 channels in and
out a block's input and output take 3 MiB, well inside the L3 cache (measured on 2 cores: blocks of
4096-8192 rows are about 1.7x faster than one product per tap over all rows)."""


def padded(x: Tensor, padding: Pair, size: Pair | None = None) -> Tensor:
    """(C, N, Hp, Wp) zero-padded, channel-first copy of (N, C, H, W) ``x``, a temporary of the
    engine's arena (:mod:`impl._scratch`); ``size`` (Hp, Wp) may ask for extra zero rows/columns
    at the bottom/right."""
    n, c, h, w = x.shape
    hp, wp = size or (h + 2 * padding[0], w + 2 * padding[1])
    xp = _scratch.take((c, n, hp, wp), x).zero_()
    xp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x.transpose(0, 1)
    return xp


def padded_last(x: Tensor, padding: Pair, size: Pair | None = None, scratch: bool = False) -> Tensor:
    """(N, Hp, Wp, C) zero-padded, channels-last copy of (N, C, H, W) ``x``; ``size`` (Hp, Wp)
    may ask for extra zero rows/columns at the bottom/right. Only the border is zeroed. ``scratch``:
    a temporary of the engine's arena (:mod:`impl._scratch`)."""
    n, c, h, w = x.shape
    hp, wp = size or (h + 2 * padding[0], w + 2 * padding[1])
    top, left = padding
    xp = _scratch.take((n, hp, wp, c), x) if scratch else x.new_empty(n, hp, wp, c)
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


def _patches(x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, out: Pair) -> Tensor:
    """(N*Ho*Wo, kh*kw*C) patches of (N, C, H, W) ``x``, channels-last: row (n, y, x), column (i, j, c)."""
    n, c = x.shape[:2]
    xp = padded_last(x, padding, scratch=True)
    sn, sh, sw, sc = xp.stride()
    view = xp.as_strided(
        (n, out[0], out[1], kernel[0], kernel[1], c),
        (sn, stride[0] * sh, stride[1] * sw, dilation[0] * sh, dilation[1] * sw, sc),
        xp.storage_offset(),
    )
    return _scratch.take(view.shape, x).copy_(view).view(n * out[0] * out[1], -1)


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


DIRECTIONS = ("forward", "input grad", "weight grad")


class Shape(NamedTuple):
    """One convolution as the planner sees it, in the terms of :func:`conv2d`: an (N, C, *size)
    input, O output channels, the kernel and its arguments, and the (Ho, Wo) output (in the
    backward directions: the gradient's spatial size)."""

    n: int
    c: int
    out_c: int
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    size: Pair
    out: Pair

    @property
    def taps(self) -> int:
        return self.kernel[0] * self.kernel[1]

    @property
    def rows(self) -> int:
        """Output pixels, N*Ho*Wo: the rows of the patch matrix."""
        return self.n * self.out[0] * self.out[1]


FORWARD_FACTOR = 2
"""Channel factor of the forward (and of the flipped input gradient, which is a forward): the
gathered patches (C*taps rows) are read once by one product, so they pay off while they are
within this factor of the O output rows the per-tap products would write nine times; likewise
the per-tap outputs of ``'scatter'`` (O*taps rows) against the C input rows."""

INPUT_GRAD_FACTOR = 2
"""Channel factor of the strided input gradient, chosen like :data:`FORWARD_FACTOR` (with C and O
swapped, the col2im of the gathered product against the adjoint per-tap loop)."""

WEIGHT_GRAD_FACTOR = 4
"""Channel factor of the weight gradient: its one product writes only the small (C*taps, O)
result, never rows*O outputs, so the gathered or scattered copy is its only extra traffic and it
stays cheaper than per-tap products over a wider range than in the forward."""


def _factor(direction: str) -> int:
    return {"forward": FORWARD_FACTOR, "input grad": INPUT_GRAD_FACTOR, "weight grad": WEIGHT_GRAD_FACTOR}[direction]


def _flipped_fits(s: Shape, direction: str) -> bool:
    """The input gradient is the full correlation with the flipped kernel: the full padding
    dilation*(k-1) - padding is not negative and the input has the natural size (no extra
    output_padding rows of a transposed convolution)."""
    full = [d * (k - 1) - p for d, k, p in zip(s.dilation, s.kernel, s.padding)]
    natural = tuple(o + f - p for o, f, p in zip(s.out, full, s.padding))
    return min(full) >= 0 and natural == tuple(s.size)


def _winograd_fits(s: Shape, direction: str) -> bool:
    """Winograd's F(m x m, 3 x 3) computes 3x3 stride-1 correlations (the input gradient: the
    flipped one, so it must fit too)."""
    plain = s.kernel == (3, 3) and s.stride == (1, 1) and s.dilation == (1, 1)
    return plain and (direction != "input grad" or _flipped_fits(s, direction))


WINOGRAD_CHANNELS = 16
"""Fewest input and output channels for which Winograd's products (a^2 of them, (tiles, C) @
(C, O)) outweigh the transforms, whose cost grows with C + O rather than C * O."""

WINOGRAD_SIZE = 8
"""Smallest output height and width for Winograd: below it an image holds one or two tiles a
side, most of each tile's transforms spent on padding."""

WINOGRAD_PIXELS = 8192
"""Fewest output pixels (N * Ho * Wo) for Winograd: its transforms and the per-call and
per-block steps cost more than the multiplications they save on fewer (n2n bench times every
strategy of the networks' convolutions on either side of this)."""


def _winograd_pays(s: Shape, direction: str) -> bool:
    """Both channel counts and the correlation's output (for the input gradient: the flipped
    correlation's, the input) large enough; the choice of tile: :data:`RULES`."""
    out = s.size if direction == "input grad" else s.out
    enough = min(s.c, s.out_c) >= WINOGRAD_CHANNELS and s.n * out[0] * out[1] >= WINOGRAD_PIXELS
    return enough and min(out) >= WINOGRAD_SIZE


SUBPIXEL_CHANNELS = 16
"""Fewest input channels for ``'sub-pixel'``: its products' inner dimension is C to 4C, and below
this its extra steps (space to depth, four products, the taps unpacked) cost more than the
gathered patches' one product (measured on 2 cores: 16 -> 4 and 48 -> 3 channels 1.2-7x faster
than ``'gather'`` in every direction, 8 -> 2 channels' weight gradient 2x slower)."""


TESTS: dict[str, Callable[[Shape, str], bool]] = {
    "grouped or empty": lambda s, d: s.groups != 1 or s.n == 0,
    "one tap": lambda s, d: s.taps == 1,
    "few inputs": lambda s, d: s.c * s.taps <= _factor(d) * s.out_c,
    "few outputs": lambda s, d: s.out_c * s.taps <= _factor(d) * s.c,
    "stride 1": lambda s, d: s.stride == (1, 1),
    "flipped fits": _flipped_fits,
    "patches fit": lambda s, d: s.rows * s.c * s.taps <= PATCH_FLOATS,
    "winograd fits": lambda s, d: _winograd_fits(s, d),
    "winograd pays": lambda s, d: _winograd_pays(s, d),
    "sub-pixel fits": lambda s, d: _subpixel.applies(s.kernel, s.stride, s.dilation),
    "sub-pixel pays": lambda s, d: s.c >= SUBPIXEL_CHANNELS,
}
"""The planner's decisions, each one comparison of a :class:`Shape` (and the direction, for its
channel factor) with a threshold; :data:`RULES` combines them."""

_CHANNEL_RULES = [
    ("grouped gather", ("grouped or empty",)),  # groups are a batch dimension of the products
    ("per tap", ("one tap",)),  # a single tap needs neither the gathered nor the scattered form
    ("gather", ("few inputs",)),
    ("scatter", ("few outputs", "stride 1")),  # the shift trick needs stride 1
    ("sub-pixel", ("few outputs", "sub-pixel fits", "sub-pixel pays")),
    ("gather", ("few outputs",)),  # strided: the general gathered patches
]
"""The forward's and the weight gradient's first decisions, by channel counts and kernel."""

# Winograd F(4x4, 3x3) where it computes and pays: F(2x2, 3x3) (forceable) is slower on every
# shape n2n bench times (its section on the engine's strategies), its transforms moving more data
# per output pixel than the larger tile's. The weight gradient takes the patches first, where
# they fit: its single product has no transform to pay for.
RULES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "forward": [
        *_CHANNEL_RULES,
        ("winograd 4x4", ("winograd fits", "winograd pays")),
        ("patches", ("patches fit",)),
        ("per tap", ()),
    ],
    "input grad": [
        ("grouped gather", ("grouped or empty",)),
        ("winograd 4x4", ("winograd fits", "winograd pays")),  # the flipped correlation, by Winograd
        ("flipped", ("stride 1", "flipped fits")),
        ("per tap", ("one tap",)),
        ("sub-pixel", ("few outputs", "sub-pixel fits", "sub-pixel pays")),
        ("gather", ("few outputs",)),  # the col2im of the gathered product (few rows to scatter)
        ("gather", ("few inputs",)),
        ("per tap", ()),
    ],
    "weight grad": [  # the forward's decisions, with WEIGHT_GRAD_FACTOR
        *_CHANNEL_RULES,
        ("patches", ("patches fit",)),
        ("winograd 4x4", ("winograd fits", "winograd pays")),
        ("per tap", ()),
    ],
}
"""Per direction, the strategies in order with the tests (names in :data:`TESTS`) that must all
hold: the first rule whose tests hold is the plan."""

NEEDS = {
    "scatter": ("stride 1",),
    "flipped": ("stride 1", "flipped fits"),
    "winograd 2x2": ("winograd fits",),
    "winograd 4x4": ("winograd fits",),
    "sub-pixel": ("sub-pixel fits",),
}
"""Tests a strategy needs in order to compute a shape at all (the others compute any ungrouped,
non-empty convolution; ``'grouped gather'`` computes every one)."""

BOUNDARIES = sorted(
    {(d, t) for d, rules in RULES.items() for _, tests in rules for t in tests}
    | {(d, "one row block") for d in DIRECTIONS}
)
"""(direction, test) of every threshold the engine consults: the parity suite has a case on
each side of each (tests/test_product_shapes.py). ``'one row block'`` is the per-tap loops'
rows <= :data:`BLOCK_ROWS`."""

TRACE: set[tuple[str, str, bool]] | None = None
"""None, or (tests) a set that every consulted threshold adds (direction, test, outcome) to."""


def _decide(direction: str, test: str, outcome: bool) -> bool:
    if TRACE is not None:
        TRACE.add((direction, test, outcome))
    return outcome


def strategies(direction: str, s: Shape) -> list[str]:
    """Every strategy that computes ``s`` in ``direction``: the planner picks one of them, a
    caller may force any (``strategy=`` of :func:`conv2d` and its gradients)."""
    general = not TESTS["grouped or empty"](s, direction)
    return [
        name
        for name in IMPLEMENTATIONS[direction]
        if name == "grouped gather" or general and all(TESTS[t](s, direction) for t in NEEDS.get(name, ()))
    ]


def plan(direction: str, s: Shape, strategy: str | None = None) -> str:
    """The strategy that computes ``s`` in ``direction`` ('forward', 'input grad' or 'weight
    grad'): ``strategy`` when given (it must be one of :func:`strategies`), else the first of
    :data:`RULES` whose tests hold."""
    if strategy is not None:
        if strategy not in strategies(direction, s):
            raise ValueError(f"strategy {strategy!r} cannot compute {s} ({direction}): {strategies(direction, s)}")
        return strategy
    return next(
        name for name, tests in RULES[direction] if all(_decide(direction, t, TESTS[t](s, direction)) for t in tests)
    )


def _blocks(rows: int, direction: str) -> list[slice]:
    _decide(direction, "one row block", rows <= BLOCK_ROWS)
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
        return padded_last(x, padding, (hq, wq), scratch=True).view(1, -1, c), (hq, wq)
    xs = _scratch.take((sh, sw, n, hq, wq, c), x)  # each phase copied straight from x: one pass less
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
    data = _scratch.take((body + max(off for _, off in taps), c), x)
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
    for rows in _blocks(m, "forward"):
        block = y[rows]
        for t, (phase, off) in enumerate(taps):
            block.addmm_(xs[phase][_shifted(rows, off)], w[t], beta=min(t, 1))  # beta=0: never read
        if bias is not None:
            block += bias
    y[m:] = 0  # rows past the last valid pixel: never read, but keep them defined
    return y.view(n, hq, wq, out_c)[:, : out[0], : out[1]].permute(0, 3, 1, 2)


def _tap_input_grad(
    grad: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Pair, dilation: Pair, size: Pair
) -> Tensor:
    """Adjoint of :func:`_tap_conv`: each tap's product (gradient rows) @ (O, C) weights is added
    into the rows of its phase it was read from (the phases start at the bias, or zero); the
    phases are then put back together and the padding cropped. Returns the (N, C, *size)
    channels-last view."""
    n, out_c = grad.shape[:2]
    c, (kh, kw), (sh, sw) = weight.shape[1], weight.shape[2:], stride
    hq, wq = _phase_frame(size, padding, stride)
    g = padded_last(grad, (0, 0), (hq, wq), scratch=True).view(-1, out_c)  # zero beyond the outputs
    taps = _phase_taps((kh, kw), stride, dilation, wq)
    m = g.shape[0] - max(off for _, off in taps)
    w = weight.permute(2, 3, 0, 1).reshape(kh * kw, out_c, c)  # tap t: (O, C)
    # at stride 1 the single phase, put back together, is a view of it: the output itself
    phases = grad.new_empty if stride == (1, 1) else lambda *shape: _scratch.take(shape, grad)
    gx = _filled(phases(sh * sw, g.shape[0], c), bias)
    for rows in _blocks(m, "input grad"):
        for t, (phase, off) in enumerate(taps):
            gx[phase][_shifted(rows, off)].addmm_(g[rows], w[t])
    full = gx.view(sh, sw, n, hq, wq, c).permute(2, 3, 0, 4, 1, 5).reshape(n, hq * sh, wq * sw, c)
    return full[:, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]].permute(0, 3, 1, 2)


def _filled(buffer: Tensor, bias: Tensor | None, channel_dim: int = -1) -> Tensor:
    """``buffer`` set to ``bias`` along ``channel_dim`` (a transposed convolution's products are
    added onto it: no pass of their own to add it afterwards), or to zero."""
    if bias is None:
        return buffer.zero_()
    shape = [1] * buffer.dim()
    shape[channel_dim] = -1
    return buffer.copy_(bias.view(shape))


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
    wt = weight.permute(2, 3, 0, 1).reshape(kh * kw * out_c, c)
    y = _scratch.take((kh * kw * out_c, length), xl).addmm_(wt, xf, beta=0)
    out = xl.new_empty(out_c, length)
    head = out[:, :m]
    head.copy_(y[:out_c, :m])
    for t in range(1, kh * kw):
        head += y[t * out_c : (t + 1) * out_c, offs[t] : offs[t] + m]
    out[:, m:] = 0  # columns past the last valid pixel: never read, but keep them defined
    return out


def _tap_weight_grad(
    x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], stride: Pair, padding: Pair, dilation: Pair
) -> Tensor:
    """:func:`_tap_conv`'s products transposed: tap t's gradient is the sum over row blocks of
    (its phase's shifted input rows)^T @ (gradient rows), (C, O)."""
    out_c, c, kh, kw = weight_shape
    xs, (hq, wq), taps, m = _frame(x, (kh, kw), stride, padding, dilation)
    g = padded_last(grad, (0, 0), (hq, wq), scratch=True).view(-1, out_c)  # zero beyond the outputs
    gw = g.new_empty(kh * kw, c, out_c)
    for b, rows in enumerate(_blocks(m, "weight grad")):
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


# The three directions: each builds its Shape, asks plan() and runs the strategy's function
# from its table (a strategy is one entry in a table and one rule in RULES).


def _out_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> Pair:
    ho = (size[0] + 2 * padding[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (size[1] + 2 * padding[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return ho, wo


def _padded_size(s: Shape) -> Pair:
    return s.size[0] + 2 * s.padding[0], s.size[1] + 2 * s.padding[1]


def _plain(*tensors: Tensor | None) -> list[Any]:
    """The engine's operands without autograd history: it computes every gradient itself, and
    writing a tracked tensor into memory it keeps from call to call (:mod:`impl._scratch`, the
    kept Winograd tiles) would chain one call's autograd graph to the next."""
    return [None if t is None else t.detach() for t in tensors]


def _forward_shape(x: Tensor, weight: Tensor, stride: Pair, padding: Pair, dilation: Pair, groups: int) -> Shape:
    n, c, h, w = x.shape
    out_c, kernel = weight.shape[0], (weight.shape[2], weight.shape[3])
    out = _out_size((h, w), kernel, stride, padding, dilation)
    return Shape(n, c, out_c, kernel, stride, padding, dilation, groups, (h, w), out)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    strategy: str | None = None,
) -> Tensor:
    """Cross-correlation of (N, C, H, W) ``x`` with (O, C/g, kh, kw) ``weight``; ``strategy``
    forces one of :func:`strategies` (tests), else :func:`plan` chooses."""
    s = _forward_shape(x, weight, stride, padding, dilation, groups)
    _scratch.start()
    x, weight, bias = _plain(x, weight, bias)
    return FORWARD[plan("forward", s, strategy)](x, weight, bias, s)


KEPT_FLOATS = 1 << 22
"""Largest transformed input a training layer keeps for its weight gradient, in elements (16 MiB
of float32): the tiles take about 2.3 times the input they replace, held from the forward to the
backward, and n2n bench's peak memory bar holds for the U-Net at batch 64 only with its top
level's (58 MiB) left to be computed again."""


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
    """:func:`conv2d` and what :func:`conv2d_weight_grad` will read for it: where Winograd's
    same tile computes both directions and its tiles are within :data:`KEPT_FLOATS`, the
    forward's transformed input tiles (the weight gradient then skips transforming the input
    again), written over ``earlier`` tiles of the same size that are no longer needed; else
    ``x`` itself."""
    s = _forward_shape(x, weight, stride, padding, dilation, groups)
    strategy = plan("forward", s)
    _scratch.start()
    x, weight, bias = _plain(x, weight, bias)
    keep = strategy.startswith("winograd") and plan("weight grad", s) == strategy
    if keep and _winograd.kept_size(x.shape, padding, int(strategy[-1])) <= KEPT_FLOATS:
        reuse = earlier.v if isinstance(earlier, _winograd.Tiles) else None
        out, tiles = _winograd.conv2d(x, weight, bias, padding, int(strategy[-1]), keep=True, reuse=reuse)
        return out, tiles  # type: ignore[return-value]
    return FORWARD[strategy](x, weight, bias, s), x


def _patches_conv(x: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    """Small inputs: one GEMM of the channels-last patches, channels-last output."""
    cols = _patches(x, s.kernel, s.stride, s.padding, s.dilation, s.out)
    wm = weight.permute(2, 3, 1, 0).reshape(-1, s.out_c)  # row (i, j, c)
    out = cols @ wm if bias is None else bias.addmm(cols, wm)
    return out.view(s.n, *s.out, s.out_c).permute(0, 3, 1, 2)


def _per_tap_conv(x: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    return _tap_conv(x, weight, bias, s.stride, s.padding, s.dilation, s.out)


def _scatter_forward(x: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    """Few outputs, stride 1: channel-first (O, N*Hp*Wp)."""
    out = _scatter_conv(padded_last(x, s.padding, scratch=True), weight, s.dilation)
    if bias is not None:
        out += bias.view(-1, 1)
    return _output(out, s.n, _padded_size(s), s.out)


def _gather_forward(x: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    """Few channels: the gathered patches, transposed in the product, so the output is
    channels-last (stride 1: the shift trick on the padded frame)."""
    if s.stride == (1, 1):
        out = _gather_conv(padded(x, s.padding), weight, bias, s.dilation)
        return out.view(s.n, *_padded_size(s), s.out_c)[:, : s.out[0], : s.out[1]].permute(0, 3, 1, 2)
    cols = gather(padded(x, s.padding), s.kernel, s.stride, s.dilation, s.out)
    out = cols.t() @ weight.reshape(s.out_c, -1).t()
    if bias is not None:
        out += bias
    return out.view(s.n, *s.out, s.out_c).permute(0, 3, 1, 2)


def _winograd_forward(x: Tensor, weight: Tensor, bias: Tensor | None, s: Shape, m: int) -> Tensor:
    return _winograd.conv2d(x, weight, bias, s.padding, m)[0]


def _subpixel_forward(x: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    return _subpixel.conv2d(x, weight, bias, s.padding, s.out, partial(_blocks, direction="forward"))


def _grouped_forward(x: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    cols = gather(padded(x, s.padding), s.kernel, s.stride, s.dilation, s.out)
    out = (weight.reshape(s.groups, s.out_c // s.groups, -1) @ _grouped(cols, s.groups)).view(s.out_c, -1)
    if bias is not None:
        out += bias.view(-1, 1)
    return _output(out, s.n, s.out, s.out)


def conv2d_input_grad(
    grad: Tensor,
    weight: Tensor,
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    size: Pair,
    strategy: str | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """Adjoint of :func:`conv2d` in ``x`` for an input of spatial ``size``: (N, O, Ho, Wo)
    ``grad`` to (N, C, *size). Also the forward of the transposed convolution, whose ``bias``
    (C,) is added to every output."""
    n, out_c, ho, wo = grad.shape
    c, kernel = weight.shape[1] * groups, (weight.shape[2], weight.shape[3])
    s = Shape(n, c, out_c, kernel, stride, padding, dilation, groups, tuple(size), (ho, wo))  # type: ignore[arg-type]
    _scratch.start()
    grad, weight, bias = _plain(grad, weight, bias)
    return INPUT_GRAD[plan("input grad", s, strategy)](grad, weight, bias, s)


def _flipped_input_grad(grad: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    """Stride 1: the full correlation of the gradient with the flipped kernel, channels swapped."""
    full = (s.dilation[0] * (s.kernel[0] - 1) - s.padding[0], s.dilation[1] * (s.kernel[1] - 1) - s.padding[1])
    return conv2d(grad, weight.flip(2, 3).transpose(0, 1), bias, (1, 1), full, s.dilation, 1)


def _winograd_input_grad(grad: Tensor, weight: Tensor, bias: Tensor | None, s: Shape, m: int) -> Tensor:
    """The full correlation with the flipped kernel (as ``'flipped'``), by F(m x m, 3 x 3)."""
    full = (2 - s.padding[0], 2 - s.padding[1])
    return _winograd.conv2d(grad, weight.flip(2, 3).transpose(0, 1), bias, full, m)[0]


def _per_tap_input_grad(grad: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    return _tap_input_grad(grad, weight, bias, s.stride, s.padding, s.dilation, s.size)


def _subpixel_input_grad(grad: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    return _subpixel.input_grad(grad, weight, bias, s.padding, s.size, partial(_blocks, direction="input grad"))


def _gather_input_grad(grad: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    g = grad.permute(0, 2, 3, 1).reshape(-1, s.out_c).t()  # (O, N*Ho*Wo): a view of a channels-last gradient
    return _col2im(g, weight, bias, s)


def _grouped_input_grad(grad: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    return _col2im(grad.transpose(0, 1).reshape(s.out_c, s.rows), weight, bias, s)


def _col2im(g: Tensor, weight: Tensor, bias: Tensor | None, s: Shape) -> Tensor:
    """The transposed gathered product (C*kh*kw, N*Ho*Wo), each kernel tap scatter-added into the
    padded frame (which starts at the bias, or zero)."""
    (kh, kw), (ho, wo), groups = s.kernel, s.out, s.groups
    cols = weight.reshape(groups, s.out_c // groups, -1).transpose(1, 2) @ _grouped(g, groups)
    cols = cols.view(s.c, kh, kw, s.n, ho, wo)
    xp = _filled(g.new_empty(s.c, s.n, *_padded_size(s)), bias, channel_dim=0)
    stride, padding, dilation = s.stride, s.padding, s.dilation
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (ho - 1) + 1, stride[0])
            columns = slice(j * dilation[1], j * dilation[1] + stride[1] * (wo - 1) + 1, stride[1])
            xp[:, :, rows, columns] += cols[:, i, j]
    return xp[:, :, padding[0] : padding[0] + s.size[0], padding[1] : padding[1] + s.size[1]].transpose(0, 1)


def conv2d_weight_grad(
    x: Tensor | _winograd.Tiles,
    grad: Tensor,
    weight_shape: tuple[int, ...],
    stride: Pair,
    padding: Pair,
    dilation: Pair,
    groups: int,
    strategy: str | None = None,
) -> Tensor:
    """Gradient of :func:`conv2d` w.r.t. its weight. The output positions are those of ``grad``
    (so a transposed convolution's extra output_padding rows are simply never read). ``x`` may
    be the tiles :func:`conv2d_keeping` kept in its stead (their Winograd tile then computes it)."""
    (grad,) = _plain(grad)
    if isinstance(x, _winograd.Tiles):
        return _winograd.weight_grad(x, grad, x.padding, x.m)  # an entry point of the arena too
    out_c, cg, kh, kw = weight_shape
    n, _, ho, wo = grad.shape
    size = (x.shape[2], x.shape[3])
    s = Shape(n, cg * groups, out_c, (kh, kw), stride, padding, dilation, groups, size, (ho, wo))
    _scratch.start()
    (x,) = _plain(x)
    return WEIGHT_GRAD[plan("weight grad", s, strategy)](x, grad, weight_shape, s)


def _patches_weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], s: Shape) -> Tensor:
    cols = _patches(x, s.kernel, s.stride, s.padding, s.dilation, s.out)
    gw = cols.t() @ grad.permute(0, 2, 3, 1).reshape(-1, s.out_c)
    return gw.view(*s.kernel, s.c, s.out_c).permute(3, 2, 0, 1)


def _per_tap_weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], s: Shape) -> Tensor:
    return _tap_weight_grad(x, grad, weight_shape, s.stride, s.padding, s.dilation)


def _scatter_weight_grad_of(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], s: Shape) -> Tensor:
    return _scatter_weight_grad(padded_last(x, s.padding, scratch=True), grad, weight_shape, s.dilation)


def _gather_weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], s: Shape) -> Tensor:
    """The patches at the valid outputs times the gradient channels-last (a view when it is); no
    padded copy of the gradient (3 -> 48 at 32x32: 3.3 -> 1.4 ms)."""
    cols = gather(padded(x, s.padding), s.kernel, s.stride, s.dilation, s.out)
    return _from_taps_last(cols @ grad.permute(0, 2, 3, 1).reshape(-1, s.out_c), weight_shape)


def _subpixel_weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], s: Shape) -> Tensor:
    return _subpixel.weight_grad(x, grad, weight_shape, s.padding, partial(_blocks, direction="weight grad"))


def _winograd_weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], s: Shape, m: int) -> Tensor:
    return _winograd.weight_grad(x, grad, s.padding, m)


def _grouped_weight_grad(x: Tensor, grad: Tensor, weight_shape: tuple[int, ...], s: Shape) -> Tensor:
    cols = gather(padded(x, s.padding), s.kernel, s.stride, s.dilation, s.out)
    g = grad.transpose(0, 1).reshape(s.out_c, s.rows)
    return (_grouped(g, s.groups) @ _grouped(cols, s.groups).transpose(1, 2)).view(weight_shape)


FORWARD: dict[str, Callable[..., Tensor]] = {
    "patches": _patches_conv,
    "per tap": _per_tap_conv,
    "scatter": _scatter_forward,
    "gather": _gather_forward,
    "winograd 2x2": partial(_winograd_forward, m=2),
    "winograd 4x4": partial(_winograd_forward, m=4),
    "sub-pixel": _subpixel_forward,
    "grouped gather": _grouped_forward,
}
INPUT_GRAD: dict[str, Callable[..., Tensor]] = {
    "flipped": _flipped_input_grad,
    "per tap": _per_tap_input_grad,
    "gather": _gather_input_grad,
    "winograd 2x2": partial(_winograd_input_grad, m=2),
    "winograd 4x4": partial(_winograd_input_grad, m=4),
    "sub-pixel": _subpixel_input_grad,
    "grouped gather": _grouped_input_grad,
}
WEIGHT_GRAD: dict[str, Callable[..., Tensor]] = {
    "patches": _patches_weight_grad,
    "per tap": _per_tap_weight_grad,
    "scatter": _scatter_weight_grad_of,
    "gather": _gather_weight_grad,
    "winograd 2x2": partial(_winograd_weight_grad, m=2),
    "winograd 4x4": partial(_winograd_weight_grad, m=4),
    "sub-pixel": _subpixel_weight_grad,
    "grouped gather": _grouped_weight_grad,
}
IMPLEMENTATIONS: dict[str, dict[str, Callable[..., Tensor]]] = {
    "forward": FORWARD,
    "input grad": INPUT_GRAD,
    "weight grad": WEIGHT_GRAD,
}
"""Per direction, each strategy's function (the names :data:`RULES` chooses among)."""
