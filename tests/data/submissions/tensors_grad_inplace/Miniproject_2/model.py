# Miniproject 2, EE-559
# Like in PyTorch, every parameter tensor carries its own gradient in .grad, parameters()
# returns the tensors and the optimizer reads p.grad.
# Convolutions: im2col written by hand (one strided slice per kernel offset), then one matmul.
import math
from torch import cat, empty, zeros


def im2col(xp, k, s, out_h, out_w):
    """(N, C, Hp, Wp) -> (N, C*k*k, out_h*out_w) in the same order as the (O, C, k, k) kernel"""
    N, C = xp.shape[:2]
    cols = [xp[:, :, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s].reshape(N, C, 1, -1)
            for i in range(k) for j in range(k)]
    return cat(cols, 2).reshape(N, C * k * k, -1)


def col2im(cols, k, s, out_h, out_w, shape):
    N, C = shape[:2]
    cols = cols.reshape(N, C, k * k, out_h, out_w)
    xp = zeros(shape)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + s * (out_h - 1) + 1:s, j:j + s * (out_w - 1) + 1:s] += cols[:, :, i * k + j]
    return xp


def pad(x, p):
    xp = zeros(x.shape[0], x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p)
    xp[:, :, p:p + x.shape[2], p:p + x.shape[3]] = x
    return xp


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def parameters(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.k, self.s, self.p = kernel_size, stride, padding
        bound = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-bound, bound)
        self.weight.grad = zeros(self.weight.shape)
        self.bias = None
        if bias:
            self.bias = empty(out_channels).uniform_(-bound, bound)
            self.bias.grad = zeros(out_channels)

    def forward(self, x):
        self.xp_shape = (x.shape[0], x.shape[1], x.shape[2] + 2 * self.p, x.shape[3] + 2 * self.p)
        self.out_h = (self.xp_shape[2] - self.k) // self.s + 1
        self.out_w = (self.xp_shape[3] - self.k) // self.s + 1
        self.cols = im2col(pad(x, self.p), self.k, self.s, self.out_h, self.out_w)
        y = self.weight.reshape(self.out_channels, -1) @ self.cols
        if self.bias is not None:
            y = y + self.bias.reshape(-1, 1)
        return y.reshape(x.shape[0], self.out_channels, self.out_h, self.out_w)

    def backward(self, grad):
        g = grad.reshape(grad.shape[0], self.out_channels, -1)
        self.weight.grad += (g @ self.cols.transpose(1, 2)).sum(0).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += g.sum((0, 2))
        dcols = self.weight.reshape(self.out_channels, -1).t() @ g
        dxp = col2im(dcols, self.k, self.s, self.out_h, self.out_w, self.xp_shape)
        return dxp[:, :, self.p:self.xp_shape[2] - self.p, self.p:self.xp_shape[3] - self.p]

    def parameters(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class TransposeConv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.k, self.s, self.p, self.output_padding = kernel_size, stride, padding, output_padding
        bound = 1 / math.sqrt(out_channels * kernel_size ** 2)
        self.weight = empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-bound, bound)
        self.weight.grad = zeros(self.weight.shape)
        self.bias = None
        if bias:
            self.bias = empty(out_channels).uniform_(-bound, bound)
            self.bias.grad = zeros(out_channels)

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        full = (N, self.out_channels, (H - 1) * self.s + self.k, (W - 1) * self.s + self.k)
        cols = self.weight.reshape(C, -1).t() @ x.reshape(N, C, -1)
        y = col2im(cols, self.k, self.s, H, W, full)[:, :, self.p:full[2] - self.p, self.p:full[3] - self.p]
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        return y

    def backward(self, grad):
        N, C, H, W = self.x.shape
        gcols = im2col(pad(grad, self.p), self.k, self.s, H, W)  # N, O*k*k, H*W
        x = self.x.reshape(N, C, -1)
        self.weight.grad += (x @ gcols.transpose(1, 2)).sum(0).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias.grad += grad.sum((0, 2, 3))
        return (self.weight.reshape(C, -1) @ gcols).reshape(N, C, H, W)

    def parameters(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, x):
        f = self.scale_factor
        N, C, H, W = x.shape
        return x.reshape(N, C, H, 1, W, 1).repeat(1, 1, 1, f, 1, f).reshape(N, C, H * f, W * f)

    def backward(self, grad):
        f = self.scale_factor
        N, C, H, W = grad.shape
        return grad.reshape(N, C, H // f, f, W // f, f).sum((3, 5))


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x.clamp(min=0)

    def backward(self, grad):
        return grad * (self.x > 0)


class Sigmoid(Module):
    def sigma(self, x):
        return 1 / (1 + (-x).exp())

    def forward(self, x):
        return self.sigma(x)

    def backward(self, grad):
        s = self.sigma(grad)
        return s * (1 - s)


class MSE(Module):
    def forward(self, pred, target):
        self.pred, self.target = pred, target
        return ((pred - target) ** 2).mean()

    def backward(self):
        return 2 * (self.pred - self.target) / self.pred.numel()


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

    def parameters(self):
        return [p for m in self.modules for p in m.parameters()]


class SGD(object):
    def __init__(self, parameters, lr):
        self.parameters = list(parameters)
        self.lr = lr

    def step(self):
        for p in self.parameters:
            update = p.grad.mul_(self.lr)
            p.sub_(update)

    def zero_grad(self):
        for p in self.parameters:
            p.grad.zero_()
