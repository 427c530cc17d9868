import torch
from .others.blocks import Module, Conv2d, TransposeConv2d, NearestUpsampling


class ReLU(Module):
    def forward(self, *input):
        self.x = input[0]
        return self.x.clamp(min=0)

    def backward(self, *gradwrtoutput):
        return (gradwrtoutput[0] * (self.x > 0),)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, *input):
        self.x = input[0]
        return torch.where(self.x > 0, self.x, self.negative_slope * self.x)

    def backward(self, *gradwrtoutput):
        g = gradwrtoutput[0]
        return (torch.where(self.x > 0, g, self.negative_slope * g),)


class Sigmoid(Module):
    def forward(self, *input):
        self.y = input[0].sigmoid()
        return self.y

    def backward(self, *gradwrtoutput):
        return (gradwrtoutput[0] * self.y * (1 - self.y),)


class Tanh(Module):
    def forward(self, *input):
        self.y = input[0].tanh()
        return self.y

    def backward(self, *gradwrtoutput):
        return (gradwrtoutput[0] * (1 - self.y * self.y),)


class MSE(Module):
    def forward(self, *input):
        self.pred, self.target = input
        return ((self.pred - self.target) ** 2).mean()

    def backward(self, *gradwrtoutput):
        return (2 * (self.pred - self.target) / self.pred.numel(),)


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = modules

    def forward(self, *input):
        x = input[0]
        for m in self.modules:
            x = m.forward(x)
        return x

    def backward(self, *gradwrtoutput):
        g = gradwrtoutput
        for m in self.modules[::-1]:
            g = m.backward(*g)
        return g

    def parameters(self):
        return [p for m in self.modules for p in m.parameters()]


class SGD(object):
    def __init__(self, parameters, lr):
        self.parameters, self.lr = list(parameters), lr

    def step(self):
        for p in self.parameters:
            p.sub_(self.lr * p.grad)

    def zero_grad(self):
        for p in self.parameters:
            p.grad.zero_()
