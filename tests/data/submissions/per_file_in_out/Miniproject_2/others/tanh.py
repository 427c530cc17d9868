from .module import Module


class Tanh(Module):
    def forward(self, input):
        self.output = input.tanh()
        return self.output

    def backward(self, gradwrtoutput):
        return gradwrtoutput * (1 - self.output.pow(2))
