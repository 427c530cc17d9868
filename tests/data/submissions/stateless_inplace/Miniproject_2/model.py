# EE-559 Miniproject 2 -- "stateless" layers
# Nothing is cached between forward and backward: backward(input, gradwrtoutput) gets the same
# input as forward and recomputes what it needs. This way a layer can be reused anywhere in the
# graph without the caches getting mixed up. Windows are taken with Tensor.unfold (the sliding
# window view of a dimension), so x.unfold(2, k, s).unfold(3, k, s) is (N, C, Ho, Wo, k, k).
import math
from torch import empty, zeros


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return (None, None)


def pad(x, p):
    out = zeros(x.shape[0], x.shape[1], x.shape[2] + 2 * p, x.shape[3] + 2 * p)
    out[:, :, p:p + x.shape[2], p:p + x.shape[3]] = x
    return out


def windows(x, k, s):
    return x.unfold(2, k, s).unfold(3, k, s)  # N, C, Ho, Wo, k, k


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        self.k, self.s, self.p = kernel_size, stride, padding
        std = 1. / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-std, std)
        self.bias = empty(out_channels).uniform_(-std, std)
        self.grad_weight = zeros(self.weight.shape)
        self.grad_bias = zeros(out_channels)

    def forward(self, input):
        win = windows(pad(input, self.p), self.k, self.s)
        out = (win.permute(0, 2, 3, 1, 4, 5).flatten(3) @ self.weight.flatten(1).t()).permute(0, 3, 1, 2)
        return out + self.bias.view(1, -1, 1, 1)

    def backward(self, input, gradwrtoutput):
        xp = pad(input, self.p)
        win = windows(xp, self.k, self.s).permute(0, 2, 3, 1, 4, 5).flatten(3)  # N, Ho, Wo, C*k*k
        g = gradwrtoutput.permute(0, 2, 3, 1)  # N, Ho, Wo, O
        self.grad_weight += (g.flatten(0, 2).t() @ win.flatten(0, 2)).view(self.weight.shape)
        self.grad_bias += g.flatten(0, 2).sum(0)
        dwin = (g @ self.weight.flatten(1)).view(*g.shape[:3], -1, self.k, self.k)  # N, Ho, Wo, C, k, k
        dxp = zeros(xp.shape)
        Ho, Wo = g.shape[1], g.shape[2]
        for i in range(self.k):
            for j in range(self.k):
                dxp[:, :, i:i + self.s * (Ho - 1) + 1:self.s, j:j + self.s * (Wo - 1) + 1:self.s] += \
                    dwin[..., i, j].permute(0, 3, 1, 2)
        return dxp[:, :, self.p:self.p + input.shape[2], self.p:self.p + input.shape[3]]

    def param(self):
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class TransposeConv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        self.k, self.s, self.p = kernel_size, stride, padding
        self.out_channels = out_channels
        std = 1. / math.sqrt(out_channels * kernel_size * kernel_size)
        self.weight = empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-std, std)
        self.use_bias = bias
        self.bias = empty(out_channels).uniform_(-std, std) if bias else None
        self.grad_weight = zeros(self.weight.shape)
        self.grad_bias = zeros(out_channels) if bias else None

    def forward(self, input):
        N, C, H, W = input.shape
        k, s, p = self.k, self.s, self.p
        full = zeros(N, self.out_channels, (H - 1) * s + k, (W - 1) * s + k)
        x = input.permute(0, 2, 3, 1)
        for i in range(k):
            for j in range(k):
                full[:, :, i:i + s * (H - 1) + 1:s, j:j + s * (W - 1) + 1:s] += \
                    (x @ self.weight[:, :, i, j]).permute(0, 3, 1, 2)
        out = full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]
        return out + self.bias.view(1, -1, 1, 1) if self.use_bias else out

    def backward(self, input, gradwrtoutput):
        gp = pad(gradwrtoutput, self.p)
        win = windows(gp, self.k, self.s).permute(0, 2, 3, 1, 4, 5).flatten(3)  # N, H, W, O*k*k
        x = input.permute(0, 2, 3, 1)  # N, H, W, C
        self.grad_weight += (x.flatten(0, 2).t() @ win.flatten(0, 2)).view(self.weight.shape)
        if self.use_bias:
            self.grad_bias += gradwrtoutput.sum((0, 2, 3))
        return (win @ self.weight.flatten(1).t()).permute(0, 3, 1, 2)

    def param(self):
        if not self.use_bias:
            return [(self.weight, self.grad_weight)]
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.s = scale_factor

    def forward(self, input):
        return input.repeat_interleave(self.s, 2).repeat_interleave(self.s, 3)

    def backward(self, input, gradwrtoutput):
        return windows(gradwrtoutput, self.s, self.s).sum((4, 5))


class ReLU(Module):
    def forward(self, input):
        input[input < 0] = 0
        return input

    def backward(self, input, gradwrtoutput):
        return gradwrtoutput * (input > 0)


class Sigmoid(Module):
    @staticmethod
    def f(x):
        return 1 / (1 + (-x).exp())

    def forward(self, input):
        return self.f(input)

    def backward(self, input, gradwrtoutput):
        s = self.f(input)
        return gradwrtoutput * s * (1 - s)


class MSE(Module):
    def forward(self, prediction, target):
        return ((prediction - target) ** 2).mean()

    def backward(self, prediction, target):
        return 2 * (prediction - target) / prediction.numel()


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = modules

    def forward(self, input):
        for m in self.modules:
            input = m.forward(input)
        return input

    def backward(self, input, gradwrtoutput):
        inputs = [input]
        for m in self.modules[:-1]:
            inputs.append(m.forward(inputs[-1]))
        for m, x in zip(reversed(self.modules), reversed(inputs)):
            gradwrtoutput = m.backward(x, gradwrtoutput)
        return gradwrtoutput

    def param(self):
        out = []
        for m in self.modules:
            p = m.param()
            if p[0] is not None:
                out += p
        return out


class SGD(object):
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self):
        for p, g in self.params:
            p -= self.lr * g

    def zero_grad(self):
        for p, g in self.params:
            g.zero_()
