import math
from torch import empty
from torch.nn.functional import fold, unfold
from .module import Module


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = kernel_size, stride, padding, dilation
        self.weight = empty(out_channels, in_channels, kernel_size, kernel_size)
        self.bias = empty(out_channels) if bias else None
        self.weight_grad = empty(self.weight.shape).zero_()
        self.bias_grad = empty(out_channels).zero_() if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in_channels * self.kernel_size ** 2)
        self.weight.uniform_(-bound, bound)
        if self.bias is not None:
            self.bias.uniform_(-bound, bound)

    def _args(self):
        return dict(kernel_size=self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def forward(self, x):
        self.x_size = x.shape[2:]
        self.cols = unfold(x, **self._args())
        out = self.weight.flatten(1) @ self.cols
        if self.bias is not None:
            out = out + self.bias[:, None]
        size = [(n + 2 * self.padding - self.dilation * (self.kernel_size - 1) - 1) // self.stride + 1
                for n in self.x_size]
        return out.reshape(x.shape[0], self.out_channels, *size)

    def backward(self, grad):
        g = grad.flatten(2)
        self.weight_grad += (g @ self.cols.transpose(1, 2)).sum(0).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias_grad += g.sum((0, 2))
        return fold(self.weight.flatten(1).t() @ g, self.x_size, **self._args())

    def param(self):
        out = [(self.weight, self.weight_grad)]
        if self.bias is not None:
            out.append((self.bias, self.bias_grad))
        return out
