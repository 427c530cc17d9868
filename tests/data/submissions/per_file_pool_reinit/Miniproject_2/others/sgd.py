class SGD(object):
    """Asks every layer of the model to take its own gradient step."""

    def __init__(self, model, lr):
        self.model = model
        self.lr = lr

    def step(self):
        self.model.step(self.lr)

    def zero_grad(self):
        self.model.zero_grad()
