# Mini-project 2 (EE-559)
# Parameters are small Parameter objects (value + grad) so the optimizers do not need to know
# which layer they come from.  All the convolution maths is written with einsum on the unfolded
# input, the indices read like the formulas in the course notes:
#   n batch, c input channel, o output channel, k/l kernel offsets, u/v output positions.
import math
import torch
from torch import empty, einsum
from torch.nn.functional import fold, unfold


class Parameter(object):
    def __init__(self, value):
        self.value = value
        self.grad = empty(value.shape, dtype=value.dtype).zero_()

    def to(self, dtype):
        self.value = self.value.to(dtype)
        self.grad = self.grad.to(dtype)
        return self


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []

    def to(self, dtype):
        for p in self.param():
            p.to(dtype)
        return self


def _tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.k, self.stride = _tuple(kernel_size), _tuple(stride)
        self.padding, self.dilation = _tuple(padding), _tuple(dilation)
        a = 1 / math.sqrt(in_channels * self.k[0] * self.k[1])
        self.weight = Parameter(empty(out_channels, in_channels, *self.k).uniform_(-a, a))
        self.bias = Parameter(empty(out_channels).uniform_(-a, a)) if bias else None

    def forward(self, x):
        n, c, h, w = x.shape
        kh, kw = self.k
        self.size = (h, w)
        cols = unfold(x, self.k, self.dilation, self.padding, self.stride)
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        self.cols = cols.view(n, c, kh, kw, ho, wo)
        y = einsum('nckluv,ockl->nouv', self.cols, self.weight.value)
        if self.bias is not None:
            y = y + self.bias.value.view(1, -1, 1, 1)
        return y

    def backward(self, dy):
        self.weight.grad += einsum('nouv,nckluv->ockl', dy, self.cols)
        if self.bias is not None:
            self.bias.grad += einsum('nouv->o', dy)
        dcols = einsum('nouv,ockl->nckluv', dy, self.weight.value)
        n = dy.shape[0]
        return fold(dcols.reshape(n, -1, dy.shape[2] * dy.shape[3]), self.size, self.k, self.dilation,
                    self.padding, self.stride)

    def param(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class ConvTranspose2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, dilation=1):
        self.k, self.stride = _tuple(kernel_size), _tuple(stride)
        self.padding, self.dilation = _tuple(padding), _tuple(dilation)
        self.output_padding = _tuple(output_padding)
        a = 1 / math.sqrt(out_channels * self.k[0] * self.k[1])
        self.weight = Parameter(empty(in_channels, out_channels, *self.k).uniform_(-a, a))
        self.bias = Parameter(empty(out_channels).uniform_(-a, a)) if bias else None

    def forward(self, x):
        # fold without padding onto the full output, add the output_padding rows/columns at the
        # end, then cut the padding off both sides (fold alone cannot do output_padding >= stride)
        self.x = x
        n, c, h, w = x.shape
        self.full = [(s - 1) * self.stride[i] + self.dilation[i] * (self.k[i] - 1) + 1 for i, s in enumerate((h, w))]
        cols = einsum('nchw,cokl->noklhw', x, self.weight.value)
        y = fold(cols.reshape(n, -1, h * w), self.full, self.k, self.dilation, 0, self.stride)
        (p0, p1), (op0, op1) = self.padding, self.output_padding
        big = empty(n, y.shape[1], self.full[0] + op0, self.full[1] + op1, dtype=y.dtype).zero_()
        big[:, :, :self.full[0], :self.full[1]] = y
        y = big[:, :, p0:big.shape[2] - p0, p1:big.shape[3] - p1]
        if self.bias is not None:
            y = y + self.bias.value.view(1, -1, 1, 1)
        return y

    def backward(self, dy):
        n, c, h, w = self.x.shape
        o = dy.shape[1]
        (p0, p1), (op0, op1) = self.padding, self.output_padding
        big = empty(n, o, self.full[0] + op0, self.full[1] + op1, dtype=dy.dtype).zero_()
        big[:, :, p0:p0 + dy.shape[2], p1:p1 + dy.shape[3]] = dy
        gcols = unfold(big[:, :, :self.full[0], :self.full[1]], self.k, self.dilation, 0, self.stride)
        gcols = gcols.view(n, o, self.k[0], self.k[1], h, w)
        self.weight.grad += einsum('nchw,noklhw->cokl', self.x, gcols)
        if self.bias is not None:
            self.bias.grad += einsum('nohw->o', dy)
        return einsum('noklhw,cokl->nchw', gcols, self.weight.value)

    def param(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class Upsample(Module):
    """nearest neighbour upsampling, integer scale"""

    def __init__(self, scale_factor=2):
        self.scale = int(scale_factor)

    def forward(self, x):
        s = self.scale
        ones = empty(s, s, dtype=x.dtype).fill_(1)
        n, c, h, w = x.shape
        return einsum('nchw,ab->nchawb', x, ones).reshape(n, c, h * s, w * s)

    def backward(self, dy):
        s = self.scale
        n, c, h, w = dy.shape
        return einsum('nchawb->nchw', dy.reshape(n, c, h // s, s, w // s, s))


class ReLU(Module):
    def forward(self, x):
        self.mask = (x > 0).to(x.dtype)
        return x * self.mask

    def backward(self, dy):
        return dy * self.mask


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, x):
        self.slope = (x > 0).to(x.dtype) * (1 - self.negative_slope) + self.negative_slope
        return x * self.slope

    def backward(self, dy):
        return dy * self.slope


class Sigmoid(Module):
    def forward(self, x):
        # written with tanh, it never overflows
        self.s = 0.5 * (1 + (0.5 * x).tanh())
        return self.s

    def backward(self, dy):
        return dy * self.s * (1 - self.s)


class Tanh(Module):
    def forward(self, x):
        self.t = x.tanh()
        return self.t

    def backward(self, dy):
        return dy * (1 - self.t * self.t)


class MSE(Module):
    def forward(self, input, target):
        self.d = input - target
        return einsum('...,...->', self.d, self.d) / self.d.numel()

    def backward(self):
        return 2 * self.d / self.d.numel()


class Sequential(Module):
    def __init__(self, *args):
        self.modules = list(args)

    def forward(self, x):
        for m in self.modules:
            x = m.forward(x)
        return x

    def backward(self, dy):
        for m in reversed(self.modules):
            dy = m.backward(dy)
        return dy

    def param(self):
        return [p for m in self.modules for p in m.param()]


class Optimizer(object):
    def __init__(self, params):
        self.params = list(params)

    def zero_grad(self):
        for p in self.params:
            p.grad.zero_()

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params)
        self.lr, self.momentum = lr, momentum
        self.velocity = [None for _ in self.params]

    def step(self):
        for i, p in enumerate(self.params):
            d = p.grad
            if self.momentum != 0:
                if self.velocity[i] is None:
                    self.velocity[i] = d.clone()
                else:
                    self.velocity[i] = self.momentum * self.velocity[i] + d
                d = self.velocity[i]
            p.value -= self.lr * d


class Adam(Optimizer):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.m = [p.grad * 0 for p in self.params]
        self.v = [p.grad * 0 for p in self.params]
        self.t = 0

    def step(self):
        self.t += 1
        for p, m, v in zip(self.params, self.m, self.v):
            m.mul_(self.beta1).add_((1 - self.beta1) * p.grad)
            v.mul_(self.beta2).add_((1 - self.beta2) * p.grad ** 2)
            denom = (v / (1 - self.beta2 ** self.t)).sqrt() + self.eps
            p.value -= self.lr * (m / (1 - self.beta1 ** self.t)) / denom
