"""MaxPool2d: the maximum over each window; the gradient flows to the (first) maximum only."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import IntPair, check_image, pair
from .errors import ShapeError
from .module import Module


def _pool_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch's rule; with ceil_mode the last window must start inside the input or left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class MaxPool2d(Module):
    """2D max pooling, as ``torch.nn.MaxPool2d``.

    Args:
        kernel_size: int or (h, w). stride: defaults to kernel_size. padding: implicit ``-inf``
            padding, at most half the kernel. dilation: default 1. ceil_mode: round the output
            size up (default False).

    Shape:
        (N, C, H, W) or (C, H, W) -> (N, C, H_out, W_out),
        ``H_out = floor((H + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1``.

    Ties go to the first maximum in row-major window order, as in torch; backward sends each
    output's gradient to that input (sums where windows overlap).

    Example:
        >>> MaxPool2d(2)(torch.empty(1, 3, 8, 8).normal_()).shape
        torch.Size([1, 3, 4, 4])
    """

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        self.dilation = pair(dilation, "dilation")
        self.ceil_mode = bool(ceil_mode)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"pad should be at most half of effective kernel size, got padding={self.padding}, "
                f"kernel_size={self.kernel_size}"
            )

    def forward(self, x: Tensor) -> Tensor:
        x = check_image(x, "MaxPool2d", None, None)
        if x.shape[-3] == 0:  # torch too: only the batch may be empty
            raise ShapeError(f"MaxPool2d: expected at least one channel, got input of shape {tuple(x.shape)}")
        batched = x.dim() == 4
        x4 = x if batched else x.unsqueeze(0)
        n, c, h, w = x4.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        ho = _pool_size(h, kh, sh, ph, dh, self.ceil_mode)
        wo = _pool_size(w, kw, sw, pw, dw, self.ceil_mode)
        if ho < 1 or wo < 1:
            raise ShapeError(
                f"MaxPool2d: input of size {(h, w)} is too small for kernel {self.kernel_size}, "
                f"padding {self.padding}, dilation {self.dilation} (output {(ho, wo)})"
            )
        if self._tiles(h, w, ho, wo):
            found = self._tiled_max(x4, ho, wo)
            if found is not None:
                out, positions = found
                self._saved = (x4.shape, (h, w), positions, batched)
                return out if batched else out.squeeze(0)
        # -inf padding, large enough for ceil_mode's last partial window
        hp = max(h + 2 * ph, (ho - 1) * sh + dh * (kh - 1) + 1)
        wp = max(w + 2 * pw, (wo - 1) * sw + dw * (kw - 1) + 1)
        xp = x4.new_full((n, c, hp, wp), -math.inf)
        xp[:, :, ph : ph + h, pw : pw + w] = x4
        s = xp.stride()
        windows = xp.as_strided((n, c, ho, wo, kh, kw), (s[0], s[1], sh * s[2], sw * s[3], dh * s[2], dw * s[3]))
        flat = windows.reshape(n, c, ho, wo, kh * kw)
        out, arg = flat.max(dim=-1)
        nan = out.isnan()
        if bool(nan.any()):  # torch's kernel takes a window's last NaN; max(dim) takes the first
            last = (kh * kw - 1) - flat.isnan().flip(-1).to(torch.uint8).argmax(dim=-1)
            arg = arg.where(~nan, last)
        self._saved = (x4.shape, (hp, wp), self._positions(arg, ho, wo, wp), batched)
        return out if batched else out.squeeze(0)

    def _tiles(self, h: int, w: int, ho: int, wo: int) -> bool:
        """Whether the windows tile the input: stride = kernel (of several pixels), no padding or
        dilation, and every window inside the input (ceil_mode adds no partial one)."""
        (kh, kw), pad, dil = self.kernel_size, self.padding, self.dilation
        whole = ho * kh <= h and wo * kw <= w
        return self.stride == (kh, kw) and kh * kw > 1 and pad == (0, 0) and dil == (1, 1) and whole

    def _tiled_max(self, x: Tensor, ho: int, wo: int) -> tuple[Tensor, Tensor] | None:
        """Tiling windows without copying them: the maximum is a chain of element-wise maxima
        of the kh*kw strided views, and the first maximum's index comes from arithmetic on
        floats (bool masks are several times slower). None when a window holds a NaN (the
        general path finds torch's choice among NaNs, the last one) and for half precision
        (whose floats hold whole numbers exactly only up to 256 or 2048: too few for offsets)."""
        if x.dtype not in (torch.float32, torch.float64):
            return None
        (kh, kw), w = self.kernel_size, x.shape[3]
        taps = [x[:, :, i : ho * kh : kh, j : wo * kw : kw] for i in range(kh) for j in range(kw)]
        out = taps[0].maximum(taps[1])
        for tap in taps[2:]:
            out = out.maximum(tap)
        if bool(out.isnan().any()):
            return None
        # the first maximum's offset in its window: sum over t of [tap_0..tap_t all below the
        # maximum] * (offset_{t+1} - offset_t); each factor is sign(max - tap), 1 or 0 (inf - inf
        # is NaN, whose sign is 0: equal). Offsets are small whole numbers: exact in floats.
        offsets = [i * w + j for i in range(kh) for j in range(kw)]
        below = (out - taps[0]).sign_()
        offset = below * offsets[1]
        for t in range(1, len(taps) - 1):
            offset.add_(below.mul_((out - taps[t]).sign_()), alpha=offsets[t + 1] - offsets[t])
        ys = torch.arange(ho, device=x.device).view(ho, 1) * (kh * w)
        xs = torch.arange(wo, device=x.device) * kw
        positions = offset.to(torch.int64).add_(ys + xs)  # flat, in the (h, w) frame
        return out, positions

    def _positions(self, arg: Tensor, ho: int, wo: int, wp: int) -> Tensor:
        """Flat index, in the padded (hp, wp) frame, of the maximum each window picked."""
        kw = self.kernel_size[1]
        (sh, sw), (dh, dw) = self.stride, self.dilation
        i, j = arg.div(kw, rounding_mode="floor"), arg.remainder(kw)
        ys = torch.arange(ho, device=arg.device).view(ho, 1) * sh
        xs = torch.arange(wo, device=arg.device) * sw
        return (ys + i * dh) * wp + xs + j * dw

    def backward(self, grad_output: Tensor) -> Tensor:
        shape, (hp, wp), positions, batched = self._require_saved()
        g = grad_output if batched else grad_output.unsqueeze(0)
        if g.shape != positions.shape:
            raise ShapeError(
                f"MaxPool2d.backward: grad_output must have the output's shape "
                f"{tuple(positions.shape if batched else positions.shape[1:])}, got {tuple(grad_output.shape)}"
            )
        n, c, h, w = shape
        ph, pw = self.padding
        gp = g.new_zeros(n, c, hp * wp).scatter_add_(2, positions.flatten(2), g.flatten(2))
        gx = gp.view(n, c, hp, wp)[:, :, ph : ph + h, pw : pw + w]
        return gx if batched else gx.squeeze(0)

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}"
        for name, default in (
            ("stride", self.kernel_size),
            ("padding", (0, 0)),
            ("dilation", (1, 1)),
            ("ceil_mode", False),
        ):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s
