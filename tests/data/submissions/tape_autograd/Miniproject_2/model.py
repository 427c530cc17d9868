"""EE-559 Miniproject 2: a tiny reverse-mode "autograd" written by hand.

Every value that flows through the network is a Variable: its data (a torch tensor), its
grad, and its creator (the Op that produced it, which remembers its inputs and how to send
a gradient back to them). Calling .backward() on the loss walks the creators in reverse
topological order, so the layers themselves only describe one local step each.
No torch.autograd anywhere: torch is only used for tensor storage, unfold and fold.
"""
import math
from torch import empty
from torch.nn.functional import fold, unfold


class Op(object):
    def __init__(self, inputs, backward_fn, name=""):
        self.inputs = inputs
        self.backward_fn = backward_fn
        self.name = name

    def backward(self, grad):
        return self.backward_fn(grad)


class Variable(object):
    def __init__(self, data, creator=None):
        self.data = data
        self.creator = creator
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    def _topo(self):
        order, seen = [], set()

        def visit(v):
            if id(v) in seen:
                return
            seen.add(id(v))
            if v.creator is not None:
                for inp in v.creator.inputs:
                    if inp is not None:
                        visit(inp)
            order.append(v)

        visit(self)
        return order

    def backward(self, grad=None):
        if grad is None:
            grad = empty(self.data.shape).fill_(1.)
        pending = {id(self): grad}
        for v in reversed(self._topo()):
            g = pending.pop(id(v), None)
            if g is None:
                continue
            if v.creator is None:  # a leaf: input or parameter
                v.grad = g if v.grad is None else v.grad + g
                continue
            for inp, gi in zip(v.creator.inputs, v.creator.backward(g)):
                if inp is None or gi is None:
                    continue
                pending[id(inp)] = pending[id(inp)] + gi if id(inp) in pending else gi


def _p(x):
    return x if isinstance(x, tuple) else (x, x)


class Module(object):
    def forward(self, *inputs):
        raise NotImplementedError

    def __call__(self, *inputs):
        return self.forward(*inputs)

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.out_channels = out_channels
        self.fold_args = dict(kernel_size=_p(kernel_size), dilation=_p(dilation), padding=_p(padding),
                              stride=_p(stride))
        kh, kw = _p(kernel_size)
        bound = 1 / math.sqrt(in_channels * kh * kw)
        self.weight = Variable(empty(out_channels, in_channels, kh, kw).uniform_(-bound, bound))
        self.bias = Variable(empty(out_channels).uniform_(-bound, bound)) if bias else None

    def forward(self, x):
        N, C, H, W = x.data.shape
        (kh, kw), (dh, dw) = self.fold_args["kernel_size"], self.fold_args["dilation"]
        (ph, pw), (sh, sw) = self.fold_args["padding"], self.fold_args["stride"]
        Ho, Wo = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = unfold(x.data, **self.fold_args)
        Wm = self.weight.data.reshape(self.out_channels, -1)
        y = Wm @ cols
        if self.bias is not None:
            y = y + self.bias.data.view(-1, 1)

        def back(g):
            g = g.reshape(N, self.out_channels, -1)
            dW = (g @ cols.transpose(1, 2)).sum(0).view(self.weight.data.shape)
            dx = fold(Wm.t() @ g, (H, W), **self.fold_args)
            return [dx, dW, g.sum((0, 2)) if self.bias is not None else None]

        return Variable(y.view(N, self.out_channels, Ho, Wo), Op([x, self.weight, self.bias], back, "conv"))

    def param(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class TransposeConv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 dilation=1, bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.fold_args = dict(kernel_size=_p(kernel_size), dilation=_p(dilation), padding=_p(padding),
                              stride=_p(stride))
        self.output_padding = _p(output_padding)
        if any(op >= s for op, s in zip(self.output_padding, _p(stride))):
            raise ValueError("TransposeConv2d: output_padding must be smaller than stride")
        kh, kw = _p(kernel_size)
        bound = 1 / math.sqrt(out_channels * kh * kw)
        self.weight = Variable(empty(in_channels, out_channels, kh, kw).uniform_(-bound, bound))
        self.bias = Variable(empty(out_channels).uniform_(-bound, bound)) if bias else None

    def forward(self, x):
        N, C, H, W = x.data.shape
        a = self.fold_args
        size = [(n - 1) * a["stride"][i] - 2 * a["padding"][i] + a["dilation"][i] * (a["kernel_size"][i] - 1)
                + self.output_padding[i] + 1 for i, n in enumerate((H, W))]
        Wm = self.weight.data.reshape(C, -1)
        xm = x.data.reshape(N, C, H * W)
        y = fold(Wm.t() @ xm, size, **a)
        if self.bias is not None:
            y = y + self.bias.data.view(1, -1, 1, 1)

        def back(g):
            gcols = unfold(g, **a)
            dW = (xm @ gcols.transpose(1, 2)).sum(0).view(self.weight.data.shape)
            dx = (Wm @ gcols).view(N, C, H, W)
            return [dx, dW, g.sum((0, 2, 3)) if self.bias is not None else None]

        return Variable(y, Op([x, self.weight, self.bias], back, "convT"))

    def param(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.f = scale_factor

    def forward(self, x):
        f = self.f
        y = x.data.repeat_interleave(f, 2).repeat_interleave(f, 3)

        def back(g):
            N, C, H, W = g.shape
            return [g.view(N, C, H // f, f, W // f, f).sum(5).sum(3)]

        return Variable(y, Op([x], back, "up"))


class ReLU(Module):
    def forward(self, x):
        mask = x.data > 0
        return Variable(x.data * mask, Op([x], lambda g: [g * mask], "relu"))


class Sigmoid(Module):
    def forward(self, x):
        s = 1 / (1 + (-x.data).exp())
        return Variable(s, Op([x], lambda g: [g * s * (1 - s)], "sigmoid"))


class MSE(Module):
    def forward(self, prediction, target):
        t = target.data if isinstance(target, Variable) else target
        d = prediction.data - t
        return Variable((d * d).mean(), Op([prediction], lambda g: [g * 2 * d / d.numel()], "mse"))


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = modules

    def forward(self, x):
        for m in self.modules:
            x = m(x)
        return x

    def param(self):
        return [p for m in self.modules for p in m.param()]


class SGD(object):
    def __init__(self, params, lr, momentum=0.):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.buf = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        for p in self.params:
            if p.grad is None:
                continue
            d = p.grad
            if self.momentum:
                d = self.buf[p] = self.buf[p] * self.momentum + d if p in self.buf else d.clone()
            p.data -= self.lr * d
