import torch
from .others.layers import Module, Conv2d, TransposeConv2d, NearestUpsampling
from .others.activations import ReLU, Sigmoid, Tanh


class MSE(Module):
    def forward(self, input, target):
        self.diff = input - target
        return (self.diff ** 2).mean()

    def backward(self):
        return 2 * self.diff / self.diff.numel()


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in self.layers[::-1]:
            grad = layer.backward(grad)
        return grad

    def param(self):
        return [pg for layer in self.layers for pg in layer.param()]


class SGD:
    def __init__(self, params, lr):
        self.params = params
        self.lr = lr

    def step(self):
        for p, g in self.params:
            p.sub_(self.lr * g)

    def zero_grad(self):
        for p, g in self.params:
            g.zero_()


class Model:
    def __init__(self):
        self.model = Sequential(Conv2d(3, 24, 3, stride=2, padding=1), ReLU(), Conv2d(24, 48, 3, stride=2, padding=1),
                                ReLU(), NearestUpsampling(2), Conv2d(48, 24, 3, padding=1), ReLU(),
                                NearestUpsampling(2), Conv2d(24, 3, 3, padding=1), Sigmoid())
        self.criterion = MSE()
        self.optimizer = SGD(self.model.param(), lr=1.0)

    def load_pretrained_model(self):
        state = torch.load("Miniproject_2/bestmodel.pth")
        for (p, _), q in zip(self.model.param(), state):
            p.copy_(q)

    def train(self, train_input, train_target, num_epochs=10):
        train_input, train_target = train_input.float() / 255, train_target.float() / 255
        for epoch in range(num_epochs):
            for i in range(0, train_input.shape[0], 100):
                out = self.model.forward(train_input[i:i + 100])
                self.optimizer.zero_grad()
                self.criterion.forward(out, train_target[i:i + 100])
                self.model.backward(self.criterion.backward())
                self.optimizer.step()

    def predict(self, test_input):
        return self.model.forward(test_input.float() / 255) * 255
