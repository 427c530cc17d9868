"""ConvTranspose2d against torch.nn.ConvTranspose2d: landmarks, output_size, hypothesis, gradcheck."""

import itertools

import pytest
import torch
from hypothesis import given

import impl
import reference
from tests import strategies as S
from tests.helpers import assert_parity, gradcheck

DTYPES = [torch.float32, torch.float64]
# (stride, dilation, output_padding): output_padding < stride or < dilation, including the
# case output_padding >= stride that only a dilation > output_padding allows.
OUTPUT_PADDINGS = [(1, 1, 0), (2, 1, 1), (3, 1, 2), ((2, 3), 1, (1, 2)), (1, 2, 1), (2, 3, 2), (1, (1, 3), (0, 2))]
GRID = list(itertools.product([1, 2, 3, (3, 1)], [0, 1, (1, 0)], OUTPUT_PADDINGS))


def pair_of(**kw):
    return impl.ConvTranspose2d(**kw), reference.ConvTranspose2d(**kw)


# The forward is the adjoint of Conv2d's products (impl._gemm): one product per tap added into
# its stride phase, in row blocks (5 rows: a ragged last block), or the gathered-patch col2im
# for few channels; its backward runs Conv2d's forward and weight-gradient strategies, per tap or,
# on small inputs, with the channels-last patches (impl._gemm.PATCH_FLOATS; 0: never). At stride 1
# (undilated), Winograd where its thresholds (set to 1 here) allow: all three directions.
@pytest.mark.parametrize("channels", [(4, 4), (1, 8), (8, 1)], ids=["per tap", "few in", "few out"])
@pytest.mark.parametrize("sdo", [(1, 1, 0), (2, 1, 1), ((3, 2), 2, (1, 1))])
@pytest.mark.parametrize("block_rows,patch_floats", [(5, 0), (8192, 0), (8192, impl._gemm.PATCH_FLOATS)])
@pytest.mark.parametrize("winograd", [False, True], ids=["", "winograd"])
def test_strategies(channels, sdo, block_rows, patch_floats, winograd, monkeypatch):
    monkeypatch.setattr(impl._gemm, "BLOCK_ROWS", block_rows)
    monkeypatch.setattr(impl._gemm, "PATCH_FLOATS", patch_floats)
    if winograd:
        monkeypatch.setattr(impl._gemm, "WINOGRAD_CHANNELS", 1)
        monkeypatch.setattr(impl._gemm, "WINOGRAD_SIZE", 1)
        monkeypatch.setattr(impl._gemm, "WINOGRAD_PIXELS", 1)
    stride, dilation, output_padding = sdo
    x = S.tensors((2, channels[0], 5, 4), torch.float64, seed=9).contiguous(memory_format=torch.channels_last)
    kw = dict(kernel_size=3, stride=stride, padding=1, output_padding=output_padding, dilation=dilation)
    assert_parity(*pair_of(in_channels=channels[0], out_channels=channels[1], **kw), x, noncontiguous_grad=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,padding,sdo", GRID)
def test_kernel_padding_output_padding_grid(kernel, padding, sdo, dtype):
    stride, dilation, output_padding = sdo
    x = S.tensors((2, 3, 5, 4), dtype, seed=1)
    assert_parity(
        *pair_of(
            in_channels=3,
            out_channels=4,
            kernel_size=kernel,
            stride=stride,
            padding=padding,
            output_padding=output_padding,
            dilation=dilation,
        ),
        x,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_groups_bias(groups, bias, dtype):
    x = S.tensors((2, 4, 5, 6), dtype, seed=2)
    assert_parity(
        *pair_of(
            in_channels=4,
            out_channels=8,
            kernel_size=3,
            stride=2,
            padding=1,
            output_padding=1,
            groups=groups,
            bias=bias,
        ),
        x,
    )


LAYOUTS = {
    "unbatched": lambda x: x[0],
    "batch of one": lambda x: x[:1],
    "non-contiguous": lambda x: x.transpose(2, 3).contiguous().transpose(2, 3)[:, :, ::2],
    "channels_last": lambda x: x.contiguous(memory_format=torch.channels_last),
    "empty batch": lambda x: x[:0],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts(layout, dtype):
    x = LAYOUTS[layout](S.tensors((3, 3, 8, 5), dtype, seed=3))
    assert_parity(
        *pair_of(in_channels=3, out_channels=2, kernel_size=3, stride=2, padding=1),
        x,
        noncontiguous_grad=layout == "non-contiguous",
    )


@pytest.mark.parametrize("output_size", [(9, 13), (10, 15), [2, 4, 10, 14], (9, 14)])
def test_output_size(output_size):
    x = S.tensors((2, 3, 5, 5), torch.float64, seed=4)
    out = assert_parity(
        *pair_of(in_channels=3, out_channels=4, kernel_size=3, stride=(2, 3), padding=1), x, output_size=output_size
    )["output"]
    assert tuple(out.shape[2:]) == tuple(output_size)[-2:]


def test_output_size_unbatched():
    x = S.tensors((3, 5, 5), torch.float64, seed=4)
    assert_parity(*pair_of(in_channels=3, out_channels=4, kernel_size=3, stride=2), x, output_size=(3, 12, 11))


@pytest.mark.parametrize("output_size", [(8, 10), (11, 10), (1, 2, 3), (2, 3, 4, 5, 6)])
def test_output_size_out_of_range(output_size):
    x = torch.randn(2, 3, 5, 5)
    for mod in pair_of(in_channels=3, out_channels=4, kernel_size=3, stride=2, padding=1):
        with pytest.raises(ValueError, match="output"):
            mod(x, output_size=output_size)


@given(S.conv_transpose2d_configs(), S.dtypes, S.seeds)
def test_hypothesis(config, dtype, seed):
    kw, shape = config
    torch.manual_seed(seed)
    assert_parity(*pair_of(**kw), S.tensors(shape, dtype, seed), seed=seed)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=3, stride=2, padding=1, output_padding=1),
        dict(kernel_size=(2, 3), stride=1, dilation=2, output_padding=1, groups=2),
        dict(kernel_size=3, stride=(3, 1), padding=(2, 0), bias=False),
    ],
)
def test_gradcheck(kw):
    x = S.tensors((2, 4, 4, 5), torch.float64, seed=5)
    assert gradcheck(impl.ConvTranspose2d(4, 4, **kw), x)
