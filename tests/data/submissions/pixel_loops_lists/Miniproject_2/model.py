# Miniproject 2 -- EE-559, spring
# Convolution = loop over the output pixels: each output pixel is a dot product between one
# (C, k, k) patch of the padded input and the kernel.  The transposed convolution is the same
# code read backwards (its forward is the convolution's input gradient and vice versa).
# param() of a layer is a list of [tensor, gradient] lists; Sequential.param() keeps one list
# per layer, and SGD walks the per-layer lists.
import math
import torch
from torch import empty, zeros


def _pad(x, p):
    if p == 0:
        return x
    out = zeros(x.shape[0], x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p, dtype=x.dtype)
    out[:, :, p:-p, p:-p] = x
    return out


def _conv(xp, Wm, k, s, out_h, out_w):
    """xp padded input, Wm (O, C*k*k) -> (N, O, out_h, out_w)"""
    out = zeros(xp.shape[0], Wm.shape[0], out_h, out_w, dtype=xp.dtype)
    for i in range(out_h):
        for j in range(out_w):
            patch = xp[:, :, i * s:i * s + k, j * s:j * s + k].reshape(xp.shape[0], -1)
            out[:, :, i, j] = patch @ Wm.t()
    return out


def _conv_input_grad(g, Wm, k, s, padded_shape):
    """adjoint of _conv: scatter every output pixel's gradient back onto its patch"""
    dxp = zeros(padded_shape, dtype=g.dtype)
    N, C = padded_shape[0], padded_shape[1]
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            dxp[:, :, i * s:i * s + k, j * s:j * s + k] += (g[:, :, i, j] @ Wm).view(N, C, k, k)
    return dxp


def _conv_weight_grad(xp, g, k, s):
    dW = 0
    N = xp.shape[0]
    for i in range(g.shape[2]):
        for j in range(g.shape[3]):
            dW = dW + g[:, :, i, j].t() @ xp[:, :, i * s:i * s + k, j * s:j * s + k].reshape(N, -1)
    return dW


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []

    def double(self):
        for pair in self.param():
            pair[0].data = pair[0].double()
            pair[1].data = pair[1].double()
        return self


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, weight=None, bias=None):
        self.c_in, self.c_out, self.k, self.s, self.p = in_channels, out_channels, kernel_size, stride, padding
        a = 1. / math.sqrt(in_channels * kernel_size * kernel_size)
        # weight / bias can be given (e.g. to start from saved values), otherwise random
        self.weight = weight.clone() if weight is not None else \
            empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-a, a)
        self.bias = bias.clone() if bias is not None else empty(out_channels).uniform_(-a, a)
        self.dweight = zeros(self.weight.shape)
        self.dbias = zeros(self.bias.shape)

    def forward(self, x):
        self.xp = _pad(x, self.p)
        H, W = self.xp.shape[2:]
        out = _conv(self.xp, self.weight.view(self.c_out, -1), self.k, self.s,
                    (H - self.k) // self.s + 1, (W - self.k) // self.s + 1)
        return out + self.bias.view(1, -1, 1, 1)

    def backward(self, grad):
        self.dweight += _conv_weight_grad(self.xp, grad, self.k, self.s).view(self.weight.shape)
        self.dbias += grad.sum((0, 2, 3))
        dxp = _conv_input_grad(grad, self.weight.view(self.c_out, -1), self.k, self.s, self.xp.shape)
        H, W = dxp.shape[2] - 2 * self.p, dxp.shape[3] - 2 * self.p
        return dxp[:, :, self.p:self.p + H, self.p:self.p + W]

    def param(self):
        return [[self.weight, self.dweight], [self.bias, self.dbias]]


class TransposeConv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 weight=None, bias=None):
        self.c_in, self.c_out, self.k, self.s, self.p = in_channels, out_channels, kernel_size, stride, padding
        self.op = output_padding
        a = 1. / math.sqrt(out_channels * kernel_size * kernel_size)
        self.weight = weight.clone() if weight is not None else \
            empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-a, a)
        self.bias = bias.clone() if bias is not None else empty(out_channels).uniform_(-a, a)
        self.dweight = zeros(self.weight.shape)
        self.dbias = zeros(self.bias.shape)

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        # size of the output before cropping the padding
        Hp, Wp = (H - 1) * self.s + self.k + self.op, (W - 1) * self.s + self.k + self.op
        outp = _conv_input_grad(x, self.weight.view(self.c_in, -1), self.k, self.s, (N, self.c_out, Hp, Wp))
        out = outp[:, :, self.p:Hp - self.p, self.p:Wp - self.p]
        return out + self.bias.view(1, -1, 1, 1)

    def backward(self, grad):
        gp = _pad(grad, self.p)
        H, W = self.x.shape[2:]
        self.dweight += _conv_weight_grad(gp, self.x, self.k, self.s).view(self.weight.shape)
        self.dbias += grad.sum((0, 2, 3))
        return _conv(gp, self.weight.view(self.c_in, -1), self.k, self.s, H, W)

    def param(self):
        return [[self.weight, self.dweight], [self.bias, self.dbias]]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, x):
        f = self.scale_factor
        return x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)

    def backward(self, grad):
        f = self.scale_factor
        N, C, H, W = grad.shape
        return grad.reshape(N, C, H // f, f, W // f, f).sum(3).sum(4)


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x.clamp(min=0)

    def backward(self, grad):
        return grad * (self.x > 0)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.x = x
        return x.clamp(min=0) + self.negative_slope * x.clamp(max=0)

    def backward(self, grad):
        d = (self.x > 0).to(grad.dtype)
        return grad * (d + self.negative_slope * (1 - d))


class Sigmoid(Module):
    def forward(self, x):
        self.y = 1 / (1 + torch.exp(-x))
        return self.y

    def backward(self, grad):
        return grad * self.y * (1 - self.y)


class Tanh(Module):
    def forward(self, x):
        self.y = torch.tanh(x)
        return self.y

    def backward(self, grad):
        return grad * (1 - self.y ** 2)


class MSE(Module):
    def forward(self, y_true, y_pred):
        self.err = y_pred - y_true
        return (self.err ** 2).mean().item()

    def backward(self):
        return 2 * self.err / self.err.numel()


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def param(self):
        return [layer.param() for layer in self.layers]


class SGD(object):
    def __init__(self, per_layer, lr=0.1):
        self.per_layer = per_layer
        self.lr = lr

    def step(self):
        for layer_params in self.per_layer:
            for p, g in layer_params:
                p.sub_(self.lr * g)

    def zero_grad(self):
        for layer_params in self.per_layer:
            for p, g in layer_params:
                g.zero_()
