"""Winograd's minimal filtering for 3x3 stride-1 convolutions (Lavin and Gray, "Fast Algorithms
for Convolutional Neural Networks", 2016), in blocks of tiles, every step a matrix product.

F(m x m, 3 x 3) computes each m x m output tile from an a x a input tile (a = m + 2) as
``Y = A^T [(G g G^T) * (B^T d B)] A``: the elementwise product ``*`` becomes, summed over the
input channels, a^2 independent (tiles, C) @ (C, O) products, one ``bmm``; a direct convolution
needs 9 m^2 multiplications per channel pair and tile where this needs a^2 (F(2x2): 16 instead of
36, F(4x4): 36 instead of 144). The transforms are the price: per block of tile rows, ``B^T``
is applied along the rows (one ``bmm`` over overlapping row windows of the padded frame, a view)
and then along the columns (one gather, one product); ``A^T`` likewise on the way out. A block
keeps its tiles in cache from the input transform to the output.

The weight gradient is the adjoint of the same algorithm ("gradients by duality"): the output
gradient's tiles go back through the adjoint output transform, ``dM = A dY A^T``, the products
become ``dU = sum over tiles of V^T dM`` (a^2 products over the tiles), and ``dW = G^T dU G``.
The input gradient is a forward: the full correlation with the flipped, transposed kernel.

Frame: the images stacked along the rows, image n's padded row y at frame row ``n*hf + y``,
where ``hf`` (at least H + top padding, and the output height) lets an image's bottom padding be
the next one's top padding; tile rows run over the whole frame, so one block may span images
(the tiles between images compute outputs nobody reads). Columns: each row padded to
``tw*m + 2``, the tiles of a row side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from torch import Tensor

from . import _scratch

Pair = tuple[int, int]

TRANSFORMS: dict[int, tuple[list[list[float]], list[list[float]], list[list[float]]]] = {
    # (B^T, G, A^T) for the interpolation points 0, 1, -1 and infinity (Lavin and Gray, section 4.1)
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    # points 0, 1, -1, 2, -2 and infinity (section 4.2)
    4: (
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}
"""Output tile m -> the transform matrices. Both have the point 1, whose column of A^T is all
ones: a bias added at that transformed position reaches every output of the tile unchanged."""

ONES = 1
"""Index of the point 1: column ``ONES`` of every A^T above is all ones."""

BLOCK_TILES = {2: 256, 4: 128}
"""Tiles per block (whole tile rows, at least one): a block's transformed input, products and
output (a^2 * tiles * channels each) stay within the L2/L3 caches. Chosen by timing blocks of
48 to 4096 tiles in turn with 48 channels on these cores, one and two threads: larger blocks
spill the caches, smaller ones pay the per-step overheads more often."""


class Layout(NamedTuple):
    """Where the tiles of an (N, C, H, W) input with ``padding`` lie: ``hf`` frame rows per
    image, ``tiles`` (tile rows of the whole frame, tiles per row), the frame ``width`` and the
    output size ``out``."""

    m: int
    size: Pair
    padding: Pair
    hf: int
    tiles: Pair
    width: int
    out: Pair


def layout(n: int, size: Pair, padding: Pair, m: int) -> Layout:
    (h, w), (ph, pw) = size, padding
    ho, wo = h + 2 * ph - 2, w + 2 * pw - 2
    hf = max(h + ph, ho)
    tw = -(-wo // m)
    rows = -(-((n - 1) * hf + ho) // m)
    return Layout(m, size, padding, hf, (rows, tw), tw * m + 2, (ho, wo))


class _Matrices(NamedTuple):
    bt: Tensor
    at: Tensor
    kernel: Tensor  # (a*a, 9): g -> G g G^T, row (v, u), column (i, j), entry G[u, i] G[v, j]


_MATRICES: dict[tuple[int, object, object], _Matrices] = {}
"""Per (tile, dtype, device): the transforms as tensors, made once (four small tensors per
combination; making them costs as much as a small convolution's products)."""


def _matrices(m: int, like: Tensor) -> _Matrices:
    key = (m, like.dtype, like.device)
    if key not in _MATRICES:
        bt, g, at = (like.new_tensor(t) for t in TRANSFORMS[m])
        a = m + 2
        kernel = (g.view(1, a, 3, 1) * g.view(a, 1, 1, 3)).reshape(a * a, 9)
        _MATRICES[key] = _Matrices(bt, at, kernel)
    return _MATRICES[key]


def _frame(x: Tensor, lay: Layout) -> Tensor:
    """(rows, width * C) frame of ``x`` (channels-last rows), zero wherever it is not ``x``."""
    n, c = x.shape[:2]
    (h, w), (ph, pw) = lay.size, lay.padding
    rows = max(lay.tiles[0] * lay.m + 2, ph + n * lay.hf)
    buf = _scratch.take((rows, lay.width, c), x)
    buf[:ph] = 0
    buf[ph + n * lay.hf :] = 0
    body = buf[ph : ph + n * lay.hf].view(n, lay.hf, lay.width, c)
    body[:, h:] = 0  # this image's bottom padding, the next one's top padding
    body[:, :h, :pw] = 0
    body[:, :h, pw + w :] = 0
    body[:, :h, pw : pw + w] = x.permute(0, 2, 3, 1)
    return buf.view(rows, -1)


SUBBLOCKS = 2
"""Sub-blocks per block, stacked as the batch of every step: the transforms' products have six
(or four) rows, and BLAS runs such a product on one thread however many it has; as a batch of
sub-blocks it spreads them over its threads (on one thread the batch costs what one product does)."""


class _Block(NamedTuple):
    """Tile rows [k, k + groups * rows): ``groups`` sub-blocks of ``rows`` tile rows each."""

    k: int
    groups: int
    rows: int


def _blocks(lay: Layout) -> list[_Block]:
    """The blocks of :data:`SUBBLOCKS` sub-blocks (the last: as many whole sub-blocks as the
    remaining tile rows fill, then, for fewer than :data:`SUBBLOCKS` rows left, a single one)."""
    rows, tw = lay.tiles
    step = max(1, BLOCK_TILES[lay.m] // (SUBBLOCKS * tw))
    blocks, k = [], 0
    while rows - k >= SUBBLOCKS:
        kb = min(step, (rows - k) // SUBBLOCKS)
        blocks.append(_Block(k, SUBBLOCKS, kb))
        k += SUBBLOCKS * kb
    return blocks + ([_Block(k, 1, rows - k)] if k < rows else [])


class _Workspace:
    """One buffer per step of a block, made once per call for the largest block and reused by
    every block (the products write into them in place) rather than allocated anew per block:
    a block's temporaries are a few MiB, which the allocator may give back to the system and
    take again, page faults included, between blocks."""

    def __init__(self, like: Tensor, lay: Layout, blocks: list[_Block], c: int, out_c: int) -> None:
        m, a = lay.m, lay.m + 2
        tiles = max(b.groups * b.rows for b in blocks) * lay.tiles[1]
        self.row = lay.width * c
        self.rows = _scratch.take((tiles // lay.tiles[1] * a * self.row,), like)  # B^T along the rows
        self.cols = _scratch.take((a * a * tiles * c,), like)  # their columns, gathered
        self.v = _scratch.take((a * a * tiles * c,), like)  # B^T along the columns
        self.prod = _scratch.take((a * a * tiles * out_c,), like)  # the products
        self.half = _scratch.take((m * a * tiles * out_c,), like)  # A^T along v
        self.out = _scratch.take((m * m * tiles * out_c,), like)  # A^T along u

    @staticmethod
    def take(buffer: Tensor, *shape: int) -> Tensor:
        """The contiguous leading part of ``buffer`` with ``shape`` (a smaller last block)."""
        size = 1
        for s in shape:
            size *= s
        return buffer[:size].view(shape)


def _input_tiles(
    frame: Tensor, lay: Layout, block: _Block, bt: Tensor, ws: _Workspace, kept: Tensor | None = None
) -> Tensor:
    """B^T d B of the block's tiles: (groups * a*a, tiles of a sub-block, C), position (v, u)
    within each sub-block; written into the block's part of ``kept`` (:func:`_kept_block`) when
    given, else into the workspace."""
    m, a, tw = lay.m, lay.m + 2, lay.tiles[1]
    (k, g, kb), row = block, ws.row
    c = row // lay.width
    windows = frame.as_strided((g * kb, a, row), (m * row, row, 1), frame.storage_offset() + k * m * row)
    rows = ws.take(ws.rows, g * kb, a, row).baddbmm_(bt.expand(g * kb, a, a), windows, beta=0)
    cols = ws.take(ws.cols, g, a, a, kb, tw, c)  # (sub-block, j, u, kb, tw, C): each tile's columns
    cols.copy_(rows.as_strided(cols.shape, (kb * a * row, c, row, a * row, m * c, 1), rows.storage_offset()))
    v = ws.take(ws.v, g, a, a * kb * tw * c) if kept is None else _kept_block(kept, lay, block, c).view(g, a, -1)
    v.baddbmm_(bt.expand(g, a, a), cols.view(g, a, -1), beta=0)
    return v.view(g * a * a, kb * tw, c)


class Tiles(NamedTuple):
    """The forward's transformed input tiles (B^T d B of every tile), kept for the weight
    gradient, which then skips building the frame and transforming it again: ``v`` holds each
    block's (groups * a*a, tiles, C) in turn (:func:`_kept_block`); ``shape`` is the input's."""

    v: Tensor
    shape: tuple[int, int, int, int]
    padding: Pair
    m: int


def kept_size(shape: Sequence[int], padding: Pair, m: int) -> int:
    """Elements of the tiles :func:`conv2d` keeps for an (N, C, H, W) input."""
    n, c, h, w = shape
    lay = layout(n, (h, w), padding, m)
    return lay.tiles[0] * lay.tiles[1] * (m + 2) ** 2 * c


def _kept_buffer(like: Tensor, size: int, reuse: Tensor | None) -> Tensor:
    fits = reuse is not None and reuse.numel() == size and reuse.dtype == like.dtype and reuse.device == like.device
    return reuse if fits else like.new_empty(size)  # type: ignore[return-value]


def _kept_block(kept: Tensor, lay: Layout, block: _Block, c: int) -> Tensor:
    """Block ``block``'s part of a kept tile buffer: tile rows [k, k + groups * rows), a*a
    positions of tw tiles of C channels each, in the layout :func:`_input_tiles` writes."""
    per_row = (lay.m + 2) ** 2 * lay.tiles[1] * c
    start, rows = block.k * per_row, block.groups * block.rows
    return kept[start : start + rows * per_row].view(block.groups * (lay.m + 2) ** 2, block.rows * lay.tiles[1], c)


def transformed_weight(weight: Tensor, m: int) -> Tensor:
    """G g G^T of an (O, C, 3, 3) kernel: (a*a, C, O), position (v, u); one small product (a
    broadcast 3x3 product per channel pair costs more than a block of tiles)."""
    out_c, c = weight.shape[:2]
    return (_matrices(m, weight).kernel @ weight.reshape(out_c * c, 9).t()).view(-1, out_c, c).transpose(1, 2)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    padding: Pair,
    m: int,
    keep: bool = False,
    reuse: Tensor | None = None,
) -> tuple[Tensor, Tiles | None]:
    """Correlation of (N, C, H, W) ``x`` with a (O, C, 3, 3) ``weight``, stride 1, by F(m x m,
    3 x 3): the (N, O, Ho, Wo) view of a channels-last frame, and (``keep``) the transformed
    input tiles for :func:`weight_grad` (else None), written into ``reuse`` where it has their
    size and dtype (the tiles an earlier call kept: no fresh pages to fault in every step)."""
    n, c, out_c = x.shape[0], x.shape[1], weight.shape[0]
    lay = layout(n, (x.shape[2], x.shape[3]), padding, m)
    _scratch.start()  # an entry point: its callers hold no temporaries
    bt, at, _ = _matrices(m, x)
    a, tw = m + 2, lay.tiles[1]
    frame, u, blocks = _frame(x, lay), transformed_weight(weight, m), _blocks(lay)
    ws, us = _Workspace(x, lay, blocks, c, out_c), {1: u, SUBBLOCKS: u.repeat(SUBBLOCKS, 1, 1)}
    kept = _kept_buffer(x, kept_size(x.shape, padding, m), reuse) if keep else None
    y = x.new_empty(lay.tiles[0], m, tw, m, out_c)
    for block in blocks:
        (k, g, kb), t = block, block.rows * tw
        prod = ws.take(ws.prod, g * a * a, t, out_c)  # (sub-block, v, u, tiles, O)
        prod.baddbmm_(_input_tiles(frame, lay, block, bt, ws, kept), us[g], beta=0)
        if bias is not None:
            prod.view(g, a * a, t, out_c)[:, ONES * a + ONES] += bias
        half = ws.take(ws.half, g, m, a * t * out_c)  # A^T along v: (sub-block, q, u, tiles * O)
        half.baddbmm_(at.expand(g, m, a), prod.view(g, a, -1), beta=0)
        out = ws.take(ws.out, g * m, m, t * out_c)  # A^T along u: (sub-block, q, p, tiles * O)
        out.baddbmm_(at.expand(g * m, m, a), half.view(g * m, a, -1), beta=0)
        rows = y[k : k + g * kb].view(g, kb, m, tw, m, out_c)
        rows.copy_(out.view(g, m, m, kb, tw, out_c).permute(0, 3, 2, 4, 1, 5))
    row = tw * m * out_c
    out = y.as_strided((n, *lay.out, out_c), (lay.hf * row, row, out_c, 1)).permute(0, 3, 1, 2)
    return out, (None if kept is None else Tiles(kept, (n, c, x.shape[2], x.shape[3]), padding, m))


def _grad_frame(grad: Tensor, lay: Layout) -> Tensor:
    """(tile rows, m, tw, m, O) frame of an (N, O, Ho, Wo) output gradient, zero at every output
    nobody reads (so those tiles add nothing to the weight gradient)."""
    n, out_c = grad.shape[:2]
    (ho, wo), (rows, tw), m = lay.out, lay.tiles, lay.m
    height = max(rows * m, n * lay.hf)
    buf = _scratch.take((height, tw * m, out_c), grad)
    buf[n * lay.hf :] = 0
    body = buf[: n * lay.hf].view(n, lay.hf, tw * m, out_c)
    body[:, ho:] = 0
    body[:, :ho, wo:] = 0
    body[:, :ho, :wo] = grad.permute(0, 2, 3, 1)
    return buf[: rows * m].view(rows, m, tw, m, out_c)


def weight_grad(x: Tensor | Tiles, grad: Tensor, padding: Pair, m: int) -> Tensor:
    """Gradient of :func:`conv2d` w.r.t. its (O, C, 3, 3) weight, the adjoint of its steps:
    ``dW = G^T (sum over tiles of V^T A dY A^T) G``; ``x`` the input, or the tiles its forward
    kept (``padding`` and ``m`` then theirs)."""
    n, c, h, w = x.shape
    out_c = grad.shape[1]
    lay = layout(n, (h, w), padding, m)
    _scratch.start()  # an entry point: its callers hold no temporaries
    bt, at, _ = _matrices(m, grad)
    a, tw = m + 2, lay.tiles[1]
    frame = None if isinstance(x, Tiles) else _frame(x, lay)
    gy, blocks = _grad_frame(grad, lay), _blocks(lay)
    ws = _Workspace(grad, lay, blocks, c, out_c)
    du = grad.new_empty(SUBBLOCKS, a * a, c, out_c)  # per sub-block, summed at the end
    for i, block in enumerate(blocks):
        (k, g, kb), t = block, block.rows * tw
        tiles = ws.take(ws.out, g, m, m, kb, tw, out_c)  # (sub-block, q, p, tiles, O): the output transform's
        tiles.copy_(gy[k : k + g * kb].view(g, kb, m, tw, m, out_c).permute(0, 4, 2, 1, 3, 5))
        half = ws.take(ws.half, g * m, a, t * out_c)  # adjoint along u: (sub-block, q, u, ...)
        half.baddbmm_(at.t().expand(g * m, a, m), tiles.view(g * m, m, -1), beta=0)
        dm = ws.take(ws.prod, g, a, a * t * out_c)  # adjoint along v: (sub-block, v, u, ...)
        dm.baddbmm_(at.t().expand(g, a, m), half.view(g, m, -1), beta=0)
        if frame is None:
            v = _kept_block(x.v, lay, block, c)  # type: ignore[union-attr]
        else:
            v = _input_tiles(frame, lay, block, bt, ws)
        acc = du[:g].view(g * a * a, c, out_c)
        acc.baddbmm_(v.transpose(1, 2), dm.view(g * a * a, t, out_c), beta=min(i, 1))  # beta=0: du starts empty
    du = du[0] if blocks[0].groups == 1 else du.sum(0)  # one sub-block: a single block, du[1] unused
    # G^T dU G: the kernel transform's adjoint
    return (du.view(a * a, c * out_c).t() @ _matrices(m, grad).kernel).view(c, out_c, 3, 3).transpose(0, 1)
