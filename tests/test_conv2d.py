"""Conv2d against torch.nn.Conv2d: landmark grids, layouts, hypothesis, gradcheck."""

import itertools

import pytest
import torch
from hypothesis import given

import impl
import reference
from impl import _gemm
from tests import strategies as S
from tests.helpers import assert_close, assert_parity, gradcheck

DTYPES = [torch.float32, torch.float64]
KERNELS = [1, 2, 3, 5, (3, 1)]
STRIDES = [1, 2, 3, (2, 1)]
PADDINGS = [0, 1, 2, (1, 0), "same", "valid"]
GRID = [(k, s, p) for k, s, p in itertools.product(KERNELS, STRIDES, PADDINGS) if not (p == "same" and s != 1)]


def pair_of(mod_kwargs):
    return impl.Conv2d(**mod_kwargs), reference.Conv2d(**mod_kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding", GRID)
def test_kernel_stride_padding_grid(kernel, stride, padding, dtype):
    x = S.tensors((2, 3, 9, 8), dtype, seed=1)
    assert_parity(*pair_of(dict(in_channels=3, out_channels=4, kernel_size=kernel, stride=stride, padding=padding)), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("groups", [1, 2, 4])  # 4 == in_channels: depthwise
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_groups_dilation_bias_padding_mode(groups, dilation, bias, padding_mode, dtype):
    x = S.tensors((2, 4, 9, 10), dtype, seed=2)
    kw = dict(
        in_channels=4,
        out_channels=8,
        kernel_size=3,
        stride=(2, 1),
        padding=(2, 1),
        dilation=dilation,
        groups=groups,
        bias=bias,
        padding_mode=padding_mode,
    )
    assert_parity(*pair_of(kw), x)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("kernel,dilation", [(2, 1), (4, 1), (3, 2), ((2, 3), (1, 2))])
def test_same_padding_even_kernel_is_asymmetric(kernel, dilation, padding_mode):
    x = S.tensors((2, 2, 7, 8), torch.float64, seed=3)
    kw = dict(
        in_channels=2, out_channels=3, kernel_size=kernel, padding="same", dilation=dilation, padding_mode=padding_mode
    )
    out = assert_parity(*pair_of(kw), x)["output"]
    assert out.shape[2:] == x.shape[2:]


LAYOUTS = {
    "batched": lambda x: x,
    "unbatched": lambda x: x[0],
    "batch of one": lambda x: x[:1],
    "non-contiguous": lambda x: x.transpose(2, 3).contiguous().transpose(2, 3)[:, :, ::2],
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "contiguous": lambda x: x,
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_layouts(layout, padding_mode, dtype):
    x = LAYOUTS[layout](S.tensors((3, 3, 12, 7), dtype, seed=4))
    kw = dict(in_channels=3, out_channels=5, kernel_size=3, stride=2, padding=1, padding_mode=padding_mode)
    assert_parity(*pair_of(kw), x, noncontiguous_grad=layout == "non-contiguous")


# Products pick their GEMM form by their channel counts (impl._gemm): the gathered patches (few
# input channels), the scattered per-tap outputs (few output channels) or one product per tap
# over channels-last row blocks (stride 1: in a frame whose rows and images share their padding,
# unless the padding reaches past the kernel; strided: per stride phase); blocks of 5 rows leave
# a ragged last block. Strided convolutions have per tap or else the general gathered patches.
# (in channels, out channels, kernel); the input gradient swaps in and out, so "gather" and
# "scatter" each run the other strategy backwards. Where one product per tap would run on a small
# input, one product of the channels-last patches runs instead ("patches", impl._gemm.PATCH_FLOATS):
# every other case sets that size to 0, so "per tap" runs per tap.
STRATEGIES = {
    "gather": (1, 8, 3),
    "scatter": (8, 1, 3),
    "per tap": (4, 4, 3),
    "patches": (4, 4, 3),
    "single tap": (3, 5, 1),
    "winograd": (4, 4, 3),  # where it computes (3x3, stride 1, dilation 1); elsewhere per tap
}


def patches_only_for(strategy, monkeypatch):
    """Steer the planner: the patches only for "patches", Winograd (its thresholds at 1) only
    for "winograd"."""
    if strategy != "patches":
        monkeypatch.setattr(impl._gemm, "PATCH_FLOATS", 0)
    if strategy == "winograd":
        monkeypatch.setattr(impl._gemm, "WINOGRAD_CHANNELS", 1)
        monkeypatch.setattr(impl._gemm, "WINOGRAD_SIZE", 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strategy", STRATEGIES)
# the last two beyond the kernel's reach, the very last as wide as most of the input (stride
# phases with more padding than pixels)
@pytest.mark.parametrize("dilation,padding", [(1, 1), (2, (2, 1)), (1, (3, 0)), (1, (1, 4))])
@pytest.mark.parametrize("block_rows", [5, 8192])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("stride", [1, 2, (3, 2), (2, 1), (1, 2)])
def test_strategies(strategy, dilation, padding, block_rows, layout, stride, dtype, monkeypatch):
    monkeypatch.setattr(impl._gemm, "BLOCK_ROWS", block_rows)
    patches_only_for(strategy, monkeypatch)
    c, o, k = STRATEGIES[strategy]
    x = LAYOUTS[layout](S.tensors((2, c, 7, 6), dtype, seed=6))
    kw = dict(in_channels=c, out_channels=o, kernel_size=k, stride=stride, padding=padding, dilation=dilation)
    assert_parity(*pair_of(kw), x, noncontiguous_grad=True)


def winograd_matches_torch(n, c, out_c, size, padding, tile, channels_last, dtype=torch.float64, seed=0):
    """Winograd F(tile x tile, 3 x 3), forced, in all three directions against torch (the input
    gradient where the flipped correlation fits, padding up to 2)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *size, generator=g, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    w = torch.randn(out_c, c, 3, 3, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(out_c, generator=g, dtype=dtype)
    y = torch.nn.functional.conv2d(x, w, b, padding=padding)
    grad = torch.randn(y.shape, generator=g, dtype=dtype)
    gx, gw = torch.autograd.grad(y, (x, w), grad)
    x, w, strategy, k = x.detach(), w.detach(), f"winograd {tile}x{tile}", max(x.numel(), y.numel())
    args = ((1, 1), padding, (1, 1), 1)
    with torch.no_grad():
        assert_close("forward", _gemm.conv2d(x, w, b, *args, strategy), y.detach(), k)
        assert_close("weight gradient", _gemm.conv2d_weight_grad(x, grad, w.shape, *args, strategy), gw, k)
        y_kept, tiles = impl._winograd.conv2d(x, w, b, padding, tile, keep=True)  # the forward's tiles
        assert torch.equal(y_kept, _gemm.conv2d(x, w, b, *args, strategy))
        from_tiles = _gemm.conv2d_weight_grad(tiles, grad, w.shape, *args)
        assert_close("weight gradient from the kept tiles", from_tiles, gw, k)
        if max(padding) <= 2:
            assert_close("input gradient", _gemm.conv2d_input_grad(grad, w, *args, size, strategy), gx, k)


# Winograd's shape classes: padding 0, 1, 2 and beyond the kernel's reach; sizes odd and even,
# multiples of either tile or not, down to one output pixel; batch 1 (float32 batch 1 never reaches
# the engine through the layer) and more; one tile row per block (blocks spanning images) or the
# default blocks; both layouts and dtypes.
WINOGRAD_CASES = [
    ((8, 8), (1, 1)),
    ((7, 6), (0, 0)),
    ((5, 9), (2, 2)),
    ((6, 7), (2, 0)),
    ((4, 5), (3, 1)),
    ((1, 3), (1, 1)),
    ((12, 4), (0, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("block_tiles", [1, None], ids=["tile row blocks", "default blocks"])
@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("size,padding", WINOGRAD_CASES)
def test_winograd(size, padding, tile, block_tiles, n, channels_last, dtype, monkeypatch):
    if block_tiles is not None:
        monkeypatch.setitem(impl._winograd.BLOCK_TILES, tile, block_tiles)
    winograd_matches_torch(n, 5, 4, size, padding, tile, channels_last, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", [2, 4])
def test_winograd_transforms_compute_one_tile(tile, dtype, monkeypatch):
    """Y = A^T [(G g G^T) * (B^T d B)] A is the valid correlation of an a x a tile with a 3x3
    kernel, with the matrices built afresh (the cache emptied: a run that built them earlier
    cannot hide a wrong construction)."""
    monkeypatch.setattr(impl._winograd, "_MATRICES", {})
    a, gen = tile + 2, torch.Generator().manual_seed(tile)
    d, g = (torch.randn(shape, generator=gen, dtype=torch.float64) for shape in ((a, a), (3, 3)))
    mats = impl._winograd._matrices(tile, torch.empty(0, dtype=dtype))
    assert mats.bt.dtype == mats.at.dtype == mats.kernel.dtype == dtype
    u = (mats.kernel.double() @ g.reshape(9)).reshape(a, a).T  # the kernel's rows are (v, u)
    y = mats.at.double() @ (u * (mats.bt.double() @ d @ mats.bt.double().T)) @ mats.at.double().T
    direct = torch.stack([torch.stack([(d[i : i + 3, j : j + 3] * g).sum() for j in range(tile)]) for i in range(tile)])
    tol = 1e-12 if dtype == torch.float64 else 1e-5  # F(4x4)'s 1/6 and 1/24 rounded to float32
    torch.testing.assert_close(y, direct, rtol=tol, atol=tol)
    assert impl._winograd._matrices(tile, torch.empty(0, dtype=dtype)) is mats  # made once


LAYOUT_CASES = [(n, size, padding, m) for n in (1, 3) for size, padding in WINOGRAD_CASES for m in (2, 4)]


@pytest.mark.parametrize("n,size,padding,m", LAYOUT_CASES)
def test_winograd_layout_covers_the_outputs_and_no_more(n, size, padding, m):
    lay = impl._winograd.layout(n, size, padding, m)
    (ho, wo), (rows, tw), hf = lay.out, lay.tiles, lay.hf
    assert (ho, wo) == (size[0] + 2 * padding[0] - 2, size[1] + 2 * padding[1] - 2)
    assert hf >= size[0] + padding[0] and hf >= ho  # an image's frame rows hold it and its outputs
    assert (rows - 1) * m < (n - 1) * hf + ho <= rows * m  # the last tile row holds the last output row
    assert (tw - 1) * m < wo <= tw * m
    assert lay.width == tw * m + 2  # tiles m columns apart, each reading m + 2


@pytest.mark.parametrize("n,size,padding,m", LAYOUT_CASES)
def test_winograd_frames_are_zero_wherever_they_are_not_the_images(n, size, padding, m):
    """The input frame (image i's row r at frame row i*hf + top padding + r) and the output
    gradient's (image i's output row r at i*hf + r): exactly the tensors, zero everywhere else,
    and no larger than the tiles read."""
    lay = impl._winograd.layout(n, size, padding, m)
    (h, w), (ph, pw), (ho, wo), (rows, tw), hf = size, padding, lay.out, lay.tiles, lay.hf
    x, grad = torch.rand(n, 2, h, w) + 1, torch.rand(n, 3, ho, wo) + 1
    frame = torch.zeros(max(rows * m + 2, ph + n * hf), lay.width, 2)
    grad_frame = torch.zeros(max(rows * m, n * hf), tw * m, 3)
    for i in range(n):
        frame[i * hf + ph : i * hf + ph + h, pw : pw + w] = x[i].permute(1, 2, 0)
        grad_frame[i * hf : i * hf + ho, :wo] = grad[i].permute(1, 2, 0)
    assert torch.equal(impl._winograd._frame(x, lay), frame.view(len(frame), -1))
    assert torch.equal(impl._winograd._grad_frame(grad, lay), grad_frame[: rows * m].view(rows, m, tw, m, 3))


@pytest.mark.parametrize("rows,tw,block_tiles", list(itertools.product([1, 2, 3, 5, 7, 12], [1, 3, 40], [1, 8, 128])))
def test_winograd_blocks_partition_the_tile_rows(rows, tw, block_tiles, monkeypatch):
    """Blocks run over the tile rows in order, none empty, each of SUBBLOCKS equal sub-blocks
    (a single one only for fewer tile rows than that at the end), within ``block_tiles`` tiles
    unless a sub-block is a single tile row."""
    monkeypatch.setitem(impl._winograd.BLOCK_TILES, 4, block_tiles)
    subblocks = impl._winograd.SUBBLOCKS
    blocks = impl._winograd._blocks(impl._winograd.layout(1, (8, 8), (1, 1), 4)._replace(tiles=(rows, tw)))
    k = 0
    for block in blocks:
        assert block.k == k and block.rows >= 1
        assert block.groups == subblocks or (block is blocks[-1] and block.groups == 1 and rows - k < subblocks)
        assert block.groups * block.rows * tw <= block_tiles or block.rows == 1
        k += block.groups * block.rows
    assert k == rows


@given(S.winograd_configs(), S.dtypes, S.seeds)
def test_winograd_hypothesis(config, dtype, seed):
    winograd_matches_torch(**config, dtype=dtype, seed=seed)


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
def test_a_training_layer_keeps_winograd_tiles_for_its_weight_gradient(training, monkeypatch):
    """Where Winograd computes the forward and the weight gradient with one tile, a layer in
    training mode keeps the forward's transformed input instead of the input (the weight
    gradient reads it); in eval mode it keeps the input. Both match torch."""
    monkeypatch.setattr(impl._gemm, "WINOGRAD_PIXELS", 1)
    monkeypatch.setattr(impl._gemm, "WINOGRAD_CHANNELS", 2)
    monkeypatch.setattr(impl._gemm, "PATCH_FLOATS", 0)
    kw = dict(in_channels=5, out_channels=4, kernel_size=3, padding=1)
    layer, ref = pair_of(kw)
    layer.train(training)
    x = S.tensors((2, 5, 9, 10), torch.float64, seed=8)
    s = _gemm.Shape(2, 5, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, (9, 10), (9, 10))
    assert _gemm.plan("forward", s) == _gemm.plan("weight grad", s) == "winograd 4x4"
    assert_parity(layer, ref, x)
    kept = layer._saved[0]
    assert isinstance(kept, impl._winograd.Tiles) == training and kept.shape == x.shape
    if training:
        size = impl._winograd.kept_size(x.shape, (1, 1), 4)
        assert kept.v.numel() == size
        for limit, keeps in ((size, True), (size - 1, False)):  # one element too many: the input kept
            monkeypatch.setattr(impl._gemm, "KEPT_FLOATS", limit)
            layer, ref = pair_of(kw)
            assert_parity(layer, ref, x)
            assert isinstance(layer._saved[0], impl._winograd.Tiles) == keeps


def winograd_everywhere(monkeypatch):
    monkeypatch.setattr(impl._gemm, "WINOGRAD_PIXELS", 1)
    monkeypatch.setattr(impl._gemm, "WINOGRAD_CHANNELS", 2)
    monkeypatch.setattr(impl._gemm, "PATCH_FLOATS", 0)


def test_a_forward_reuses_the_tiles_only_after_a_backward_released_them(monkeypatch):
    """What a training forward keeps is written over only once a backward has used it: a second
    forward before any backward takes fresh memory, so the first forward's state stays intact
    (a caller may restore it and run its backward, as the gradcheck helper does)."""
    winograd_everywhere(monkeypatch)
    layer = impl.Conv2d(5, 4, 3, padding=1).double()
    x, g = S.tensors((2, 5, 9, 10), torch.float64, seed=8), S.tensors((2, 4, 9, 10), torch.float64, seed=9)
    layer(x)
    first = layer._saved
    before = first[0].v.clone()
    layer(x + 1)  # no backward in between: its own tiles
    assert layer._saved[0].v.data_ptr() != first[0].v.data_ptr() and torch.equal(first[0].v, before)
    second = layer._saved[0].v.data_ptr()
    layer.backward(g)  # done with the second forward's tiles
    layer(x)
    assert layer._saved[0].v.data_ptr() == second


def test_the_engine_ignores_autograd_history_of_its_operands(monkeypatch):
    """The engine keeps memory from call to call (the scratch arena, a training layer's tiles):
    operands that require grad compute as plain tensors, call after call, and the results carry
    no autograd history (impl computes its gradients itself)."""
    winograd_everywhere(monkeypatch)
    layer = impl.Conv2d(5, 4, 3, padding=1).double()
    x = S.tensors((2, 5, 9, 10), torch.float64, seed=8).requires_grad_(True)
    g = S.tensors((2, 4, 9, 10), torch.float64, seed=9).requires_grad_(True)
    for _ in range(3):
        y = layer(x)
        gx = layer.backward(g)
        assert y.grad_fn is None and gx.grad_fn is None
        assert not any(a.requires_grad for a in impl._scratch._ARENAS.values())


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_stride_phase_holding_only_padding(strategy, monkeypatch):
    # one input row at stride 2 and padding 1: the first row phase holds no input pixel
    patches_only_for(strategy, monkeypatch)
    c, o, k = STRATEGIES[strategy]
    x = S.tensors((2, c, 1, 5), torch.float64, seed=7)
    assert_parity(*pair_of(dict(in_channels=c, out_channels=o, kernel_size=k, stride=2, padding=1)), x)


def test_empty_batch():
    x = torch.randn(0, 3, 8, 8)
    assert_parity(*pair_of(dict(in_channels=3, out_channels=4, kernel_size=3, padding=1)), x)


@given(S.conv2d_configs(), S.dtypes, S.seeds)
def test_hypothesis(config, dtype, seed):
    kw, shape = config
    torch.manual_seed(seed)
    assert_parity(*pair_of(kw), S.tensors(shape, dtype, seed), seed=seed)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=(2, 3), padding="same", dilation=2, padding_mode="reflect", groups=2),
        dict(kernel_size=3, stride=(1, 2), padding=(2, 1), padding_mode="circular", bias=False),
        dict(kernel_size=2, padding=1, padding_mode="replicate"),
    ],
)
def test_gradcheck(kw):
    x = S.tensors((2, 4, 6, 5), torch.float64, seed=5)
    assert gradcheck(impl.Conv2d(4, 4, **kw), x)
