from .module import Module


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, input):
        s = self.scale_factor
        return input.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)

    def backward(self, gradwrtoutput):
        N, C, H, W = gradwrtoutput.shape
        s = self.scale_factor
        return gradwrtoutput.reshape(N, C, H // s, s, W // s, s).sum(dim=(3, 5))
