from .module import Module


class Upsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, x):
        f = self.scale_factor
        return x.repeat_interleave(f, -1).repeat_interleave(f, -2)

    def backward(self, grad):
        f = self.scale_factor
        N, C, H, W = grad.shape
        return grad.reshape(N, C, H // f, f, W // f, f).sum((-1, -3))
