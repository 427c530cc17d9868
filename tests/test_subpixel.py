"""The engine's 'sub-pixel' strategy (impl._subpixel: a 3x3 stride-2 convolution as four products
over the input's stride phases), forced, in all three directions against torch in float64; and
the layers where the planner picks it."""

import itertools

import pytest
import torch
from torch.nn import functional as TF

import impl
import reference
from impl import _gemm
from tests import strategies as S
from tests.helpers import assert_close, assert_parity

# (batch, in channels, out channels, height, width): odd and even sizes, down to the smallest
# input a 3x3 kernel fits (with padding 0: 3 pixels), batch 1 and more, channels 1 and more
SHAPES = [(1, 1, 1, 3, 3), (2, 3, 5, 7, 6), (3, 4, 2, 8, 5), (1, 6, 3, 4, 9), (2, 2, 7, 10, 10)]


def subpixel_matches_torch(n, c, out_c, size, padding, output_padding, bias, channels_last, seed):
    """Forward, weight gradient and input gradient (with ``output_padding`` extra rows and
    columns, as a transposed convolution's forward; ``bias`` then on its outputs) of the forced
    strategy against torch's conv2d and conv_transpose2d."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, *size, generator=g, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(out_c, c, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(out_c, generator=g, dtype=torch.float64) if bias else None
    y = TF.conv2d(x, w, b, stride=2, padding=padding)
    grad = torch.randn(y.shape, generator=g, dtype=torch.float64)
    bt = torch.randn(c, generator=g, dtype=torch.float64) if bias else None
    gx = TF.conv_transpose2d(grad, w, bt, stride=2, padding=padding, output_padding=output_padding)
    gw = torch.nn.grad.conv2d_weight(x, w.shape, grad, stride=2, padding=padding)
    args, k = ((2, 2), (padding, padding), (1, 1), 1), max(x.numel(), y.numel())
    assert_close("forward", _gemm.conv2d(x, w, b, *args, "sub-pixel"), y, k)
    assert_close("weight gradient", _gemm.conv2d_weight_grad(x, grad, w.shape, *args, "sub-pixel"), gw, k)
    size_t = tuple(gx.shape[2:])
    assert_close("input gradient", _gemm.conv2d_input_grad(grad, w, *args, size_t, "sub-pixel", bt), gx, k)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("padding,output_padding", [(0, 0), (1, 0), (1, 1), (0, 1), (2, 1)])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("block_rows", [5, 8192])  # 5: ragged row blocks
def test_forced_in_every_direction(shape, padding, output_padding, bias, channels_last, block_rows, monkeypatch):
    monkeypatch.setattr(_gemm, "BLOCK_ROWS", block_rows)
    n, c, out_c, h, w = shape
    if h + 2 * padding < 3 or w + 2 * padding < 3:
        pytest.skip("the kernel does not fit")
    subpixel_matches_torch(n, c, out_c, (h, w), padding, output_padding, bias, channels_last, seed=sum(shape))


@pytest.mark.parametrize("seed", range(20))
def test_random_shapes(seed):
    g = torch.Generator().manual_seed(seed)
    n, c, out_c = (int(v) for v in torch.randint(1, 6, (3,), generator=g))
    padding, output_padding, bias, channels_last = (int(v) for v in torch.randint(0, 2, (4,), generator=g))
    size = tuple(int(v) + 3 for v in torch.randint(0, 12, (2,), generator=g))
    subpixel_matches_torch(n, c, out_c, size, padding, output_padding, bool(bias), bool(channels_last), seed)


# The planner's choice: a strided 3x3 convolution down to a few channels, a transposed one up
# from a few, with enough input channels (impl._gemm.SUBPIXEL_CHANNELS); layers against torch.nn.
LAYERS = [
    (impl.Conv2d, reference.Conv2d, dict(in_channels=16, out_channels=1, kernel_size=3, stride=2, padding=1)),
    (impl.Conv2d, reference.Conv2d, dict(in_channels=16, out_channels=3, kernel_size=3, stride=2, bias=False)),
    (
        impl.ConvTranspose2d,
        reference.ConvTranspose2d,
        dict(in_channels=2, out_channels=16, kernel_size=3, stride=2, padding=1, output_padding=1),
    ),
]


@pytest.mark.parametrize("mod,ref,kw", LAYERS, ids=lambda v: repr(v) if isinstance(v, dict) else "")
@pytest.mark.parametrize("size", [(8, 8), (7, 6)])
def test_layers_where_the_planner_picks_it(mod, ref, kw, size):
    c = kw["in_channels"]
    x = S.tensors((2, c, *size), torch.float64, seed=3)
    layer = mod(**kw).to(dtype=torch.float64)
    if mod is impl.Conv2d:
        s = _gemm._forward_shape(x, layer.weight, layer.stride, layer.padding, (1, 1), 1)
        assert [_gemm.plan(d, s) for d in _gemm.DIRECTIONS] == ["sub-pixel"] * 3
    torch.manual_seed(0)
    assert_parity(mod(**kw), ref(**kw), x, noncontiguous_grad=True)


def test_packed_slots_hold_every_tap_once():
    assert sorted(impl._subpixel.SLOTS) == list(itertools.product(range(3), range(3)))
