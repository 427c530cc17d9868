from .module import Module


class Sigmoid(Module):
    def forward(self, x):
        self.out = 1 / (1 + (-x).exp())
        return self.out

    def backward(self, grad):
        return grad * (self.out - self.out ** 2)
