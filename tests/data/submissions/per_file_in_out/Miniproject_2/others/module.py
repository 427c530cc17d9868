class Module(object):
    """Base class of all our layers.

    param() returns a tuple (parameters, gradients): two lists in the same order.
    """

    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return [], []
