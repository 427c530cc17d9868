"""Convolution layers. Sizes can be given as ints or pairs, like in torch.nn."""
import math
from torch import empty, zeros
from torch.nn.functional import fold, unfold


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=(1, 1), padding=(0, 0), bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        n = in_channels * self.kernel_size[0] * self.kernel_size[1]
        self.weight = empty(out_channels, in_channels, *self.kernel_size).uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n))
        self.weight_grad = zeros(self.weight.shape)
        self.bias = empty(out_channels).uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n)) if bias else None
        self.bias_grad = zeros(out_channels) if bias else None

    def forward(self, x):
        ph, pw = self.padding
        N, C, H, W = x.shape
        xp = zeros(N, C, H + 2 * ph, W + 2 * pw)
        xp[:, :, ph:ph + H, pw:pw + W] = x
        self.padded_size = xp.shape[2:]
        self.cols = unfold(xp, self.kernel_size, stride=self.stride)
        Ho = (xp.shape[2] - self.kernel_size[0]) // self.stride[0] + 1
        Wo = (xp.shape[3] - self.kernel_size[1]) // self.stride[1] + 1
        y = self.weight.view(self.out_channels, -1) @ self.cols
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1)
        return y.view(N, self.out_channels, Ho, Wo)

    def backward(self, grad):
        g = grad.reshape(grad.shape[0], self.out_channels, -1)
        self.weight_grad += (g @ self.cols.transpose(1, 2)).sum(0).view(self.weight.shape)
        if self.bias is not None:
            self.bias_grad += g.sum((0, 2))
        dcols = self.weight.view(self.out_channels, -1).t() @ g
        return fold(dcols, self.padded_size, self.kernel_size, stride=self.stride)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.weight_grad)]
        return [(self.weight, self.weight_grad), (self.bias, self.bias_grad)]


class Upsampling(Module):
    """Learned upsampling = transposed convolution (the network's decoder uses this one)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=(1, 1), padding=(0, 0), bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        n = out_channels * self.kernel_size[0] * self.kernel_size[1]
        self.weight = empty(in_channels, out_channels, *self.kernel_size).uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n))
        self.weight_grad = zeros(self.weight.shape)
        self.bias = empty(out_channels).uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n)) if bias else None
        self.bias_grad = zeros(out_channels) if bias else None

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        size = [(n - 1) * s - 2 * p + k for n, s, p, k in zip((H, W), self.stride, self.padding, self.kernel_size)]
        cols = self.weight.view(C, -1).t() @ x.view(N, C, -1)
        y = fold(cols, size, self.kernel_size, padding=self.padding, stride=self.stride)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def backward(self, grad):
        N, C, H, W = self.x.shape
        gcols = unfold(grad, self.kernel_size, padding=self.padding, stride=self.stride)
        self.weight_grad += (self.x.view(N, C, -1) @ gcols.transpose(1, 2)).sum(0).view(self.weight.shape)
        if self.bias is not None:
            self.bias_grad += grad.sum((0, 2, 3))
        return (self.weight.view(C, -1) @ gcols).view(N, C, H, W)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.weight_grad)]
        return [(self.weight, self.weight_grad), (self.bias, self.bias_grad)]
