# others/layers.py -- the layers (no autograd, no torch.nn).
from torch import empty, cat, arange
from torch.nn.functional import fold, unfold
import math


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def pad(x, p):
    # zero padding (left, right, top, bottom) by hand: the course allows only fold/unfold from torch.nn
    left, right, top, bottom = p
    N, C, H, W = x.shape
    out = empty(N, C, H + top + bottom, W + left + right, dtype=x.dtype).zero_()
    out[:, :, top : top + H, left : left + W] = x
    return out


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.cin, self.cout = in_channels, out_channels
        self.k, self.s = _pair(kernel_size), _pair(stride)
        self.p, self.d = _pair(padding), _pair(dilation)
        bound = 1 / math.sqrt(in_channels * self.k[0] * self.k[1])
        self.weight = empty(out_channels, in_channels, *self.k).uniform_(-bound, bound)
        self.grad_weight = empty(self.weight.shape).zero_()
        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None
        self.grad_bias = empty(out_channels).zero_() if bias else None

    def forward(self, x):
        self.x_shape = x.shape
        N, C, H, W = x.shape
        xp = pad(x, (self.p[1], self.p[1], self.p[0], self.p[0]))
        self.cols = unfold(xp, self.k, dilation=self.d, stride=self.s)  # (N, C*kh*kw, L)
        Ho = (H + 2 * self.p[0] - self.d[0] * (self.k[0] - 1) - 1) // self.s[0] + 1
        Wo = (W + 2 * self.p[1] - self.d[1] * (self.k[1] - 1) - 1) // self.s[1] + 1
        out = self.weight.reshape(self.cout, -1) @ self.cols
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        return out.view(N, self.cout, Ho, Wo)

    def backward(self, grad):
        N, C, H, W = self.x_shape
        kh, kw = self.k
        g = grad.reshape(N, self.cout, -1)  # (N, Cout, L)
        self.grad_weight += (g @ self.cols.transpose(1, 2)).sum(0).view(self.weight.shape)
        if self.bias is not None:
            self.grad_bias += g.sum((0, 2))
        wt = self.weight.transpose(0, 1)  # (Cin, Cout, kh, kw)
        dcols = wt.permute(0, 2, 3, 1).reshape(C * kh * kw, self.cout) @ g
        Hp, Wp = H + 2 * self.p[0], W + 2 * self.p[1]
        dxp = fold(dcols, (Hp, Wp), self.k, dilation=self.d, stride=self.s)
        ph, pw = self.p
        return dxp[:, :, ph : ph + H, pw : pw + W]

    def param(self):
        if self.bias is None:
            return [(self.weight, self.grad_weight)]
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class ConvTranspose2d(Module):
    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1, bias=True
    ):
        self.cin, self.cout = in_channels, out_channels
        self.k, self.s, self.p = _pair(kernel_size), _pair(stride), _pair(padding)
        self.op, self.d = _pair(output_padding), _pair(dilation)
        if self.op[0] >= self.s[0] or self.op[1] >= self.s[1]:  # fold needs one block per input pixel
            raise ValueError("output_padding must be smaller than stride")
        bound = 1 / math.sqrt(out_channels * self.k[0] * self.k[1])
        self.weight = empty(in_channels, out_channels, *self.k).uniform_(-bound, bound)
        self.grad_weight = empty(self.weight.shape).zero_()
        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None
        self.grad_bias = empty(out_channels).zero_() if bias else None

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        Ho = (H - 1) * self.s[0] - 2 * self.p[0] + self.d[0] * (self.k[0] - 1) + self.op[0] + 1
        Wo = (W - 1) * self.s[1] - 2 * self.p[1] + self.d[1] * (self.k[1] - 1) + self.op[1] + 1
        cols = self.weight.reshape(C, -1).t() @ x.reshape(N, C, H * W)  # (N, Cout*kh*kw, H*W)
        out = fold(cols, (Ho, Wo), self.k, dilation=self.d, padding=self.p, stride=self.s)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def backward(self, grad):
        N, C, H, W = self.x.shape
        gcols = unfold(grad, self.k, dilation=self.d, padding=self.p, stride=self.s)  # (N, Cout*k*k, H*W)
        x = self.x.reshape(N, C, H * W)
        self.grad_weight += (x @ gcols.transpose(1, 2)).sum(0).view(self.weight.shape)
        if self.bias is not None:
            self.grad_bias += grad.sum((0, 2, 3))
        return (self.weight.reshape(C, -1) @ gcols).view(N, C, H, W)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.grad_weight)]
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class Upsampling(Module):
    def __init__(self, scale_factor=2):
        self.f = int(scale_factor)

    def forward(self, x):
        return x.repeat_interleave(self.f, dim=2).repeat_interleave(self.f, dim=3)

    def backward(self, grad):
        N, C, H, W = grad.shape
        return grad.view(N, C, H // self.f, self.f, W // self.f, self.f).sum((3, 5))


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None):
        self.k = _pair(kernel_size)
        self.s = _pair(stride) if stride is not None else self.k

    def forward(self, x):
        self.x_shape = x.shape
        N, C, H, W = x.shape
        cols = unfold(x, self.k, stride=self.s).view(N, C, self.k[0] * self.k[1], -1)
        out, self.idx = cols.max(dim=2)
        Ho = (H - self.k[0]) // self.s[0] + 1
        Wo = (W - self.k[1]) // self.s[1] + 1
        return out.view(N, C, Ho, Wo)

    def backward(self, grad):
        N, C, H, W = self.x_shape
        g = grad.reshape(N, C, 1, -1)
        mask = arange(self.k[0] * self.k[1]).view(1, 1, -1, 1) == self.idx.unsqueeze(2)
        dcols = (mask * g).view(N, C * self.k[0] * self.k[1], -1)
        return fold(dcols, (H, W), self.k, stride=self.s)


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x * (x > 0)

    def backward(self, grad):
        return grad * (self.x > 0)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        self.a = negative_slope

    def forward(self, x):
        self.x = x
        return x.where(x > 0, x * self.a)

    def backward(self, grad):
        return grad.where(self.x > 0, grad * self.a)


class Sigmoid(Module):
    def forward(self, x):
        self.s = 1 / (1 + (-x).exp())
        return self.s

    def backward(self, grad):
        return grad * self.s * (1 - self.s)


class Tanh(Module):
    def forward(self, x):
        self.t = x.tanh()
        return self.t

    def backward(self, grad):
        return grad * (1 - self.t**2)


class MSE(Module):
    def forward(self, prediction, target):
        self.diff = prediction - target
        return (self.diff**2).mean()

    def backward(self):
        return 2 * self.diff / self.diff.numel()


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
        return [p for m in self.modules for p in m.param()]
