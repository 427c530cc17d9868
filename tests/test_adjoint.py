"""Adjoint identities (float64): <conv(x), y> = <x, conv_transpose(y)> with shared weights, and
<up(x), y> = <x, up.backward(y)>. They hold exactly in exact arithmetic, so the tolerance is
float64 rounding only."""

import torch
from hypothesis import given

import impl
from tests import strategies as S


def inner(a, b):
    return (a * b).sum().item()


def assert_adjoint(lhs, rhs, scale):
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, scale), (lhs, rhs)


@given(S.conv2d_configs(), S.seeds)
def test_conv2d_and_conv_transpose2d_are_adjoint(config, seed):
    kw, shape = config
    kw = {**kw, "padding_mode": "zeros", "bias": False}
    if isinstance(kw["padding"], str):
        kw["padding"] = 0
    torch.manual_seed(seed)
    conv = impl.Conv2d(**kw).double()
    x = S.tensors(shape, torch.float64, seed)
    out = conv(x)
    y = S.tensors(tuple(out.shape), torch.float64, seed + 1)
    transpose = impl.ConvTranspose2d(
        kw["out_channels"],
        kw["in_channels"],
        kw["kernel_size"],
        stride=kw["stride"],
        padding=kw["padding"],
        groups=kw["groups"],
        bias=False,
        dilation=kw["dilation"],
    ).double()
    transpose.load_state_dict({"weight": conv.weight})  # same tensor layout: (out, in/g, kh, kw)
    back = transpose(y, output_size=x.shape[-2:])
    assert back.shape == x.shape
    assert_adjoint(inner(out, y), inner(x, back), out.abs().sum().item() * y.abs().max().item())
    # and the backward of each is the forward of the other
    assert torch.allclose(conv.backward(y), back, rtol=1e-12, atol=1e-12)


@given(S.conv2d_configs(), S.seeds)
def test_padded_conv2d_backward_is_adjoint(config, seed):
    """Any padding mode: <conv(x), y> = <x, conv.backward(y)> (no bias)."""
    kw, shape = config
    conv = impl.Conv2d(**{**kw, "bias": False}).double()
    x = S.tensors(shape, torch.float64, seed)
    out = conv(x)
    y = S.tensors(tuple(out.shape), torch.float64, seed + 1)
    assert_adjoint(inner(out, y), inner(x, conv.backward(y)), out.abs().sum().item() * y.abs().max().item())


@given(S.upsampling_configs(), S.seeds)
def test_upsampling_backward_is_adjoint(config, seed):
    kw, shape = config
    up = impl.Upsampling(**kw)
    x = S.tensors(shape, torch.float64, seed)
    out = up(x)
    y = S.tensors(tuple(out.shape), torch.float64, seed + 1)
    assert_adjoint(inner(out, y), inner(x, up.backward(y)), out.abs().sum().item() * y.abs().max().item())
