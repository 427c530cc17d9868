import torch
from .others.nn import Layer, Conv2d, TransposeConv2d


class NearestUpsampling(Layer):
    def __init__(self, scale_factor=2):
        self.n = scale_factor

    def forward(self, x):
        return x.repeat_interleave(self.n, 2).repeat_interleave(self.n, 3)

    def backward(self, dy):
        a, b, h, w = dy.shape
        return dy.view(a, b, h // self.n, self.n, w // self.n, self.n).sum(5).sum(3)


class ReLU(Layer):
    def forward(self, x):
        self.pos = (x > 0).to(x.dtype)
        return x * self.pos

    def backward(self, dy):
        return dy * self.pos


class Sigmoid(Layer):
    def forward(self, x):
        self.y = 1 / (1 + torch.exp(-x))
        return self.y

    def backward(self, dy):
        return dy * self.y * (1 - self.y)


class MSE(Layer):
    def forward(self, pred, target):
        self.e = pred - target
        return (self.e * self.e).sum() / self.e.numel()

    def backward(self):
        return self.e * (2 / self.e.numel())


class Sequential(Layer):
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)
        return x

    def backward(self, dy):
        for m in self.modules[::-1]:
            dy = m.backward(dy)
        return dy

    def layers(self):
        out = []
        for m in self.modules:
            out += m.layers() if isinstance(m, Sequential) else [m]
        return out


class SGD:
    def __init__(self, modules, lr, momentum=0.0):
        self.lr, self.mu = lr, momentum
        self.layers = []
        for m in modules:
            self.layers += m.layers() if isinstance(m, Sequential) else [m]
        self.buf = {}

    def step(self):
        for l in self.layers:
            for k in l.tensors:
                g = l.grads[k]
                if self.mu:
                    key = (id(l), k)
                    self.buf[key] = g.clone() if key not in self.buf else self.mu * self.buf[key] + g
                    g = self.buf[key]
                l.tensors[k] -= self.lr * g

    def zero_grad(self):
        for l in self.layers:
            for g in l.grads.values():
                g.zero_()
