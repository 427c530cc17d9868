"""Project 2 -- our own mini deep learning framework (EE-559).

Notation follows our derivation sheet: L the loss, dL_dw / dL_db the gradients of L w.r.t.
the weights / biases, kept on the layer. param() only lists the tensors; the optimizer is
handed the model at each step and reads the gradients from the layers.
"""
import math
from torch import empty
from torch.nn.functional import fold, unfold


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, ch_in, ch_out, kernel_size, stride=1, padding=0, bias=True):
        self.ch_in, self.ch_out, self.k = ch_in, ch_out, kernel_size
        self.stride, self.padding = stride, padding
        s = 1 / math.sqrt(ch_in * kernel_size ** 2)
        self.w = empty(ch_out, ch_in, kernel_size, kernel_size).uniform_(-s, s)
        self.b = empty(ch_out).uniform_(-s, s) if bias else None
        self.dL_dw = empty(self.w.shape).zero_()
        self.dL_db = empty(ch_out).zero_() if bias else None

    def forward(self, x):
        self.x_hw = x.shape[2:]
        self.x_unf = unfold(x, self.k, padding=self.padding, stride=self.stride)
        y = self.w.view(self.ch_out, -1) @ self.x_unf
        if self.b is not None:
            y = y + self.b.view(-1, 1)
        h = (x.shape[2] + 2 * self.padding - self.k) // self.stride + 1
        w = (x.shape[3] + 2 * self.padding - self.k) // self.stride + 1
        return y.view(x.shape[0], self.ch_out, h, w)

    def backward(self, dL_dy):
        dL_dy = dL_dy.flatten(2)  # (N, ch_out, L)
        self.dL_dw += (dL_dy @ self.x_unf.transpose(1, 2)).sum(0).view(self.w.shape)
        if self.b is not None:
            self.dL_db += dL_dy.sum((0, 2))
        dL_dx_unf = self.w.view(-1, self.ch_out) @ dL_dy
        return fold(dL_dx_unf, self.x_hw, self.k, padding=self.padding, stride=self.stride)

    def param(self):
        return [self.w] if self.b is None else [self.w, self.b]


class TransposeConv2d(Module):
    def __init__(self, ch_in, ch_out, kernel_size, stride=1, padding=0, bias=True):
        self.ch_in, self.ch_out, self.k = ch_in, ch_out, kernel_size
        self.stride, self.padding = stride, padding
        s = 1 / math.sqrt(ch_out * kernel_size ** 2)
        self.w = empty(ch_in, ch_out, kernel_size, kernel_size).uniform_(-s, s)
        self.b = empty(ch_out).uniform_(-s, s) if bias else None
        self.dL_dw = empty(self.w.shape).zero_()
        self.dL_db = empty(ch_out).zero_() if bias else None

    def forward(self, x):
        self.x = x
        n, c, h, w = x.shape
        out_hw = ((h - 1) * self.stride - 2 * self.padding + self.k, (w - 1) * self.stride - 2 * self.padding + self.k)
        y = fold(self.w.view(self.ch_in, -1).t() @ x.flatten(2), out_hw, self.k, padding=self.padding,
                 stride=self.stride)
        if self.b is not None:
            y = y + self.b.view(1, -1, 1, 1)
        return y

    def backward(self, dL_dy):
        n, c, h, w = self.x.shape
        dL_dy_unf = unfold(dL_dy, self.k, padding=self.padding, stride=self.stride)  # (N, ch_out*k*k, h*w)
        self.dL_dw = (self.x.flatten(2) @ dL_dy_unf.transpose(1, 2)).sum(0).view(self.w.shape)
        if self.b is not None:
            self.dL_db = dL_dy.sum((0, 2, 3))
        return (self.w.view(self.ch_in, -1) @ dL_dy_unf).view(n, c, h, w)

    def param(self):
        return [self.w] if self.b is None else [self.w, self.b]


class Upsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, x):
        f = self.scale_factor
        return x.repeat_interleave(f, 2).repeat_interleave(f, 3)

    def backward(self, dL_dy):
        f = self.scale_factor
        n, c, h, w = dL_dy.shape
        return dL_dy.view(n, c, h // f, f, w // f, f).sum(3).sum(4)


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x * (x > 0)

    def backward(self, dL_dy):
        return dL_dy * (self.x > 0)


class Sigmoid(Module):
    def forward(self, x):
        self.y = 1 / (1 + (-x).exp())
        return self.y

    def backward(self, dL_dy):
        return dL_dy * self.y * (1 - self.y)


class MSE(Module):
    def forward(self, y_pred, y):
        self.e = y_pred - y
        return (self.e ** 2).mean()

    def backward(self):
        return 2 / self.e.numel() * self.e


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dL_dy):
        for layer in reversed(self.layers):
            dL_dy = layer.backward(dL_dy)
        return dL_dy

    def param(self):
        return [p for layer in self.layers for p in layer.param()]


def _with_grads(model):
    layers = model.layers if isinstance(model, Sequential) else [model]
    for layer in layers:
        if hasattr(layer, "dL_dw"):
            yield layer.w, layer.dL_dw
            if layer.b is not None:
                yield layer.b, layer.dL_db


class SGD(object):
    def __init__(self, lr, momentum=0.):
        self.lr, self.momentum = lr, momentum
        self.v = {}

    def step(self, model):
        for p, g in _with_grads(model):
            if self.momentum > 0:
                g = self.v[id(p)] = self.momentum * self.v[id(p)] + g if id(p) in self.v else g.clone()
            p -= self.lr * g

    def zero_grad(self, model):
        for p, g in _with_grads(model):
            g.zero_()
