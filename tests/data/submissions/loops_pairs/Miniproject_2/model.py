# EE-559 Miniproject 2
# Everything is done "by hand": each layer is a Module with forward / backward / param,
# param() gives a list of (parameter, gradient) pairs like in the handout.
# The convolutions loop over the kernel offsets (kh * kw iterations): for each offset we take
# the strided slice of the (padded) input that this offset sees, and do a matrix product over
# the channels. Slow-ish for big kernels but easy to check.
from torch import empty, zeros
import math


def _two(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=(1, 1), padding=(0, 0), bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kh, self.kw = _two(kernel_size)
        self.sh, self.sw = _two(stride)
        self.ph, self.pw = _two(padding)
        bound = 1. / math.sqrt(in_channels * self.kh * self.kw)
        self.weight = empty(out_channels, in_channels, self.kh, self.kw).uniform_(-bound, bound)
        self.weight_grad = zeros(out_channels, in_channels, self.kh, self.kw)
        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None
        self.bias_grad = zeros(out_channels) if bias else None

    def _window(self, i, j):
        # the part of the padded input that kernel offset (i, j) multiplies
        return (slice(None), slice(None),
                slice(i, i + self.sh * (self.Ho - 1) + 1, self.sh),
                slice(j, j + self.sw * (self.Wo - 1) + 1, self.sw))

    def forward(self, input):
        N, C, H, W = input.shape
        self.H, self.W = H, W
        self.xp = zeros(N, C, H + 2 * self.ph, W + 2 * self.pw)
        self.xp[:, :, self.ph:self.ph + H, self.pw:self.pw + W] = input
        self.Ho = (H + 2 * self.ph - self.kh) // self.sh + 1
        self.Wo = (W + 2 * self.pw - self.kw) // self.sw + 1
        out = zeros(N, self.Ho, self.Wo, self.out_channels)
        for i in range(self.kh):
            for j in range(self.kw):
                patch = self.xp[self._window(i, j)].permute(0, 2, 3, 1)  # N, Ho, Wo, C
                out += patch @ self.weight[:, :, i, j].t()
        out = out.permute(0, 3, 1, 2)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def backward(self, gradwrtoutput):
        g = gradwrtoutput.permute(0, 2, 3, 1)  # N, Ho, Wo, O
        dxp = zeros(self.xp.shape)
        for i in range(self.kh):
            for j in range(self.kw):
                win = self._window(i, j)
                patch = self.xp[win].permute(0, 2, 3, 1)  # N, Ho, Wo, C
                self.weight_grad[:, :, i, j] += g.reshape(-1, self.out_channels).t() @ patch.reshape(-1, self.in_channels)
                dxp[win] += (g @ self.weight[:, :, i, j]).permute(0, 3, 1, 2)
        if self.bias is not None:
            self.bias_grad += gradwrtoutput.sum((0, 2, 3))
        return dxp[:, :, self.ph:self.ph + self.H, self.pw:self.pw + self.W]

    def param(self):
        if self.bias is None:
            return [(self.weight, self.weight_grad)]
        return [(self.weight, self.weight_grad), (self.bias, self.bias_grad)]


class TransposeConv2d(Module):
    """Scatter version: every input pixel adds a (out, kh, kw) copy of the kernel to the output."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=(1, 1), padding=(0, 0),
                 output_padding=(0, 0), bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kh, self.kw = _two(kernel_size)
        self.sh, self.sw = _two(stride)
        self.ph, self.pw = _two(padding)
        self.oph, self.opw = _two(output_padding)
        bound = 1. / math.sqrt(out_channels * self.kh * self.kw)
        self.weight = empty(in_channels, out_channels, self.kh, self.kw).uniform_(-bound, bound)
        self.weight_grad = zeros(in_channels, out_channels, self.kh, self.kw)
        self.bias = empty(out_channels).uniform_(-bound, bound) if bias else None
        self.bias_grad = zeros(out_channels) if bias else None

    def _window(self, i, j):
        return (slice(None), slice(None),
                slice(i, i + self.sh * (self.H - 1) + 1, self.sh),
                slice(j, j + self.sw * (self.W - 1) + 1, self.sw))

    def forward(self, input):
        N, C, H, W = input.shape
        self.x, self.H, self.W = input, H, W
        self.Ho = (H - 1) * self.sh - 2 * self.ph + self.kh + self.oph
        self.Wo = (W - 1) * self.sw - 2 * self.pw + self.kw + self.opw
        # big enough for the whole scatter and for the output padding
        full = zeros(N, self.out_channels, (H - 1) * self.sh + self.kh + self.oph,
                     (W - 1) * self.sw + self.kw + self.opw)
        x = input.permute(0, 2, 3, 1)  # N, H, W, C
        for i in range(self.kh):
            for j in range(self.kw):
                full[self._window(i, j)] += (x @ self.weight[:, :, i, j]).permute(0, 3, 1, 2)
        out = full[:, :, self.ph:self.ph + self.Ho, self.pw:self.pw + self.Wo]
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def backward(self, gradwrtoutput):
        N = gradwrtoutput.shape[0]
        gfull = zeros(N, self.out_channels, (self.H - 1) * self.sh + self.kh + self.oph,
                      (self.W - 1) * self.sw + self.kw + self.opw)
        gfull[:, :, self.ph:self.ph + self.Ho, self.pw:self.pw + self.Wo] = gradwrtoutput
        x = self.x.permute(0, 2, 3, 1).reshape(-1, self.in_channels)
        dx = zeros(N, self.H, self.W, self.in_channels)
        for i in range(self.kh):
            for j in range(self.kw):
                gw = gfull[self._window(i, j)].permute(0, 2, 3, 1)  # N, H, W, O
                dx += gw @ self.weight[:, :, i, j].t()
                self.weight_grad[:, :, i, j] += x.t() @ gw.reshape(-1, self.out_channels)
        if self.bias is not None:
            self.bias_grad += gradwrtoutput.sum((0, 2, 3))
        return dx.permute(0, 3, 1, 2)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.weight_grad)]
        return [(self.weight, self.weight_grad), (self.bias, self.bias_grad)]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.s = int(scale_factor)

    def forward(self, input):
        N, C, H, W = input.shape
        out = zeros(N, C, H * self.s, W * self.s)
        for a in range(self.s):
            for b in range(self.s):
                out[:, :, a::self.s, b::self.s] = input
        return out

    def backward(self, gradwrtoutput):
        s = self.s
        dx = zeros(gradwrtoutput[:, :, ::s, ::s].shape)
        for a in range(s):
            for b in range(s):
                dx += gradwrtoutput[:, :, a::s, b::s]
        return dx


class ReLU(Module):
    def forward(self, input):
        self.positive = input > 0
        return input * self.positive

    def backward(self, gradwrtoutput):
        return gradwrtoutput * self.positive


class Sigmoid(Module):
    def forward(self, input):
        self.out = 1. / (1. + (-input).exp())
        return self.out

    def backward(self, gradwrtoutput):
        return gradwrtoutput * self.out * (1. - self.out)


class MSE(Module):
    def forward(self, prediction, target):
        self.error = prediction - target
        return (self.error ** 2).mean()

    def backward(self):
        return 2. * self.error / self.error.numel()


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = modules

    def forward(self, input):
        for m in self.modules:
            input = m.forward(input)
        return input

    def backward(self, gradwrtoutput):
        for m in self.modules[::-1]:
            gradwrtoutput = m.backward(gradwrtoutput)
        return gradwrtoutput

    def param(self):
        return [p for m in self.modules for p in m.param()]


class SGD(object):
    def __init__(self, params, lr, momentum=0.):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.buffers = [None] * len(self.params)

    def step(self):
        for n, (p, g) in enumerate(self.params):
            if self.momentum:
                if self.buffers[n] is None:
                    self.buffers[n] = g.clone()
                else:
                    self.buffers[n] = self.momentum * self.buffers[n] + g
                g = self.buffers[n]
            p -= self.lr * g

    def zero_grad(self):
        for p, g in self.params:
            g.zero_()


class Model():
    def __init__(self):
        self.net = Sequential(Conv2d(3, 32, 3, stride=2, padding=1), ReLU(),
                              Conv2d(32, 32, 3, stride=2, padding=1), ReLU(),
                              NearestUpsampling(2), Conv2d(32, 32, 3, padding=1), ReLU(),
                              NearestUpsampling(2), Conv2d(32, 3, 3, padding=1), Sigmoid())
        self.loss = MSE()
        self.optimizer = SGD(self.net.param(), lr=0.5)

    def train(self, train_input, train_target, num_epochs):
        for e in range(num_epochs):
            for b in range(0, train_input.size(0), 16):
                x = train_input[b:b + 16].float() / 255.
                y = train_target[b:b + 16].float() / 255.
                self.optimizer.zero_grad()
                self.loss.forward(self.net.forward(x), y)
                self.net.backward(self.loss.backward())
                self.optimizer.step()

    def predict(self, test_input):
        return self.net.forward(test_input.float() / 255.) * 255.
