class Optimizer(object):
    """Plain gradient descent on everything the model returns from param()."""

    def __init__(self, model, lr=0.01):
        self.model = model
        self.lr = lr

    def step(self):
        params, grads = self.model.param()
        for p, g in zip(params, grads):
            p.sub_(self.lr * g)

    def zero_grad(self):
        for g in self.model.param()[1]:
            g.zero_()
