# EE-559 Miniproject 2
# Design: the loss knows the network it is attached to, so criterion.backward() pushes the
# gradient through the whole model in one call, and the optimizer is a small trainer:
# SGD(model, criterion, lr).step(input, target) does one full training step.
# Gradients are stored Lua-torch style in gradWeight / gradBias.
import math
from torch import empty
from torch.nn.functional import fold, unfold


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, nb_channels_in, nb_channels_out, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.nb_in, self.nb_out = nb_channels_in, nb_channels_out
        self.conf = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
        std = 1. / math.sqrt(nb_channels_in * kernel_size * kernel_size)
        self.weight = empty(nb_channels_out, nb_channels_in, kernel_size, kernel_size).uniform_(-std, std)
        self.gradWeight = empty(self.weight.size()).zero_()
        self.bias = empty(nb_channels_out).uniform_(-std, std) if bias else None
        self.gradBias = empty(nb_channels_out).zero_() if bias else None

    def forward(self, input):
        k, s, p, d = (self.conf[n] for n in ("kernel_size", "stride", "padding", "dilation"))
        self.input_size = input.size()
        self.columns = unfold(input, **self.conf)
        out = self.weight.view(self.nb_out, -1).matmul(self.columns)
        if self.bias is not None:
            out += self.bias.view(1, -1, 1)
        h = (input.size(2) + 2 * p - d * (k - 1) - 1) // s + 1
        w = (input.size(3) + 2 * p - d * (k - 1) - 1) // s + 1
        return out.view(input.size(0), self.nb_out, h, w)

    def backward(self, gradOutput):
        g = gradOutput.flatten(start_dim=2)
        self.gradWeight.add_(g.matmul(self.columns.transpose(1, 2)).sum(0).view(self.weight.size()))
        if self.bias is not None:
            self.gradBias.add_(g.sum(dim=(0, 2)))
        gradColumns = self.weight.view(self.nb_out, -1).t().matmul(g)
        return fold(gradColumns, self.input_size[2:], **self.conf)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.gradWeight)]
        return [(self.weight, self.gradWeight), (self.bias, self.gradBias)]


class TransposeConv2d(Module):
    def __init__(self, nb_channels_in, nb_channels_out, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.nb_in, self.nb_out = nb_channels_in, nb_channels_out
        self.conf = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
        std = 1. / math.sqrt(nb_channels_out * kernel_size * kernel_size)
        self.weight = empty(nb_channels_in, nb_channels_out, kernel_size, kernel_size).uniform_(-std, std)
        self.gradWeight = empty(self.weight.size()).zero_()
        self.bias = empty(nb_channels_out).uniform_(-std, std) if bias else None
        self.gradBias = empty(nb_channels_out).zero_() if bias else None

    def forward(self, input):
        k, s, p, d = (self.conf[n] for n in ("kernel_size", "stride", "padding", "dilation"))
        self.input = input
        n, c, h, w = input.size()
        size = ((h - 1) * s - 2 * p + d * (k - 1) + 1, (w - 1) * s - 2 * p + d * (k - 1) + 1)
        columns = self.weight.view(self.nb_in, -1).t().matmul(input.flatten(start_dim=2))
        out = fold(columns, size, **self.conf)
        if self.bias is not None:
            out += self.bias.view(1, -1, 1, 1)
        return out

    def backward(self, gradOutput):
        n, c, h, w = self.input.size()
        gradColumns = unfold(gradOutput, **self.conf)
        x = self.input.flatten(start_dim=2)
        self.gradWeight.add_(x.matmul(gradColumns.transpose(1, 2)).sum(0).view(self.weight.size()))
        if self.bias is not None:
            self.gradBias.add_(gradOutput.sum(dim=(0, 2, 3)))
        return self.weight.view(self.nb_in, -1).matmul(gradColumns).view(n, c, h, w)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.gradWeight)]
        return [(self.weight, self.gradWeight), (self.bias, self.gradBias)]


class Upsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, input):
        f = self.scale_factor
        return input.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)

    def backward(self, gradOutput):
        n, c, h, w = gradOutput.size()
        f = self.scale_factor
        return gradOutput.view(n, c, h // f, f, w // f, f).sum(dim=(3, 5))


class ReLU(Module):
    def forward(self, input):
        self.mask = input.gt(0)
        return input.mul(self.mask)

    def backward(self, gradOutput):
        return gradOutput.mul(self.mask)


class Sigmoid(Module):
    def forward(self, input):
        self.output = input.neg().exp().add(1).pow(-1)
        return self.output

    def backward(self, gradOutput):
        return gradOutput.mul(self.output).mul(1 - self.output)


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = modules

    def forward(self, input):
        for m in self.modules:
            input = m.forward(input)
        return input

    def backward(self, gradOutput):
        for m in reversed(self.modules):
            gradOutput = m.backward(gradOutput)
        return gradOutput

    def param(self):
        return [p for m in self.modules for p in m.param()]


class MSE(Module):
    """Mean squared error attached to a model: backward() backpropagates through it."""

    def __init__(self, model):
        self.model = model

    def forward(self, prediction, target):
        self.diff = prediction - target
        return self.diff.pow(2).mean()

    def backward(self):
        return self.model.backward(2 * self.diff / self.diff.numel())


class SGD(object):
    def __init__(self, model, criterion, lr=0.01):
        self.model, self.criterion, self.lr = model, criterion, lr

    def step(self, input, target):
        for p, g in self.model.param():
            g.zero_()
        loss = self.criterion.forward(self.model.forward(input), target)
        self.criterion.backward()
        for p, g in self.model.param():
            p.sub_(self.lr * g)
        return loss


class Model():
    def __init__(self):
        self.net = Sequential(Conv2d(3, 64, 3, stride=2, padding=1), ReLU(),
                              Conv2d(64, 64, 3, stride=2, padding=1), ReLU(),
                              TransposeConv2d(64, 64, 4, stride=2, padding=1), ReLU(),
                              TransposeConv2d(64, 3, 4, stride=2, padding=1), Sigmoid())
        self.criterion = MSE(self.net)
        self.optimizer = SGD(self.net, self.criterion, lr=2.)

    def train(self, train_input, train_target, num_epochs):
        for epoch in range(num_epochs):
            for i in range(0, train_input.size(0), 50):
                self.optimizer.step(train_input[i:i + 50] / 255, train_target[i:i + 50] / 255)

    def predict(self, test_input):
        return self.net.forward(test_input / 255) * 255
