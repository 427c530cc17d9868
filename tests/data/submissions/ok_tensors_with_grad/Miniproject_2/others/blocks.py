# Building blocks. Parameters are plain tensors; their gradient lives in .grad
# (set by backward, no autograd involved). backward always returns a tuple.
import math
import torch
from torch.nn.functional import fold, unfold


def _t(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def _init(self, wshape, n_out, fan, bias):
        bound = 1.0 / math.sqrt(fan)
        self.weight = torch.empty(wshape).uniform_(-bound, bound)
        self.weight.grad = torch.zeros_like(self.weight)
        self.bias = torch.empty(n_out).uniform_(-bound, bound) if bias else None
        if bias:
            self.bias.grad = torch.zeros_like(self.bias)

    def parameters(self):
        if not hasattr(self, "weight"):
            return []
        return ([self.bias] if self.bias is not None else []) + [self.weight]


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.kernel_size, self.stride = _t(kernel_size), _t(stride)
        self.padding, self.dilation = _t(padding), _t(dilation)
        self._init(
            (out_channels, in_channels) + self.kernel_size,
            out_channels,
            in_channels * self.kernel_size[0] * self.kernel_size[1],
            bias,
        )

    def _opts(self):
        return dict(kernel_size=self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def forward(self, *input):
        x = input[0]
        self.size = x.shape[-2:]
        self.unf = unfold(x, **self._opts())
        out = torch.einsum("ok,nkl->nol", self.weight.flatten(1), self.unf)
        if self.bias is not None:
            out += self.bias[None, :, None]
        H, W = self.size
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return out.reshape(
            x.shape[0], -1, (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        )

    def backward(self, *gradwrtoutput):
        g = gradwrtoutput[0].flatten(2)
        self.weight.grad += torch.einsum("nol,nkl->ok", g, self.unf).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += g.sum(dim=(0, 2))
        dunf = torch.einsum("ok,nol->nkl", self.weight.flatten(1), g)
        return (fold(dunf, self.size, **self._opts()),)


class TransposeConv2d(Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.kernel_size, self.stride = _t(kernel_size), _t(stride)
        self.padding, self.dilation = _t(padding), _t(dilation)
        self._init(
            (in_channels, out_channels) + self.kernel_size,
            out_channels,
            out_channels * self.kernel_size[0] * self.kernel_size[1],
            bias,
        )

    def forward(self, *input):
        x = input[0]
        self.x = x
        H, W = x.shape[-2:]
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        size = ((H - 1) * sh - 2 * ph + dh * (kh - 1) + 1, (W - 1) * sw - 2 * pw + dw * (kw - 1) + 1)
        cols = torch.einsum("ik,nil->nkl", self.weight.flatten(1), x.flatten(2))
        out = fold(cols, size, **self._opts())
        if self.bias is not None:
            out += self.bias[None, :, None, None]
        return out

    def backward(self, *gradwrtoutput):
        g = gradwrtoutput[0]
        gunf = unfold(g, **self._opts())
        x = self.x.flatten(2)
        self.weight.grad += torch.einsum("nil,nkl->ik", x, gunf).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += g.sum(dim=(0, 2, 3))
        return (torch.einsum("ik,nkl->nil", self.weight.flatten(1), gunf).reshape(self.x.shape),)


class NearestUpsampling(Module):
    def __init__(self, scale_factor):
        self.scale_factor = int(scale_factor)

    def forward(self, *input):
        s = self.scale_factor
        return input[0].repeat_interleave(s, -1).repeat_interleave(s, -2)

    def backward(self, *gradwrtoutput):
        g, s = gradwrtoutput[0], self.scale_factor
        n, c, h, w = g.shape
        return (g.reshape(n, c, h // s, s, w // s, s).sum(dim=(3, 5)),)
