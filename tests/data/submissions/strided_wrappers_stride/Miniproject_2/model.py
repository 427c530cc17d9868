# EE-559 Miniproject 2
# Parameters are Param objects (.data, .grad) so the optimizers only see a flat list of them.
# Convolution windows: a zero-copy as_strided view (N, C, Ho, Wo, k, k) of the padded input,
# contracted with the kernel by tensordot.
import math
from torch import empty, tensordot


class Param(object):
    def __init__(self, data):
        self.data = data
        self.grad = empty(data.shape).zero_()


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.k, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        a = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = Param(empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-a, a))
        self.bias = Param(empty(out_channels).uniform_(-a, a)) if bias else None

    def forward(self, x):
        N, C, H, W = x.shape
        p, k, s, d = self.padding, self.k, self.stride, self.dilation
        self.xp = empty(N, C, H + 2 * p, W + 2 * p).zero_()
        self.xp[:, :, p:p + H, p:p + W] = x
        self.Ho = (H + 2 * p - d * (k - 1) - 1) // s + 1
        self.Wo = (W + 2 * p - d * (k - 1) - 1) // s + 1
        sN, sC, sH, sW = self.xp.stride()
        self.win = self.xp.as_strided((N, C, self.Ho, self.Wo, k, k), (sN, sC, s * sH, s * sW, d * sH, d * sW))
        out = tensordot(self.win, self.weight.data, dims=([1, 4, 5], [1, 2, 3]))  # N, Ho, Wo, O
        if self.bias is not None:
            out = out + self.bias.data
        return out.permute(0, 3, 1, 2)

    def backward(self, grad):
        g = grad.permute(0, 2, 3, 1)  # N, Ho, Wo, O
        self.weight.grad += tensordot(g, self.win, dims=([0, 1, 2], [0, 2, 3]))
        if self.bias is not None:
            self.bias.grad += g.sum((0, 1, 2))
        dwin = tensordot(g, self.weight.data, dims=([3], [0]))  # N, Ho, Wo, C, k, k
        dxp = empty(self.xp.shape).zero_()
        d, p = self.dilation, self.padding
        for i in range(self.k):
            for j in range(self.k):
                dxp[:, :, i * d:i * d + self.Ho, j * d:j * d + self.Wo] += dwin[..., i, j].permute(0, 3, 1, 2)
        return dxp[:, :, p:dxp.shape[2] - p, p:dxp.shape[3] - p]

    def param(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.f = scale_factor

    def forward(self, x):
        N, C, H, W = x.shape
        sN, sC, sH, sW = x.stride()
        return x.as_strided((N, C, H, self.f, W, self.f), (sN, sC, sH, 0, sW, 0)).reshape(N, C, H * self.f, W * self.f)

    def backward(self, grad):
        N, C, W, H = grad.shape
        return grad.reshape(N, C, H // self.f, self.f, W // self.f, self.f).sum((3, 5))


class ReLU(Module):
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, grad):
        return grad * self.mask


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.mask = x > 0
        return x.where(self.mask, self.negative_slope * x)

    def backward(self, grad):
        return grad.where(self.mask, self.negative_slope * grad)


class Sigmoid(Module):
    def forward(self, x):
        self.s = (1 + (-x).exp()).reciprocal()
        return self.s

    def backward(self, grad):
        return grad * self.s * (1 - self.s)


class MSE(Module):
    def forward(self, prediction, target):
        self.d = prediction - target
        return (self.d * self.d).mean()

    def backward(self):
        return self.d * (2. / self.d.numel())


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)
        return x

    def backward(self, grad):
        for m in reversed(self.modules):
            grad = m.backward(grad)
        return grad

    def param(self):
        return sum((m.param() for m in self.modules), [])


class SGD(object):
    def __init__(self, params, lr, momentum=0.):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.buffers = {}

    def step(self):
        for p in self.params:
            d = p.grad
            if self.momentum:
                if p in self.buffers:
                    self.buffers[p] = self.buffers[p].mul(self.momentum).add(d)
                else:
                    self.buffers[p] = d.clone()
                d = self.buffers[p]
            p.data.sub_(self.lr * d)

    def zero_grad(self):
        for p in self.params:
            p.grad.zero_()


class Adam(object):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.betas, self.eps = list(params), lr, betas, eps
        self.m = [empty(p.data.shape).zero_() for p in self.params]
        self.v = [empty(p.data.shape).zero_() for p in self.params]
        self.t = 0

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v):
            m.mul_(b1).add_((1 - b1) * p.grad)
            v.mul_(b2).add_((1 - b2) * p.grad * p.grad)
            step_size = self.lr / (1 - b1 ** self.t)
            denom = (v / (1 - b2 ** self.t)).sqrt() + self.eps
            p.data.sub_(step_size * m / denom)

    def zero_grad(self):
        for p in self.params:
            p.grad.zero_()
