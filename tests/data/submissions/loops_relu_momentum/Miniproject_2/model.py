# Deep Learning mini-project 2
# Convolution: for every kernel offset (i, j) we take the (strided, dilated) slice of the padded
# input that this offset multiplies and contract it with W[:, :, i, j] by broadcasting.
from torch import empty, zeros
import math


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.stride, self.pad, self.dil = stride, padding, dilation
        lim = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.w = empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-lim, lim)
        self.dw = zeros(self.w.shape)
        self.b = empty(out_channels).uniform_(-lim, lim) if bias else None
        self.db = zeros(out_channels) if bias else None

    def sl(self, i, n_out):
        start = i * self.dil
        return slice(start, start + self.stride * (n_out - 1) + 1, self.stride)

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.pad
        self.xp = zeros(n, c, h + 2 * p, w + 2 * p)
        self.xp[:, :, p:p + h, p:p + w] = x
        span = self.dil * (self.k - 1) + 1
        self.ho = (h + 2 * p - span) // self.stride + 1
        self.wo = (w + 2 * p - span) // self.stride + 1
        y = zeros(n, self.cout, self.ho, self.wo)
        for i in range(self.k):
            for j in range(self.k):
                xs = self.xp[:, :, self.sl(i, self.ho), self.sl(j, self.wo)]  # n, c, ho, wo
                y += (xs[:, None] * self.w[None, :, :, i, j, None, None]).sum(2)
        if self.b is not None:
            y += self.b[None, :, None, None]
        return y

    def backward(self, gy):
        dxp = zeros(self.xp.shape)
        for i in range(self.k):
            for j in range(self.k):
                idx = (slice(None), slice(None), self.sl(i, self.ho), self.sl(j, self.wo))
                xs = self.xp[idx]
                self.dw[:, :, i, j] += (gy[:, :, None] * xs[:, None]).sum((0, 3, 4))
                dxp[idx] += (gy[:, :, None] * self.w[None, :, :, i, j, None, None]).sum(1)
        if self.b is not None:
            self.db += gy.sum((0, 2, 3))
        p = self.pad
        return dxp[:, :, p:dxp.shape[2] - p, p:dxp.shape[3] - p]

    def param(self):
        return [(self.w, self.dw)] + ([(self.b, self.db)] if self.b is not None else [])


class TransposeConv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.stride, self.pad, self.dil = stride, padding, dilation
        lim = 1 / math.sqrt(out_channels * kernel_size ** 2)
        self.w = empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-lim, lim)
        self.dw = zeros(self.w.shape)
        self.b = empty(out_channels).uniform_(-lim, lim) if bias else None
        self.db = zeros(out_channels) if bias else None

    def sl(self, i, n_in):
        start = i * self.dil
        return slice(start, start + self.stride * (n_in - 1) + 1, self.stride)

    def forward(self, x):
        self.x = x
        n, c, h, w = x.shape
        span = self.dil * (self.k - 1) + 1
        full = zeros(n, self.cout, (h - 1) * self.stride + span, (w - 1) * self.stride + span)
        for i in range(self.k):
            for j in range(self.k):
                full[:, :, self.sl(i, h), self.sl(j, w)] += (x[:, :, None] * self.w[None, :, :, i, j, None, None]).sum(1)
        p = self.pad
        y = full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]
        if self.b is not None:
            y = y + self.b[None, :, None, None]
        return y

    def backward(self, gy):
        n, c, h, w = self.x.shape
        p = self.pad
        gfull = zeros(n, self.cout, gy.shape[2] + 2 * p, gy.shape[3] + 2 * p)
        gfull[:, :, p:p + gy.shape[2], p:p + gy.shape[3]] = gy
        dx = zeros(self.x.shape)
        for i in range(self.k):
            for j in range(self.k):
                gs = gfull[:, :, self.sl(i, h), self.sl(j, w)]  # n, cout, h, w
                self.dw[:, :, i, j] += (self.x[:, :, None] * gs[:, None]).sum((0, 3, 4))
                dx += (gs[:, None] * self.w[None, :, :, i, j, None, None]).sum(2)
        if self.b is not None:
            self.db += gy.sum((0, 2, 3))
        return dx

    def param(self):
        return [(self.w, self.dw)] + ([(self.b, self.db)] if self.b is not None else [])


class NNUpsample(Module):
    def __init__(self, scale_factor=2):
        self.f = scale_factor

    def forward(self, x):
        return x.repeat_interleave(self.f, 2).repeat_interleave(self.f, 3)

    def backward(self, gy):
        n, c, h, w = gy.shape
        out = zeros(n, c, h // self.f, w // self.f)
        for i in range(self.f):
            for j in range(self.f):
                out += gy[:, :, i::self.f, j::self.f]
        return out


class ReLU(Module):
    def forward(self, x):
        self.mask = x >= 0
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


class Sigmoid(Module):
    def forward(self, x):
        self.y = 1 / (1 + (-x).exp())
        return self.y

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class MSE(Module):
    def forward(self, y_hat, y):
        self.diff = y_hat - y
        return (self.diff ** 2).mean()

    def backward(self):
        return 2 * self.diff / self.diff.numel()


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)
        return x

    def backward(self, gy):
        for m in reversed(self.modules):
            gy = m.backward(gy)
        return gy

    def param(self):
        out = []
        for m in self.modules:
            out += m.param()
        return out


class SGD(object):
    def __init__(self, params, lr, momentum=0.0):
        self.params = params
        self.lr = lr
        self.momentum = momentum
        self.velocity = [g for (_, g) in params]  # one buffer per parameter, same shape as its gradient

    def step(self):
        for i, (p, g) in enumerate(self.params):
            self.velocity[i] = self.momentum * self.velocity[i] + g
            p -= self.lr * self.velocity[i]

    def zero_grad(self):
        for _, g in self.params:
            g.zero_()
