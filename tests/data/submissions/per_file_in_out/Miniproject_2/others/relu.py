from .module import Module


class ReLU(Module):
    def forward(self, input):
        self.input = input
        return input * (input > 0)

    def backward(self, gradwrtoutput):
        return gradwrtoutput * (self.input > 0)
