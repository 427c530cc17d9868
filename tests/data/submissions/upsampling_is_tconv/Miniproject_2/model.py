from torch import empty
from .others.conv import Module, Conv2d, Upsampling
from .others.layers import NearestUpsampling, MaxPool2d, ReLU, LeakyReLU, Sigmoid, Tanh


class MSE(Module):
    def forward(self, prediction, target):
        self.error = prediction - target
        return self.error.pow(2).mean()

    def backward(self):
        return 2 * self.error / self.error.numel()


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = modules

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


class SGD(object):
    def __init__(self, params, lr, momentum=0):
        self.params, self.lr, self.momentum = params, lr, momentum
        self.buf = [None] * len(params)

    def step(self):
        for i, (p, g) in enumerate(self.params):
            if self.momentum:
                self.buf[i] = g.clone() if self.buf[i] is None else self.momentum * self.buf[i] + g
                g = self.buf[i]
            p -= self.lr * g

    def zero_grad(self):
        for _, g in self.params:
            g.zero_()


class Model:
    def __init__(self):
        self.net = Sequential(Conv2d(3, 32, 2, stride=2), ReLU(), Conv2d(32, 32, 2, stride=2), ReLU(),
                              Upsampling(32, 32, 2, stride=2), ReLU(), Upsampling(32, 3, 2, stride=2), Sigmoid())
        self.criterion = MSE()
        self.optimizer = SGD(self.net.param(), lr=1, momentum=0.9)

    def train(self, train_input, train_target, num_epochs):
        for epoch in range(num_epochs):
            for b in range(0, len(train_input), 32):
                self.optimizer.zero_grad()
                self.criterion.forward(self.net.forward(train_input[b:b + 32] / 255), train_target[b:b + 32] / 255)
                self.net.backward(self.criterion.backward())
                self.optimizer.step()

    def predict(self, test_input):
        return 255 * self.net.forward(test_input / 255)
