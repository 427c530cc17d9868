from torch.nn.functional import fold, unfold
from .module import Module


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        N, C, H, W = x.shape
        self.x_shape = x.shape
        cols = unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        cols = cols.view(N, C, self.kernel_size ** 2, -1)
        out, self.idx = cols.max(2)
        self.cols_shape = cols.shape
        Ho = (H + 2 * self.padding - self.kernel_size) // self.stride + 1
        Wo = (W + 2 * self.padding - self.kernel_size) // self.stride + 1
        return out.view(N, C, Ho, Wo)

    def backward(self, grad):
        N, C, H, W = self.x_shape
        dcols = grad.new_zeros(self.cols_shape)
        dcols.scatter_(2, self.idx.unsqueeze(2), grad.reshape(N, C, 1, -1))
        return fold(dcols.view(N, -1, dcols.shape[-1]), (H, W), self.kernel_size, padding=self.padding,
                    stride=self.stride)
