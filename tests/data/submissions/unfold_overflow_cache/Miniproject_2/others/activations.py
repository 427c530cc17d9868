from .layers import Module


class ReLU(Module):
    def forward(self, x):
        self.x = x
        return x * (x > 0)

    def backward(self, grad):
        return grad * (self.x > 0)


class Sigmoid(Module):
    def forward(self, x):
        e = x.exp()
        self.s = e / (1 + e)
        return self.s

    def backward(self, grad):
        return grad * self.s * (1 - self.s)


class Tanh(Module):
    def forward(self, x):
        self.t = x.tanh()
        return self.t

    def backward(self, grad):
        return grad * (1 - self.t ** 2)
