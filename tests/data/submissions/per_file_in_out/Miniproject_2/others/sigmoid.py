from .module import Module


class Sigmoid(Module):
    def forward(self, input):
        self.output = (-input).exp().add(1).reciprocal()
        return self.output

    def backward(self, gradwrtoutput):
        return gradwrtoutput * self.output * (1 - self.output)
