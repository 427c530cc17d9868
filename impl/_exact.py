"""torch's own CPU convolution, reproduced where it is a plain product, so that results equal
``F.conv2d`` / ``F.conv_transpose2d`` bit for bit there.

For a float32 CPU input ATen chooses oneDNN unless (``ConvParams::use_mkldnn``) groups == 1,
the kernel is not larger than 3 in both dimensions, the batch is 1 and the input holds at most
:data:`MKLDNN_MIN_NUMEL` elements; a float64 input never goes to oneDNN. A transposed convolution
whose output_padding is not below its stride skips oneDNN too (at any batch; for kernels
larger than 1x1 that path was measured to match). Outside oneDNN, ATen runs one
GEMM per image: ``weight (O, C*kh*kw) @ im2col(x)`` on top of the bias for a convolution (with
the patches in (kh, kw, C) order when the input is channels-last), and ``col2im(weight^T @ x)``
plus the bias for a transposed one. The same products, made with ``unfold``/``fold`` and the
same operand layouts, give the same roundings. Elsewhere oneDNN's summation order cannot be
reproduced with these operations and the fast engine (:mod:`impl._gemm`) runs instead: equal
to torch within rounding, not bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import fold, unfold

from ._gemm import _out_size, padded_last

Pair = tuple[int, int]

MKLDNN_MIN_NUMEL = 20480
"""ATen sends a float32 input with more elements than this to oneDNN even at batch 1."""


def strides_like_channels_last(x: Tensor) -> bool:
    """c10's ``is_channels_last_strides_2d_s4``: whether ATen reads a 4D tensor as channels-last
    (ambiguous strides, as of a size-1 channel, count as contiguous)."""
    sizes, strides = x.shape, x.stride()
    if strides[1] == 0:
        return False
    low = 0
    for d in (1, 3, 2, 0):
        if sizes[d] == 0 or strides[d] < low or (d == 0 and low == strides[1]):
            return False
        low = strides[d] * sizes[d]
    return True


def _plain_product(x: Tensor, weight: Tensor, groups: int) -> bool:
    """ATen's float32 rule for leaving oneDNN aside (see the module docstring)."""
    if x.device.type != "cpu" or groups != 1 or x.shape[0] == 0:
        return False
    if x.dtype == torch.float64:
        return x.shape[0] == 1
    small = x.shape[0] == 1 and x.numel() <= MKLDNN_MIN_NUMEL
    return x.dtype == torch.float32 and small and not (weight.shape[2] > 3 and weight.shape[3] > 3)


def conv2d_applies(x: Tensor, weight: Tensor, groups: int) -> bool:
    """Whether :func:`conv2d` reproduces torch's forward for this call."""
    return _plain_product(x, weight, groups)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Pair, dilation: Pair) -> Tensor:
    """ATen's ``slow_conv2d`` / ``slow_conv_dilated2d`` forward: one product per image."""
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    ho, wo = _out_size((h, w), (kh, kw), stride, padding, dilation)
    if strides_like_channels_last(x):  # patches in (kh, kw, C) order, output rows are pixels
        xp = padded_last(x, padding)
        sn, sh, sw, sc = xp.stride()
        cols = xp.as_strided(
            (n, ho, wo, kh, kw, c),
            (sn, stride[0] * sh, stride[1] * sw, dilation[0] * sh, dilation[1] * sw, sc),
            xp.storage_offset(),
        ).reshape(n, ho * wo, kh * kw * c)
        wt = weight.permute(0, 2, 3, 1).reshape(out_c, -1).t()
        out = torch.cat([cols[i] @ wt if bias is None else bias.addmm(cols[i], wt) for i in range(n)])
        return out.view(n, ho, wo, out_c).permute(0, 3, 1, 2)
    cols = unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    wm = weight.reshape(out_c, -1)
    out = torch.cat([wm @ cols[i] if bias is None else bias.view(-1, 1).addmm(wm, cols[i]) for i in range(n)])
    return out.view(n, out_c, ho, wo)


def conv_transpose2d_applies(x: Tensor, weight: Tensor, groups: int, stride: Pair, extra: Pair) -> bool:
    """Whether :func:`conv_transpose2d` reproduces torch's forward; ``extra`` is the
    output_padding (rows and columns beyond the last block)."""
    if x.device.type != "cpu" or groups != 1 or x.shape[0] == 0 or strides_like_channels_last(x):
        return False
    one_by_one = weight.shape[2] == weight.shape[3] == 1  # measured: ATen's 1x1 path sums otherwise
    big_padding = x.dtype == torch.float32 and any(e >= s for e, s in zip(extra, stride)) and not one_by_one
    return big_padding or _plain_product(x, weight, groups)


def conv_transpose2d(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Pair, dilation: Pair, size: Pair
) -> Tensor:
    """ATen's ``slow_conv_transpose2d``: per image, ``weight^T @ x`` scattered by col2im (here
    ``fold`` onto the unpadded frame, then cropped by the padding), then the bias."""
    n, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    frame = ((h - 1) * stride[0] + dilation[0] * (kh - 1) + 1, (w - 1) * stride[1] + dilation[1] * (kw - 1) + 1)
    wt = weight.reshape(c, -1).t()
    cols = torch.cat([(wt @ x[i].reshape(c, -1)).unsqueeze(0) for i in range(n)])
    full = fold(cols, frame, (kh, kw), dilation=dilation, stride=stride)
    part = full[:, :, padding[0] : padding[0] + size[0], padding[1] : padding[1] + size[1]]
    if tuple(part.shape[2:]) == tuple(size):
        out = part.contiguous()
    else:  # output_padding rows past the frame: nothing reaches them
        out = full.new_zeros(n, full.shape[1], *size)
        out[:, :, : part.shape[2], : part.shape[3]] = part
    return out if bias is None else out + bias.view(1, -1, 1, 1)
