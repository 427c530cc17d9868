from torch import empty, zeros
from torch.nn.functional import fold, unfold
from .conv import Module, _pair


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, x):
        return x.repeat_interleave(self.scale_factor, 2).repeat_interleave(self.scale_factor, 3)

    def backward(self, grad):
        f = self.scale_factor
        N, C, H, W = grad.shape
        return grad.view(N, C, H // f, f, W // f, f).sum((3, 5))


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.k = _pair(kernel_size)
        self.s = _pair(stride) if stride is not None else self.k
        self.p = _pair(padding)

    def forward(self, x):
        N, C, H, W = x.shape
        (ph, pw), (kh, kw) = self.p, self.k
        xp = empty(N, C, H + 2 * ph, W + 2 * pw).fill_(float('-inf'))
        xp[:, :, ph:ph + H, pw:pw + W] = x
        self.padded_size, self.x_size = xp.shape[2:], (H, W)
        cols = unfold(xp, self.k, stride=self.s).view(N, C, kh * kw, -1)
        out, self.argmax = cols.max(2)
        self.n_cols = cols.shape[-1]
        Ho = (H + 2 * ph - kh) // self.s[0] + 1
        return out.view(N, C, Ho, -1)

    def backward(self, grad):
        N, C = grad.shape[:2]
        (ph, pw), (kh, kw) = self.p, self.k
        dcols = zeros(N, C, kh * kw, self.n_cols)
        dcols.scatter_(2, self.argmax.unsqueeze(2), grad.reshape(N, C, 1, -1))
        dxp = fold(dcols.view(N, C * kh * kw, -1), self.padded_size, self.k, stride=self.s)
        H, W = self.x_size
        return dxp[:, :, ph:ph + H, pw:pw + W]


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
        return grad * ((self.x > 0) + self.negative_slope * (self.x <= 0))


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
        return 1 - self.t ** 2
