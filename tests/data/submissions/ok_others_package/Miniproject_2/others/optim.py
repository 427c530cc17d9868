# others/optim.py -- optimizers over lists of (parameter, gradient) pairs.
from torch import empty


class SGD(object):
    def __init__(self, params, lr):
        self.params, self.lr = params, lr

    def step(self):
        for p, g in self.params:
            p -= self.lr * g

    def zero_grad(self):
        for p, g in self.params:
            g.zero_()


class Adam(object):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps = params, lr, betas[0], betas[1], eps
        self.m = [empty(p.shape).zero_() for p, g in params]
        self.v = [empty(p.shape).zero_() for p, g in params]
        self.t = 0

    def step(self):
        self.t += 1
        for (p, g), m, v in zip(self.params, self.m, self.v):
            m.mul_(self.b1).add_((1 - self.b1) * g)
            v.mul_(self.b2).add_((1 - self.b2) * g * g)
            mhat = m / (1 - self.b1**self.t)
            vhat = v / (1 - self.b2**self.t)
            p -= self.lr * mhat / (vhat.sqrt() + self.eps)

    def zero_grad(self):
        for p, g in self.params:
            g.zero_()
