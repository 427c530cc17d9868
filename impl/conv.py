"""Conv2d and ConvTranspose2d: arguments, parameters and bookkeeping; the maths is in
:mod:`impl.functional`, where each direction of one layer is the other layer's forward."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from . import functional as F
from ._checks import IntPair, check_image, pair, positive_int
from .errors import OutputPaddingError, ShapeError
from .module import Module

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What both convolutions share: argument checks, torch's default initialisation, repr."""

    transposed = False
    weight: Tensor
    bias: Tensor | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair,
        dilation: IntPair,
        groups: int,
        bias: bool,
        padding_mode: str,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        self.in_channels = positive_int(in_channels, "in_channels")
        self.out_channels = positive_int(out_channels, "out_channels")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.dilation = pair(dilation, "dilation")
        self.groups = positive_int(groups, "groups")
        if in_channels % groups:
            raise ValueError(f"in_channels must be divisible by groups, got {in_channels} and {groups}")
        if out_channels % groups:
            raise ValueError(f"out_channels must be divisible by groups, got {out_channels} and {groups}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        if self.transposed:
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        dtype = dtype or torch.get_default_dtype()
        self._register("weight", torch.empty(shape, device=device, dtype=dtype))
        self._register("bias", torch.empty(out_channels, device=device, dtype=dtype) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: kaiming_uniform_(a=sqrt(5)) for the weight, U(+-1/sqrt(fan_in)) for
        the bias, drawn in the same order from the same generator (same seed, same values)."""
        fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
        gain = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
        bound = math.sqrt(3.0) * (gain / math.sqrt(fan_in))
        self.weight.uniform_(-bound, bound)
        if self.bias is not None:
            self.bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def _check(self, x: Any) -> tuple[Tensor, bool]:
        """Checked input, batched as (N, C, H, W), and whether it came batched."""
        x = check_image(x, type(self).__name__, self.in_channels, self.weight)
        return (x, True) if x.dim() == 4 else (x.unsqueeze(0), False)

    def _check_grad(self, grad: Any, expected: torch.Size, batched: bool) -> Tensor:
        grad = grad if batched else grad.unsqueeze(0)
        if grad.shape != expected:
            raise ShapeError(
                f"{type(self).__name__}.backward: grad_output must have the output's shape "
                f"{tuple(expected)}, got {tuple(grad.shape)}"
            )
        return grad

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        for name, default in (
            ("stride", (1, 1)),
            ("padding", (0, 0)),
            ("dilation", (1, 1)),
            ("output_padding", (0, 0)),
            ("groups", 1),
            ("padding_mode", "zeros"),
        ):
            value = getattr(self, name, default)
            if value != default:
                s += f", {name}={value!r}"
        return s + (", bias=False" if self.bias is None else "")


class Conv2d(_ConvNd):
    """2D cross-correlation, as ``torch.nn.Conv2d``.

    Args:
        in_channels, out_channels: channels of input and output.
        kernel_size, stride, dilation: int or (h, w); stride and dilation default to 1.
        padding: int, (h, w), ``'valid'`` (none) or ``'same'`` (output size = input size,
            stride 1 only; the odd extra row/column goes to the bottom/right). Default 0.
        groups: blocked connections; ``groups == in_channels`` is depthwise. Default 1.
        bias: learn an additive bias. Default True.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.

    Shape:
        (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out) with
        ``H_out = floor((H + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``.
        Weight: (C_out, C_in / groups, kh, kw).

    For backward, a layer in training mode (the default) keeps what its weight gradient would
    otherwise compute again (Winograd's transformed input, where the engine runs Winograd);
    after ``eval()`` it keeps only its input, less memory for an inference, backward still exact.

    Example:
        >>> conv = Conv2d(3, 48, 3, stride=2, padding=1)
        >>> conv(torch.empty(8, 3, 32, 32).normal_()).shape
        torch.Size([8, 48, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: str | IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, dilation, groups, bias, padding_mode, device, dtype
        )
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid', an int or a pair, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"padding='same' is not supported for strided convolutions, got stride={self.stride}")
            self.padding: str | tuple[int, int] = padding
            totals = [d * (k - 1) if padding == "same" else 0 for d, k in zip(self.dilation, self.kernel_size)]
            self._pad4 = (totals[0] // 2, totals[0] - totals[0] // 2, totals[1] // 2, totals[1] - totals[1] // 2)
        else:
            self.padding = pair(padding, "padding", minimum=0)
            self._pad4 = (self.padding[0], self.padding[0], self.padding[1], self.padding[1])
        self._released: Any = None  # what a backward has done with (see forward)
        top, bottom, left, right = self._pad4
        # Symmetric zero padding is part of the GEMM engine's padded copy; anything else is padded here.
        self._engine_padding = (top, left) if padding_mode == "zeros" and (top, left) == (bottom, right) else None

    def forward(self, x: Tensor) -> Tensor:
        x, batched = self._check(x)
        padded = x if self._engine_padding is not None else F.pad(self._check_padding(x), self._pad4, self.padding_mode)
        padding = self._engine_padding or (0, 0)
        for size, kernel, dilation, p in zip(padded.shape[2:], self.kernel_size, self.dilation, padding):
            if size + 2 * p < dilation * (kernel - 1) + 1:
                raise ShapeError(
                    f"Conv2d: padded input size {tuple(padded.shape[2:])} (padding {padding}) is "
                    f"smaller than the dilated kernel {self.kernel_size}, dilation {self.dilation}"
                )
        args = (self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        if self.training:  # backward will follow: keep what the weight gradient would recompute
            out, kept = F.conv2d_keeping(padded, *args, self._released)
            self._released = None
        else:
            out, kept = F.conv2d(padded, *args), padded
        self._saved = (kept, x.shape, out.shape, batched)
        return out if batched else out.squeeze(0)

    def _check_padding(self, x: Tensor) -> Tensor:
        h, w = x.shape[2:]
        top, bottom, left, right = self._pad4
        limit = {"reflect": (h - 1, w - 1), "circular": (h, w)}.get(self.padding_mode)
        if limit and (max(top, bottom) > limit[0] or max(left, right) > limit[1]):
            raise ShapeError(
                f"Conv2d: padding_mode={self.padding_mode!r} needs padding {self._pad4} "
                f"(top, bottom, left, right) at most {limit} for an input of size {(h, w)}"
            )
        return x

    def backward(self, grad_output: Tensor) -> Tensor:
        kept, x_shape, out_shape, batched = self._require_saved()
        g = self._check_grad(grad_output, out_shape, batched)
        padding = self._engine_padding or (0, 0)
        self._grads["weight"] += F.conv2d_weight_grad(
            kept, g, self.weight.shape, self.stride, padding, self.dilation, self.groups
        )
        # the next forward may write its own over what this one kept (a backward after it reads
        # that forward's): memory it need not take afresh
        self._released = kept
        if self.bias is not None:
            self._grads["bias"] += F.bias_grad(g)
        gx = F.conv_transpose2d(g, self.weight, None, self.stride, padding, self.dilation, self.groups, kept.shape[2:])
        if self._engine_padding is None:
            gx = F.pad_backward(gx, x_shape, self._pad4, self.padding_mode)
        return gx if batched else gx.squeeze(0)


class ConvTranspose2d(_ConvNd):
    """2D transposed convolution, as ``torch.nn.ConvTranspose2d``: the adjoint of
    :class:`Conv2d` with the same arguments (and the gradient of its input).

    Args:
        as :class:`Conv2d`, plus ``output_padding`` (int or (h, w), default 0): extra rows and
        columns on the bottom/right, smaller than stride or dilation. Only
        ``padding_mode='zeros'`` exists, as in torch.

    Shape:
        (N, C_in, H, W) or (C_in, H, W) -> (N, C_out, H_out, W_out) with
        ``H_out = (H - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1``;
        ``forward(x, output_size)`` picks the output_padding that gives ``output_size``.
        Weight: (C_in, C_out / groups, kh, kw).

    Example:
        >>> up = ConvTranspose2d(48, 48, 2, stride=2)
        >>> up(torch.empty(8, 48, 8, 8).normal_()).shape
        torch.Size([8, 48, 16, 16])
    """

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        output_padding: IntPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntPair = 1,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding_mode is supported for ConvTranspose2d, got {padding_mode!r}')
        super().__init__(
            in_channels, out_channels, kernel_size, stride, dilation, groups, bias, padding_mode, device, dtype
        )
        self.padding = pair(padding, "padding", minimum=0)
        self.output_padding = pair(output_padding, "output_padding", minimum=0)
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise OutputPaddingError(
                    f"output_padding must be smaller than either stride or dilation, got "
                    f"output_padding={self.output_padding}, stride={self.stride}, dilation={self.dilation}"
                )

    def _min_size(self, x: Tensor) -> tuple[int, int]:
        return F.transposed_size(x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)

    def _output_padding(self, x: Tensor, output_size: Any, batched: bool) -> tuple[int, int]:
        """torch's rule: output_size (optionally with N and C) within [min, min + stride - 1]."""
        if output_size is None:
            return self.output_padding
        sizes = tuple(output_size)
        leading = 2 if batched else 1
        if len(sizes) == leading + 2:
            sizes = sizes[leading:]
        if len(sizes) != 2:
            raise ValueError(
                f"ConvTranspose2d: output_size must have 2 or {leading + 2} elements, got {tuple(output_size)}"
            )
        low = self._min_size(x)
        high = tuple(m + s - 1 for m, s in zip(low, self.stride))
        if not all(lo <= size <= hi for lo, size, hi in zip(low, sizes, high)):
            raise ValueError(
                f"ConvTranspose2d: requested an output size of {sizes}, but valid sizes range "
                f"from {low} to {high} (for an input of {tuple(x.shape[2:])})"
            )
        return (sizes[0] - low[0], sizes[1] - low[1])

    def forward(self, x: Tensor, output_size: Any = None) -> Tensor:
        x, batched = self._check(x)
        output_padding = self._output_padding(x, output_size, batched)
        size = tuple(m + op for m, op in zip(self._min_size(x), output_padding))
        if min(size) < 1:
            raise ShapeError(f"ConvTranspose2d: input of size {tuple(x.shape[2:])} gives an empty output {size}")
        out = F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups, size)  # type: ignore[arg-type]
        self._saved = (x, out.shape, batched)
        return out if batched else out.squeeze(0)

    def backward(self, grad_output: Tensor) -> Tensor:
        x, out_shape, batched = self._require_saved()
        g = self._check_grad(grad_output, out_shape, batched)
        if self.bias is not None:
            self._grads["bias"] += F.bias_grad(g)
        # the weight gradient reads exactly the output positions of x, and the input gradient
        # is cropped to x: rows that output_padding added beyond the last block play no part
        self._grads["weight"] += F.conv2d_weight_grad(
            g, x, self.weight.shape, self.stride, self.padding, self.dilation, self.groups
        )
        gx = F.conv2d(g, self.weight, None, self.stride, self.padding, self.dilation, self.groups)
        gx = gx[:, :, : x.shape[2], : x.shape[3]]
        return gx if batched else gx.squeeze(0)


TransposeConv2d = ConvTranspose2d
