from .module import Module


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def param(self):
        return [pair for layer in self.layers for pair in layer.param()]

    def step(self, lr):
        for layer in self.layers:
            layer.step(lr)
