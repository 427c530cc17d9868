class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []

    def reset_parameters(self):
        pass

    def zero_grad(self):
        for _, g in self.param():
            g.zero_()

    def step(self, lr):
        for p, g in self.param():
            p.add_(-lr * g)
