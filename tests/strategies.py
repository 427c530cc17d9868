"""Hypothesis strategies that draw only valid configurations (and inputs that fit them)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

sizes = st.integers(1, 3)


@st.composite
def image_shapes(draw: st.DrawFn, channels: int, lows: list[int]) -> tuple[int, ...]:
    """(C, H, W) or (N, C, H, W) with H, W at least ``lows`` (and up to 4 more)."""
    shape: tuple[int, ...] = (
        channels,
        draw(st.integers(lows[0], lows[0] + 4)),
        draw(st.integers(lows[1], lows[1] + 4)),
    )
    return (draw(st.integers(1, 3)), *shape) if draw(st.booleans()) else shape


@st.composite
def conv2d_configs(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[int, ...]]:
    """Constructor kwargs for Conv2d and an input shape it accepts."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(sizes), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    padding: Any = draw(st.one_of(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.sampled_from(["same", "valid"])))
    stride = (1, 1) if padding == "same" else (draw(sizes), draw(sizes))
    kw = dict(
        in_channels=groups * draw(sizes),
        out_channels=groups * draw(sizes),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        padding_mode=mode,
    )
    pads = (
        padding
        if isinstance(padding, tuple)
        else tuple(d * (k - 1) if padding == "same" else 0 for d, k in zip(dilation, kernel))
    )
    # the padded input must hold the dilated kernel; reflect needs padding < size
    lows = [max(d * (k - 1) + 1 - 2 * p, p + 1, 1) for d, k, p in zip(dilation, kernel, pads)]
    return kw, draw(image_shapes(kw["in_channels"], lows))


@st.composite
def winograd_configs(draw: st.DrawFn) -> dict[str, Any]:
    """A 3x3 stride-1 convolution the Winograd path computes: batch, channels, spatial size (at
    least the kernel's reach past the padding, odd or even, a multiple of the tile or not),
    padding (up to beyond the kernel's reach), output tile and input layout."""
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    size = tuple(draw(st.integers(max(1, 3 - 2 * p), 11)) for p in padding)
    return dict(
        n=draw(st.integers(1, 3)),
        c=draw(st.integers(1, 6)),
        out_c=draw(st.integers(1, 6)),
        size=size,
        padding=padding,
        tile=draw(st.sampled_from([2, 4])),
        channels_last=draw(st.booleans()),
    )


@st.composite
def conv_transpose2d_configs(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[int, ...]]:
    """Constructor kwargs for ConvTranspose2d (output_padding < stride or dilation) and an input shape."""
    groups = draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(sizes), draw(sizes))
    dilation = (draw(sizes), draw(st.integers(1, 2)))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    kw = dict(
        in_channels=groups * draw(sizes),
        out_channels=groups * draw(sizes),
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        groups=groups,
        bias=draw(st.booleans()),
        dilation=dilation,
    )
    # output size (h-1)*s - 2p + d(k-1) + op + 1 must be >= 1
    lows = [
        max(1, -(-(2 * p - d * (k - 1) - op) // s) + 1)
        for p, d, k, op, s in zip(padding, dilation, kernel, output_padding, stride)
    ]
    return kw, draw(image_shapes(kw["in_channels"], lows))


@st.composite
def upsampling_configs(draw: st.DrawFn) -> tuple[dict[str, Any], tuple[int, ...]]:
    """Upsampling kwargs (size or scale_factor, either mode) and an input shape."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    mode = draw(st.sampled_from(["nearest", "nearest-exact"]))
    if draw(st.booleans()):
        return dict(size=(draw(st.integers(1, 20)), draw(st.integers(1, 20))), mode=mode), shape
    factor = st.one_of(st.integers(1, 4), st.floats(0.25, 4.0).map(lambda f: round(f, 3)))
    scale = draw(st.one_of(factor, st.tuples(factor, factor)))
    scales = scale if isinstance(scale, tuple) else (scale, scale)
    # the output must keep at least one pixel
    shape = (*shape[:2], max(shape[2], int(1 / scales[0]) + 1), max(shape[3], int(1 / scales[1]) + 1))
    return dict(scale_factor=scale, mode=mode), shape


def tensors(shape: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


seeds = st.integers(0, 2**16)
dtypes = st.sampled_from([torch.float32, torch.float64])
