"""The EE-559 course's own ``test_framework_block``, verbatim, and where impl's convolutions
equal torch's bit for bit (see :mod:`impl._exact`)."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch._prims_common import are_strides_like_channels_last_or_false as torch_strides_like_channels_last

import impl
from impl import _exact
from Miniproject_2.model import Conv2d, Sequential, Sigmoid


@pytest.mark.parametrize("seed", range(200))
def test_course_framework_block(seed):
    torch.manual_seed(seed)
    x = torch.randn(1, 3, 32, 32)
    conv = Conv2d(3, 3, 3)
    assert torch.allclose(conv.forward(x), F.conv2d(x, conv.weight, conv.bias))
    sigmoid = Sigmoid()
    assert torch.allclose(sigmoid.forward(x), torch.sigmoid(x))
    seq = Sequential(conv, sigmoid)
    assert torch.allclose(seq.forward(x), F.conv2d(x, conv.weight, conv.bias).sigmoid())


LAYOUTS = {
    "contiguous": lambda x: x,
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "non-contiguous": lambda x: x.transpose(2, 3).contiguous().transpose(2, 3),
}
# batch 1 and a larger batch, few channels, odd and non-square kernels and images, strides,
# padding, dilation, bias or not; 90 x 91 x 3 is past the element count where oneDNN takes over
GRID = list(
    itertools.product([1, 2], [(1, 3), (3, 5)], [1, 3, (2, 3), 5], [(7, 8), (32, 32), (90, 91)], [1, 2], [0, 1], [1, 2])
)


def _fits(k, size, p, d):
    kh, kw = (k, k) if isinstance(k, int) else k
    return size[0] + 2 * p > d * (kh - 1) and size[1] + 2 * p > d * (kw - 1)


def _input(n, c, size, layout, dtype, seed):
    x = torch.randn(n, c, *size, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return LAYOUTS[layout](x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_conv2d_is_bit_exact_where_torch_runs_a_plain_product(layout, dtype):
    exact = 0
    for i, (n, (c, o), k, size, s, p, d) in enumerate(GRID):
        x = _input(n, c, size, layout, dtype, i)
        conv = impl.Conv2d(c, o, k, s, p, d, bias=i % 2 == 0, dtype=dtype)
        if not (_fits(k, size, p, d) and _exact.conv2d_applies(x, conv.weight, 1)):
            continue
        exact += 1
        expected = F.conv2d(x, conv.weight, conv.bias, s, p, d)
        assert torch.equal(conv(x), expected), (n, c, o, k, size, s, p, d)
    assert exact >= 40  # the rule covers the course's configurations, not a handful


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("stride,dilation", [((1, 2), (1, 1)), ((2, 1), (1, 1)), ((1, 1), (1, 2)), ((1, 1), (2, 1))])
def test_conv2d_is_bit_exact_with_different_row_and_column_steps(layout, stride, dilation):
    x = _input(1, 3, (12, 13), layout, torch.float32, 0)
    conv = impl.Conv2d(3, 2, 3, stride, 1, dilation)
    assert _exact.conv2d_applies(x, conv.weight, 1)
    assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, stride, 1, dilation))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_is_bit_exact_with_every_padding_mode(layout, mode):
    """The padding is torch's, layout included (its reflection and replication pads keep
    channels-last, its circular pad does not), so the product after it is torch's too."""
    x = _input(1, 3, (9, 10), layout, torch.float32, 1)
    conv = impl.Conv2d(3, 2, 3, padding=(2, 1), padding_mode=mode)
    ref = torch.nn.Conv2d(3, 2, 3, padding=(2, 1), padding_mode=mode)
    ref.load_state_dict(conv.state_dict())
    assert torch.equal(conv(x), ref(x).detach())


@pytest.mark.parametrize("layout", ["contiguous", "non-contiguous"])
def test_conv_transpose2d_is_bit_exact_where_torch_runs_a_plain_product(layout):
    exact = 0
    for i, (n, (c, o), k, size, s, p, d) in enumerate(GRID):
        x = _input(n, c, size, layout, torch.float32, i)
        for op in range(max(s, d)):
            conv = impl.ConvTranspose2d(c, o, k, s, p, op, bias=i % 2 == 0, dilation=d)
            if not _exact.conv_transpose2d_applies(x, conv.weight, 1, (s, s), (op, op)):
                continue
            exact += 1
            expected = F.conv_transpose2d(x, conv.weight, conv.bias, s, p, op, 1, d)
            assert torch.equal(conv(x), expected), (n, c, o, k, size, s, p, d, op)
    assert exact >= 40


@pytest.mark.parametrize(
    "shape,kernel,exact",
    [
        ((1, 5, 64, 64), 3, True),  # exactly MKLDNN_MIN_NUMEL elements
        ((1, 1, 3, 6827), 3, False),  # one more
        ((1, 3, 20, 20), (5, 3), True),  # a kernel past 3 in one direction only
        ((1, 3, 20, 20), (3, 5), True),
        ((1, 3, 20, 20), (5, 5), False),
        ((1, 3, 20, 20), (4, 4), False),  # past 3 in both directions, by one
    ],
)
def test_the_rule_at_its_edges(shape, kernel, exact):
    """On each side of ATen's element count and kernel size: exact exactly where the rule says."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    conv = impl.Conv2d(shape[1], 2, kernel, padding=1)
    assert _exact.conv2d_applies(x, conv.weight, 1) == exact
    if exact:
        assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias, 1, 1))


def test_the_rule_leaves_onednn_cases_to_the_engine():
    """Where ATen goes to oneDNN the exact path is not taken (it would not be exact there)."""
    w = torch.zeros(3, 3, 3, 3)
    assert _exact.conv2d_applies(torch.zeros(1, 3, 32, 32), w, 1)
    assert not _exact.conv2d_applies(torch.zeros(2, 3, 32, 32), w, 1)  # batch > 1
    assert not _exact.conv2d_applies(torch.zeros(1, 3, 90, 91), w, 1)  # more than 20480 elements
    assert not _exact.conv2d_applies(torch.zeros(1, 3, 32, 32), torch.zeros(3, 3, 5, 5), 1)  # kernel > 3x3
    assert not _exact.conv2d_applies(torch.zeros(1, 3, 32, 32), torch.zeros(3, 1, 3, 3), 3)  # groups
    assert _exact.conv2d_applies(torch.zeros(2, 3, 90, 91, dtype=torch.float64)[:1], w.double(), 1)
    assert not _exact.conv2d_applies(torch.zeros(1, 3, 8, 8, dtype=torch.float16), w.half(), 1)
    assert not _exact.conv_transpose2d_applies(
        torch.zeros(1, 3, 8, 8).contiguous(memory_format=torch.channels_last), w, 1, (1, 1), (0, 0)
    )  # ATen's channels-last transposed path is not reproduced
    assert _exact.conv_transpose2d_applies(torch.zeros(1, 3, 8, 8), w, 1, (2, 2), (0, 0))  # batch 1: plain


@pytest.mark.parametrize(
    "kernel,stride,output_padding,exact",
    [
        ((3, 3), (1, 1), (1, 1), True),  # output_padding not below the stride: exact at any batch
        ((3, 1), (1, 1), (1, 0), True),  # on one axis is enough
        ((3, 3), (2, 2), (1, 1), False),
        ((1, 1), (1, 1), (1, 1), False),  # ATen's 1x1 path sums in another order
        ((1, 3), (1, 1), (1, 1), True),
        ((1, 3), (1, 1), (0, 1), True),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_transposed_rule_beyond_batch_one(kernel, stride, output_padding, exact, dtype, monkeypatch):
    """Batch 2: only the big output padding of a float32 input reaches ATen's plain product (a
    float64 one is plain at batch 1 only); the layer takes the exact path exactly then."""
    x = torch.randn(2, 3, 8, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)  # rows and columns differ
    conv = impl.ConvTranspose2d(3, 2, kernel, stride, 0, output_padding, dilation=2, dtype=dtype)
    exact = exact and dtype == torch.float32
    assert _exact.conv_transpose2d_applies(x, conv.weight, 1, stride, output_padding) == exact
    assert not _exact.conv_transpose2d_applies(x[:0], conv.weight, 1, stride, output_padding)  # empty batch
    taken, product = [], _exact.conv_transpose2d
    monkeypatch.setattr(_exact, "conv_transpose2d", lambda *args: taken.append(1) or product(*args))
    out = conv(x)
    assert bool(taken) == exact
    if exact:
        assert torch.equal(out, F.conv_transpose2d(x, conv.weight, conv.bias, stride, 0, output_padding, 1, 2))


def _strided(sizes, order, step, expand):
    """A 4D tensor of ``sizes`` whose storage runs over the dimensions in ``order`` (outermost first),
    every ``step``-th element of the last one kept, the channels broadcast when ``expand``."""
    stored = [sizes[d] * (step if d == order[-1] else 1) for d in order]
    x = torch.empty(stored).permute(*[order.index(d) for d in range(4)])
    x = x[..., ::step] if order[-1] == 3 else x.narrow(order[-1], 0, sizes[order[-1]])
    return x[:, :1].expand(-1, sizes[1], -1, -1) if expand else x


def test_channels_last_strides_are_read_as_c10_reads_them():
    """ATen picks the channels-last algorithm by c10's stride test; the exact path must read every
    layout the same way: sizes of 0 and 1, every storage order, gaps and a broadcast channel."""
    seen = set()
    for sizes in itertools.product([1, 2], [1, 3], [0, 1, 2], [1, 4]):
        for order, step, expand in itertools.product(itertools.permutations(range(4)), [1, 2], [False, True]):
            x = _strided(list(sizes), list(order), step, expand)
            expected = torch_strides_like_channels_last(x.shape, x.stride())
            assert _exact.strides_like_channels_last(x) == expected, (x.shape, x.stride())
            seen.add(expected)
    rng = torch.Generator().manual_seed(0)  # and strides no tensor operation makes, overlapping ones among them
    for _ in range(3000):
        sizes = torch.randint(0, 4, (4,), generator=rng).tolist()
        strides = torch.randint(0, 13, (4,), generator=rng).tolist()
        x = torch.empty(200).as_strided(sizes, strides)
        assert _exact.strides_like_channels_last(x) == torch_strides_like_channels_last(sizes, strides), (
            sizes,
            strides,
        )
    assert seen == {True, False}
