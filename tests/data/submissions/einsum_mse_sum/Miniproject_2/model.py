# EE-559 -- Miniproject 2
# We gather the k*k shifted (strided) copies of the padded input with cat, then every product
# is one einsum:  n batch, c in-channel, o out-channel, p kernel position, h/w pixel.
import math
from torch import cat, einsum, empty, zeros


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []

    def zero_grad(self):
        for _, g in self.param():
            g.zero_()


def shifted(x, k, s, d, h_out, w_out):
    """list of (i, j, slices) for every kernel position"""
    out = []
    for i in range(k):
        for j in range(k):
            out.append((i, j, (slice(None), slice(None), slice(i * d, i * d + s * (h_out - 1) + 1, s),
                               slice(j * d, j * d + s * (w_out - 1) + 1, s))))
    return out


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.s, self.p, self.d = stride, padding, dilation
        bound = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-bound, bound)
        self.grad_weight = zeros(self.weight.shape)
        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None
        self.grad_bias = zeros(out_channels) if bias else None

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.p
        xp = zeros(n, c, h + 2 * p, w + 2 * p)
        xp[:, :, p:p + h, p:p + w] = x
        self.padded_shape, self.hw = xp.shape, (h, w)
        ho = (h + 2 * p - self.d * (self.k - 1) - 1) // self.s + 1
        wo = (w + 2 * p - self.d * (self.k - 1) - 1) // self.s + 1
        self.pos = shifted(xp, self.k, self.s, self.d, ho, wo)
        self.cols = cat([xp[sl].unsqueeze(2) for _, _, sl in self.pos], 2)  # n, c, k*k, ho, wo
        y = einsum('ncphw,ocp->nohw', self.cols, self.weight.reshape(self.cout, c, -1))
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def backward(self, gy):
        self.grad_weight += einsum('nohw,ncphw->ocp', gy, self.cols).reshape(self.weight.shape)
        if self.bias is not None:
            self.grad_bias += einsum('nohw->o', gy)
        dcols = einsum('nohw,ocp->ncphw', gy, self.weight.reshape(self.cout, self.cin, -1))
        dxp = zeros(self.padded_shape)
        for q, (_, _, sl) in enumerate(self.pos):
            dxp[sl] += dcols[:, :, q]
        p, (h, w) = self.p, self.hw
        return dxp[:, :, p:p + h, p:p + w]

    def param(self):
        if self.bias is None:
            return [(self.weight, self.grad_weight)]
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class ConvTranspose2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                 bias=True):
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.s, self.p, self.op, self.d = stride, padding, output_padding, dilation
        bound = 1 / math.sqrt(out_channels * kernel_size * kernel_size)
        self.weight = empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-bound, bound)
        self.grad_weight = zeros(self.weight.shape)
        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None
        self.grad_bias = zeros(out_channels) if bias else None

    def forward(self, x):
        self.x = x
        n, c, h, w = x.shape
        big = [(m - 1) * self.s + self.d * (self.k - 1) + 1 + self.op for m in (h, w)]
        full = zeros(n, self.cout, big[0], big[1])
        for i, j, sl in shifted(full, self.k, self.s, self.d, h, w):
            full[sl] += einsum('nchw,co->nohw', x, self.weight[:, :, i, j])
        p = self.p
        y = full[:, :, p:big[0] - p, p:big[1] - p]
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y

    def backward(self, gy):
        n, c, h, w = self.x.shape
        p = self.p
        gfull = zeros(n, self.cout, gy.shape[2] + 2 * p, gy.shape[3] + 2 * p)
        gfull[:, :, p:p + gy.shape[2], p:p + gy.shape[3]] = gy
        dx = zeros(self.x.shape)
        for i, j, sl in shifted(gfull, self.k, self.s, self.d, h, w):
            self.grad_weight[:, :, i, j] += einsum('nchw,nohw->co', self.x, gfull[sl]) / n
            dx += einsum('nohw,co->nchw', gfull[sl], self.weight[:, :, i, j])
        if self.bias is not None:
            self.grad_bias += einsum('nohw->o', gy)
        return dx

    def param(self):
        if self.bias is None:
            return [(self.weight, self.grad_weight)]
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class Upsampling(Module):
    def __init__(self, scale_factor=2):
        self.f = scale_factor

    def forward(self, x):
        ones = empty(self.f, self.f).fill_(1.)
        n, c, h, w = x.shape
        return einsum('nchw,ij->nchiwj', x, ones).reshape(n, c, h * self.f, w * self.f)

    def backward(self, gy):
        n, c, h, w = gy.shape
        return einsum('nchiwj->nchw', gy.reshape(n, c, h // self.f, self.f, w // self.f, self.f))


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.k, self.p = kernel_size, padding
        self.s = stride if stride is not None else kernel_size

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.p
        xp = empty(n, c, h + 2 * p, w + 2 * p).fill_(-float('inf'))
        xp[:, :, p:p + h, p:p + w] = x
        self.padded_shape, self.hw = xp.shape, (h, w)
        ho, wo = (h + 2 * p - self.k) // self.s + 1, (w + 2 * p - self.k) // self.s + 1
        self.pos = shifted(xp, self.k, self.s, 1, ho, wo)
        windows = cat([xp[sl].unsqueeze(2) for _, _, sl in self.pos], 2)
        y, self.argmax = windows.max(2)
        return y

    def backward(self, gy):
        dxp = zeros(self.padded_shape)
        for q, (_, _, sl) in enumerate(self.pos):
            dxp[sl] += gy * (self.argmax == q)
        p, (h, w) = self.p, self.hw
        return dxp[:, :, p:p + h, p:p + w]


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x.clamp(min=0.)

    def backward(self, gy):
        return gy * (self.x > 0)


class Sigmoid(Module):
    def forward(self, x):
        self.y = 1. / (1. + (-x).exp())
        return self.y

    def backward(self, gy):
        return gy * self.y * (1. - self.y)


class MSE(Module):
    def forward(self, prediction, target):
        self.prediction, self.target = prediction, target
        return ((prediction - target) ** 2).sum()

    def backward(self):
        return 2 * (self.prediction - self.target)


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, x):
        for module in self.modules:
            x = module.forward(x)
        return x

    def backward(self, gy):
        for module in self.modules[::-1]:
            gy = module.backward(gy)
        return gy

    def param(self):
        return [pg for module in self.modules for pg in module.param()]


class SGD(object):
    def __init__(self, model, lr=0.01):
        self.model, self.lr = model, lr

    def update(self):
        for p, g in self.model.param():
            p -= self.lr * g

    def zero_grad(self):
        self.model.zero_grad()
