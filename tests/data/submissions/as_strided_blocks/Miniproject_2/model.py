# EE-559 Miniproject 2 -- our blocks
# Sliding windows are taken with Tensor.as_strided (no copy): for a padded input xp of
# strides (sN, sC, sH, sW) the window view has shape (N, C, Ho, Wo, k, k).
# Layers keep their gradients in grad_weight / grad_bias, param() only lists the tensors,
# and the optimizer is given the list of layers. backward always returns a tuple of gradients
# (one per input of forward), like the handout's Module.backward(*gradwrtoutput).
import math
from torch import empty, zeros


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


def windows(xp, k, out_hw, stride, dilation):
    sN, sC, sH, sW = xp.stride()
    N, C = xp.shape[:2]
    return xp.as_strided((N, C, out_hw[0], out_hw[1], k, k),
                         (sN, sC, sH * stride, sW * stride, sH * dilation, sW * dilation))


def offset_view(buf, i, j, out_hw, stride, dilation):
    # positions of buf that kernel offset (i, j) touches
    sN, sC, sH, sW = buf.stride()
    return buf.as_strided((buf.shape[0], buf.shape[1], out_hw[0], out_hw[1]),
                          (sN, sC, sH * stride, sW * stride), buf.storage_offset() + (i * sH + j * sW) * dilation)


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.s, self.p, self.d = stride, padding, dilation
        bound = math.sqrt(1 / (in_channels * kernel_size * kernel_size))
        self.weight = empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-bound, bound)
        self.grad_weight = zeros(self.weight.shape)
        if bias:
            self.bias = empty(out_channels).uniform_(-bound, bound)
            self.grad_bias = zeros(out_channels)
        else:
            self.bias = self.grad_bias = None

    def forward(self, x):
        N, C, H, W = x.shape
        p = self.p
        self.xp = zeros(N, C, H + 2 * p, W + 2 * p)
        self.xp[:, :, p:p + H, p:p + W] = x
        self.hw = [(n + 2 * p - self.d * (self.k - 1) - 1) // self.s + 1 for n in (H, W)]
        win = windows(self.xp, self.k, self.hw, self.s, self.d)
        self.cols = win.permute(0, 2, 3, 1, 4, 5).reshape(-1, C * self.k * self.k)
        out = self.cols @ self.weight.reshape(self.cout, -1).t()
        if self.bias is not None:
            out += self.bias
        return out.view(N, self.hw[0], self.hw[1], self.cout).permute(0, 3, 1, 2)

    def backward(self, grad):
        N, C, Hp, Wp = self.xp.shape
        g = grad.permute(0, 2, 3, 1).reshape(-1, self.cout)
        self.grad_weight += (g.t() @ self.cols).view(self.weight.shape)
        if self.bias is not None:
            self.grad_bias += g.sum(0)
        dcols = (g @ self.weight.reshape(self.cout, -1)).view(N, self.hw[0], self.hw[1], C, self.k, self.k)
        dxp = zeros(N, C, Hp, Wp)
        for i in range(self.k):
            for j in range(self.k):
                offset_view(dxp, i, j, self.hw, self.s, self.d).add_(dcols[..., i, j].permute(0, 3, 1, 2))
        return (dxp[:, :, self.p:Hp - self.p, self.p:Wp - self.p],)

    def param(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]


class ConvTranspose2d(Module):
    # no bias here, we put the bias in the convolution that follows
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1):
        self.cin, self.cout, self.k = in_channels, out_channels, kernel_size
        self.s, self.p, self.op, self.d = stride, padding, output_padding, dilation
        bound = math.sqrt(1 / (out_channels * kernel_size * kernel_size))
        self.weight = empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-bound, bound)
        self.grad_weight = zeros(self.weight.shape)

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        full = [(n - 1) * self.s + self.d * (self.k - 1) + 1 + self.op for n in (H, W)]
        out = zeros(N, self.cout, full[0], full[1])
        xl = x.permute(0, 2, 3, 1)
        for i in range(self.k):
            for j in range(self.k):
                offset_view(out, i, j, (H, W), self.s, self.d).add_((xl @ self.weight[:, :, i, j]).permute(0, 3, 1, 2))
        return out[:, :, self.p:full[0] - self.p, self.p:full[1] - self.p]

    def backward(self, grad):
        N, C, H, W = self.x.shape
        gfull = zeros(N, self.cout, grad.shape[2] + 2 * self.p, grad.shape[3] + 2 * self.p)
        gfull[:, :, self.p:self.p + grad.shape[2], self.p:self.p + grad.shape[3]] = grad
        win = windows(gfull, self.k, (H, W), self.s, self.d).permute(0, 2, 3, 1, 4, 5).reshape(N * H * W, -1)
        self.grad_weight += (self.x.permute(1, 0, 2, 3).reshape(C, -1) @ win).view(self.weight.shape)
        dx = win @ self.weight.reshape(C, -1).t()
        return (dx.view(N, H, W, C).permute(0, 3, 1, 2),)

    def param(self):
        return [self.weight]


class Upsampling(Module):
    def __init__(self, scale_factor=2):
        self.f = scale_factor

    def forward(self, x):
        N, C, H, W = x.shape
        sN, sC, sH, sW = x.stride()
        # broadcast view: every pixel seen f x f times
        view = x.as_strided((N, C, H, self.f, W, self.f), (sN, sC, sH, 0, sW, 0))
        return view.reshape(N, C, H * self.f, W * self.f)

    def backward(self, grad):
        N, C, H, W = grad.shape
        return (grad.reshape(N, C, H // self.f, self.f, W // self.f, self.f).sum(5).sum(3),)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None):
        self.k = kernel_size
        self.s = stride or kernel_size

    def forward(self, x):
        N, C, H, W = x.shape
        self.shape = x.shape
        self.hw = ((H - self.k) // self.s + 1, (W - self.k) // self.s + 1)
        win = windows(x.contiguous(), self.k, self.hw, self.s, 1).reshape(N, C, self.hw[0], self.hw[1], -1)
        out, self.idx = win.max(-1)
        return out

    def backward(self, grad):
        N, C, H, W = self.shape
        dx = zeros(N, C, H, W)
        for i in range(self.k):
            for j in range(self.k):
                hit = self.idx == i * self.k + j
                offset_view(dx, i, j, self.hw, self.s, 1).add_(grad * hit)
        return (dx,)


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x.clamp(min=0)

    def backward(self, grad):
        return (grad * (self.x > 0),)


class Sigmoid(Module):
    def forward(self, x):
        pos = 1 / (1 + (-x).exp())
        neg = x.exp() / (1 + x.exp())
        self.y = pos.where(x >= 0, neg)
        return self.y

    def backward(self, grad):
        return (grad * self.y * (1 - self.y),)


class MSE(Module):
    def forward(self, output, target):
        self.diff = output - target
        return (self.diff ** 2).sum() / self.diff.numel()

    def backward(self):
        return (2 * self.diff / self.diff.numel(),)


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = layers

    def forward(self, x):
        for l in self.layers:
            x = l.forward(x)
        return x

    def backward(self, *grad):
        for l in reversed(self.layers):
            grad = l.backward(*grad)
        return grad

    def param(self):
        return [p for l in self.layers for p in l.param()]


class SGD(object):
    def __init__(self, layers, lr, momentum=0):
        self.layers, self.lr, self.momentum = list(layers), lr, momentum
        self.state = {}

    def _tensors(self):
        for l in self.layers:
            if hasattr(l, "grad_weight"):
                yield l.weight, l.grad_weight
            if getattr(l, "bias", None) is not None:
                yield l.bias, l.grad_bias

    def step(self):
        for p, g in self._tensors():
            if self.momentum:
                if id(p) in self.state:
                    self.state[id(p)] = self.state[id(p)] * self.momentum + g
                else:
                    self.state[id(p)] = g.clone()
                g = self.state[id(p)]
            p -= self.lr * g

    def zero_grad(self):
        for p, g in self._tensors():
            g.zero_()
