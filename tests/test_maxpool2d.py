"""MaxPool2d against torch.nn.MaxPool2d: landmarks (ties included), hypothesis, errors."""

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import impl
import reference
from tests import strategies as S
from tests.helpers import assert_parity

GRID = [
    dict(kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=c)
    for k, s, p, d, c in itertools.product([1, 2, 3, (3, 2)], [None, 1, 2, (2, 1)], [0, 1], [1, 2], [False, True])
    if 2 * p <= (k if isinstance(k, int) else min(k))
]


@pytest.mark.parametrize("kw", GRID, ids=str)
def test_grid(kw):
    x = S.tensors((2, 3, 9, 8), torch.float64, seed=1)
    assert_parity(impl.MaxPool2d(**kw), reference.MaxPool2d(**kw), x)


@pytest.mark.parametrize(
    "kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=3, stride=2)]
)
def test_ties_go_to_the_first_maximum_like_torch(kw):
    x = torch.randint(0, 2, (2, 3, 9, 8)).to(torch.float32)  # many equal values per window
    assert_parity(impl.MaxPool2d(**kw), reference.MaxPool2d(**kw), x)


def test_infinities_and_unbatched():
    x = torch.tensor([[[1.0, float("-inf")], [float("inf"), 2.0]]])
    assert_parity(impl.MaxPool2d(2), reference.MaxPool2d(2), x)


# Windows that tile the input (stride = kernel, no padding or dilation) take a fast path: the
# maximum over strided views and the first maximum's offset by arithmetic. Ties, infinities,
# a cropped remainder, ceil_mode that adds no window, channels-last input; NaN falls back.
TILED = [
    dict(kernel_size=2),
    dict(kernel_size=(2, 3)),
    dict(kernel_size=(3, 1), ceil_mode=True),
    dict(kernel_size=3, stride=3, ceil_mode=True),
]


@pytest.mark.parametrize("kw", TILED, ids=str)
@pytest.mark.parametrize("values", ["ties", "infinities", "nan", "random"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_tiled_windows(kw, values, channels_last):
    x = {
        "ties": torch.randint(0, 2, (2, 3, 9, 12)).double(),
        "infinities": torch.tensor([-math.inf, 0.0, math.inf]).double()[torch.randint(0, 3, (2, 3, 9, 12))],
        "random": S.tensors((2, 3, 10, 13), torch.float64, seed=7),
    }.get(values)
    if x is None:  # one NaN in some windows, two in another: torch's choice of NaN is kept
        x = S.tensors((2, 3, 9, 12), torch.float64, seed=8)
        x[0, 0, 0, 0] = x[1, 2, 3, 4] = x[1, 2, 3, 5] = float("nan")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    assert_parity(impl.MaxPool2d(**kw), reference.MaxPool2d(**kw), x)


# One step from tiling, each with every window inside the 9 x 12 input: the general path's.
NEAR_TILED = [
    dict(kernel_size=2, stride=3),  # windows that skip pixels
    dict(kernel_size=2, stride=(2, 3)),
    dict(kernel_size=3, padding=(1, 0)),
    dict(kernel_size=3, padding=(0, 1)),
    dict(kernel_size=2, dilation=(2, 1)),
    dict(kernel_size=2, dilation=(1, 2)),
]


@pytest.mark.parametrize("kw", NEAR_TILED, ids=str)
def test_windows_one_step_from_tiling(kw):
    x = S.tensors((2, 3, 9, 12), torch.float64, seed=9)
    assert_parity(impl.MaxPool2d(**kw), reference.MaxPool2d(**kw), x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_wide_rows(dtype):
    """Window offsets past 256 (bfloat16) or 2048 (float16) must still find the right maximum."""
    x = S.tensors((1, 2, 4, 2100), torch.float32, seed=12).to(dtype)
    pool = impl.MaxPool2d(2)
    out = pool(x)
    grad = pool.backward(torch.ones_like(out))
    xr = x.clone().requires_grad_(True)
    reference.MaxPool2d(2)(xr).backward(torch.ones_like(out))
    assert torch.equal(grad, xr.grad)


@st.composite
def pool_configs(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    kw = dict(
        kernel_size=k,
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=(draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))),
        dilation=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        ceil_mode=draw(st.booleans()),
    )
    low = [d * (kk - 1) + 1 for d, kk in zip(kw["dilation"], k)]
    shape = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 3)),
        draw(st.integers(low[0], low[0] + 5)),
        draw(st.integers(low[1], low[1] + 5)),
    )
    return kw, shape


@given(pool_configs(), S.dtypes, S.seeds)
def test_hypothesis(config, dtype, seed):
    kw, shape = config
    assert_parity(impl.MaxPool2d(**kw), reference.MaxPool2d(**kw), S.tensors(shape, dtype, seed), seed=seed)


def test_errors():
    with pytest.raises(ValueError, match="at most half"):
        impl.MaxPool2d(2, padding=2)
    with pytest.raises(RuntimeError):
        reference.MaxPool2d(2, padding=2)(torch.randn(1, 1, 4, 4))
    with pytest.raises(RuntimeError, match="MaxPool2d: input of size \\(1, 1\\) is too small"):
        impl.MaxPool2d(3)(torch.randn(1, 1, 1, 1))
    with pytest.raises(RuntimeError):
        reference.MaxPool2d(3)(torch.randn(1, 1, 1, 1))
    pool = impl.MaxPool2d(2)
    pool(torch.randn(1, 1, 4, 4))
    with pytest.raises(RuntimeError, match="grad_output must have the output's shape"):
        pool.backward(torch.randn(1, 1, 3, 3))
    assert repr(impl.MaxPool2d(3, 2, 1)) == "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))"
