# EE-559 Deep Learning -- Miniproject 2
#
# Conv2d: loops over the k*k kernel offsets (each offset = one strided, dilated slice of the
# padded input times W[:, :, i, j]).
# TransposeConv2d: the "zero insertion" picture from the lecture -- put stride-1 zeros between
# input pixels, pad by q = dilation*(k-1) - padding and run a normal convolution (unfold) with
# the flipped kernel. Its backward is the same picture read backwards.
import math
from torch import empty, zeros
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
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        r = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.W = empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-r, r)
        self.b = empty(out_channels).uniform_(-r, r) if bias else None
        self.grad_W = zeros(self.W.shape)
        self.grad_b = zeros(out_channels) if bias else None

    def _slice(self, i, j):
        d, s = self.dilation, self.stride
        return (slice(None), slice(None), slice(i * d, i * d + s * (self.h_out - 1) + 1, s),
                slice(j * d, j * d + s * (self.w_out - 1) + 1, s))

    def forward(self, x):
        N, C, H, W = x.shape
        p = self.padding
        self.xp = zeros(N, C, H + 2 * p, W + 2 * p)
        self.xp[:, :, p:p + H, p:p + W] = x
        span = self.dilation * (self.k - 1) + 1
        self.h_out = (H + 2 * p - span) // self.stride + 1
        self.w_out = (W + 2 * p - span) // self.stride + 1
        y = zeros(N, self.h_out, self.w_out, self.cout)
        for i in range(self.k):
            for j in range(self.k):
                y += self.xp[self._slice(i, j)].permute(0, 2, 3, 1) @ self.W[:, :, i, j].t()
        y = y.permute(0, 3, 1, 2)
        if self.b is not None:
            y = y + self.b.view(1, -1, 1, 1)
        return y

    def backward(self, grad):
        s = self.stride
        g = grad.permute(0, 2, 3, 1)  # N, h_out, w_out, cout
        dxp = zeros(self.xp.shape)
        for i in range(self.k):
            for j in range(self.k):
                patch = self.xp[:, :, i:i + s * (self.h_out - 1) + 1:s, j:j + s * (self.w_out - 1) + 1:s]
                self.grad_W[:, :, i, j] += g.reshape(-1, self.cout).t() @ patch.permute(0, 2, 3, 1).reshape(-1, self.cin)
                dxp[self._slice(i, j)] += (g @ self.W[:, :, i, j]).permute(0, 3, 1, 2)
        if self.b is not None:
            self.grad_b += grad.sum((0, 2, 3))
        p = self.padding
        return dxp[:, :, p:dxp.shape[2] - p, p:dxp.shape[3] - p]

    def param(self):
        return [(self.W, self.grad_W)] if self.b is None else [(self.W, self.grad_W), (self.b, self.grad_b)]


class TransposeConv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation = stride, padding, dilation
        if padding > dilation * (kernel_size - 1):
            raise ValueError("padding can be at most dilation * (kernel_size - 1) here")
        r = 1 / math.sqrt(out_channels * kernel_size * kernel_size)
        self.W = empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-r, r)
        self.b = empty(out_channels).uniform_(-r, r) if bias else None
        self.grad_W = zeros(self.W.shape)
        self.grad_b = zeros(out_channels) if bias else None

    def _flipped(self):
        # (cout, cin*k*k), kernel flipped in both spatial directions
        return self.W.flip(2, 3).transpose(0, 1).reshape(self.cout, -1)

    def forward(self, x):
        N, C, H, W = x.shape
        s = self.stride
        self.q = self.dilation * (self.k - 1) - self.padding
        q = self.q
        xd = zeros(N, C, (H - 1) * s + 1 + 2 * q, (W - 1) * s + 1 + 2 * q)
        xd[:, :, q:q + (H - 1) * s + 1:s, q:q + (W - 1) * s + 1:s] = x
        self.xd_size = xd.shape[2:]
        self.cols = unfold(xd, self.k, dilation=self.dilation)
        h_out = xd.shape[2] - self.dilation * (self.k - 1)
        w_out = xd.shape[3] - self.dilation * (self.k - 1)
        y = (self._flipped() @ self.cols).view(N, self.cout, h_out, w_out)
        if self.b is not None:
            y = y + self.b.view(1, -1, 1, 1)
        return y

    def backward(self, grad):
        N = grad.shape[0]
        g = grad.reshape(N, self.cout, -1)
        dK = (g @ self.cols.transpose(1, 2)).sum(0).view(self.cout, self.cin, self.k, self.k)
        self.grad_W += dK.transpose(0, 1).flip(2, 3)
        if self.b is not None:
            self.grad_b += grad.sum((0, 2, 3))
        dxd = fold(self._flipped().t() @ g, self.xd_size, self.k, dilation=self.dilation)
        q, s = self.q, self.stride
        return dxd[:, :, q:-q:s, q:-q:s]

    def param(self):
        return [(self.W, self.grad_W)] if self.b is None else [(self.W, self.grad_W), (self.b, self.grad_b)]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, x):
        f = self.scale_factor
        return x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)

    def backward(self, grad):
        f = self.scale_factor
        N, C, H, W = grad.shape
        return grad.view(N, C, H // f, f, W // f, f).sum(dim=(3, 5))


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x * (x > 0)

    def backward(self, grad):
        return grad * (self.x > 0)


class Sigmoid(Module):
    def forward(self, x):
        self.out = 1. / (1. + (-x).exp())
        return self.out

    def backward(self, grad):
        return grad * self.out * (1. - self.out)


class MSE(Module):
    def forward(self, prediction, target):
        self.diff = prediction - target
        return (self.diff ** 2).sum() / prediction.shape[0]

    def backward(self):
        return 2. * self.diff / self.diff.shape[0]


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, x):
        for module in self.modules:
            x = module.forward(x)
        return x

    def backward(self, grad):
        for module in reversed(self.modules):
            grad = module.backward(grad)
        return grad

    def param(self):
        return [pair for module in self.modules for pair in module.param()]


class SGD(object):
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self):
        for p, g in self.params:
            p.add_(g, alpha=-self.lr)

    def zero_grad(self):
        for _, g in self.params:
            g.fill_(0.)
