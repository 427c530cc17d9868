"""Miniproject 2 -- framework without autograd.

Conventions of our framework:
  * weights are kept as 2-D matrices so that forward is a single matmul on the unfolded input
    (Conv2d: W is (out_channels, in_channels * kh * kw)),
  * param() returns a flat list [W, b, dW, db] (parameters first, then their gradients, same order),
  * the optimizer gets the whole model and walks model.layers.
"""
import math
from torch import empty, cat
from torch.nn.functional import fold, unfold


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.c_in, self.c_out, self.k = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        std = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.W = empty(out_channels, in_channels * kernel_size ** 2).uniform_(-std, std)
        self.dW = empty(self.W.shape).fill_(0)
        self.use_bias = bias
        if bias:
            self.b = empty(out_channels).uniform_(-std, std)
            self.db = empty(out_channels).fill_(0)

    def _out_size(self, n):
        return (n + 2 * self.padding - self.dilation * (self.k - 1) - 1) // self.stride + 1

    def forward(self, x):
        self.in_size = x.shape[2:]
        self.X = unfold(x, self.k, dilation=self.dilation, padding=self.padding, stride=self.stride)
        y = self.W @ self.X
        if self.use_bias:
            y = y + self.b[:, None]
        return y.view(x.shape[0], self.c_out, self._out_size(x.shape[2]), self._out_size(x.shape[3]))

    def backward(self, dy):
        dy = dy.flatten(2)  # N, out, L
        self.dW += (dy @ self.X.transpose(1, 2)).sum(0)
        if self.use_bias:
            self.db += dy.sum((0, 2))
        dX = self.W.t() @ dy
        return fold(dX, self.in_size, self.k, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def param(self):
        if self.use_bias:
            return [self.W, self.b, self.dW, self.db]
        return [self.W, self.dW]


class ConvTranspose2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 dilation=1, bias=True):
        self.c_in, self.c_out, self.k = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.output_padding = stride, padding, dilation, output_padding
        if output_padding >= stride:
            raise ValueError("output_padding has to be < stride (fold makes one block per input pixel)")
        std = 1 / math.sqrt(out_channels * kernel_size ** 2)
        self.W = empty(in_channels, out_channels * kernel_size ** 2).uniform_(-std, std)
        self.dW = empty(self.W.shape).fill_(0)
        self.use_bias = bias
        if bias:
            self.b = empty(out_channels).uniform_(-std, std)
            self.db = empty(out_channels).fill_(0)

    def forward(self, x):
        N, C, H, W = x.shape
        self.x = x.flatten(2)  # N, in, H*W
        size = [(n - 1) * self.stride - 2 * self.padding + self.dilation * (self.k - 1) + self.output_padding + 1
                for n in (H, W)]
        y = fold(self.W.t() @ self.x, size, self.k, dilation=self.dilation, padding=self.padding,
                 stride=self.stride)
        if self.use_bias:
            y = y + self.b.view(1, -1, 1, 1)
        return y

    def backward(self, dy):
        D = unfold(dy, self.k, dilation=self.dilation, padding=self.padding, stride=self.stride)
        self.dW += (self.x @ D.transpose(1, 2)).sum(0)
        if self.use_bias:
            self.db += dy.sum((0, 2, 3))
        N, _, L = self.x.shape
        return (self.W @ D).view(N, self.c_in, *self.in_hw(dy))

    def in_hw(self, dy):
        return [(n + 2 * self.padding - self.dilation * (self.k - 1) - 1 - self.output_padding) // self.stride + 1
                for n in dy.shape[2:]]

    def param(self):
        if self.use_bias:
            return [self.W, self.b, self.dW, self.db]
        return [self.W, self.dW]


class NNUpsampling(Module):
    """nearest neighbour, no parameters"""

    def __init__(self, scale_factor=2):
        self.f = scale_factor

    def forward(self, x):
        N, C, H, W = x.shape
        return x[:, :, :, None, :, None].expand(N, C, H, self.f, W, self.f).reshape(N, C, H * self.f, W * self.f)

    def backward(self, dy):
        N, C, H, W = dy.shape
        return dy.view(N, C, H // self.f, self.f, W // self.f, self.f).sum((3, 5))


class Upsampling(Module):
    """What the project calls Upsampling: nearest neighbour upsampling followed by a convolution."""

    def __init__(self, in_channels, out_channels, kernel_size=3, scale_factor=2, padding=1):
        self.up = NNUpsampling(scale_factor)
        self.conv = Conv2d(in_channels, out_channels, kernel_size, padding=padding)

    def forward(self, x):
        return self.conv.forward(self.up.forward(x))

    def backward(self, dy):
        return self.up.backward(self.conv.backward(dy))

    def param(self):
        return self.conv.param()


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.k, self.p = kernel_size, padding
        self.s = kernel_size if stride is None else stride

    def forward(self, x):
        N, C, H, W = x.shape
        self.in_size = (H, W)
        if self.p:
            # pad with -inf so that padding never wins the max
            ninf = empty(N, C, H, self.p).fill_(-float("inf"))
            x = cat([ninf, x, ninf], 3)
            ninf = empty(N, C, self.p, W + 2 * self.p).fill_(-float("inf"))
            x = cat([ninf, x, ninf], 2)
        cols = unfold(x, self.k, stride=self.s).view(N, C, self.k * self.k, -1)
        y, self.arg = cols.max(2)
        self.cols_shape = cols.shape
        Ho = (H + 2 * self.p - self.k) // self.s + 1
        return y.view(N, C, Ho, -1)

    def backward(self, dy):
        N, C, H, W = dy.shape
        d = empty(self.cols_shape).fill_(0)
        d.scatter_(2, self.arg.unsqueeze(2), dy.reshape(N, C, 1, -1))
        Hp, Wp = self.in_size[0] + 2 * self.p, self.in_size[1] + 2 * self.p
        dx = fold(d.view(N, C * self.k * self.k, -1), (Hp, Wp), self.k, stride=self.s)
        return dx[:, :, self.p:Hp - self.p, self.p:Wp - self.p]


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x.clamp(min=0)

    def backward(self, dy):
        return dy * (self.x > 0)


class Sigmoid(Module):
    def forward(self, x):
        self.y = x.sigmoid()
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class MSE(Module):
    def forward(self, pred, target):
        self.diff = pred - target
        return self.diff.pow(2).mean()

    def backward(self):
        return self.diff * (2 / self.diff.numel())


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def param(self):
        return [p for layer in self.layers for p in layer.param()]


def _pairs(model):
    """(parameter, gradient) pairs from the flat lists of every layer of the model"""
    layers = model.layers if hasattr(model, "layers") else [model]
    out = []
    for layer in layers:
        ps = layer.param()
        half = len(ps) // 2
        out += list(zip(ps[:half], ps[half:]))
    return out


class SGD(object):
    def __init__(self, model, lr):
        self.model, self.lr = model, lr

    def step(self):
        for p, g in _pairs(self.model):
            p.sub_(self.lr * g)

    def zero_grad(self):
        for p, g in _pairs(self.model):
            g.zero_()


class Adam(object):
    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.model, self.lr, self.betas, self.eps = model, lr, betas, eps
        self.t = 0
        self.m = [empty(p.shape).fill_(0) for p, g in _pairs(model)]
        self.v = [empty(p.shape).fill_(0) for p, g in _pairs(model)]

    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for (p, g), m, v in zip(_pairs(self.model), self.m, self.v):
            m.mul_(b1).add_(g * (1 - b1))
            v.mul_(b2).add_(g * g * (1 - b2))
            m_hat = m / (1 - b1 ** self.t)
            v_hat = v / (1 - b2 ** self.t)
            p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))

    def zero_grad(self):
        for p, g in _pairs(self.model):
            g.zero_()
