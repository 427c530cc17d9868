from .module import Module


class Sequential(Module):
    def __init__(self, *modules):
        self.modules = list(modules)

    def forward(self, input):
        for module in self.modules:
            input = module.forward(input)
        return input

    def backward(self, gradwrtoutput):
        for module in reversed(self.modules):
            gradwrtoutput = module.backward(gradwrtoutput)
            if isinstance(gradwrtoutput, tuple):  # convolutions also give dW, db
                gradwrtoutput = gradwrtoutput[0]
        return gradwrtoutput

    def param(self):
        params, grads = [], []
        for module in self.modules:
            p, g = module.param()
            params += p
            grads += g
        return params, grads
