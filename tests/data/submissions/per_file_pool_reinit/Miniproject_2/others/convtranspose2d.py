import math
from torch import empty
from torch.nn.functional import fold, unfold
from .module import Module


class ConvTranspose2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                 bias=True):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.output_padding, self.dilation = output_padding, dilation
        if output_padding >= stride:
            raise NotImplementedError("output_padding >= stride")
        self.weight = empty(in_channels, out_channels, kernel_size, kernel_size)
        self.bias = empty(out_channels) if bias else None
        self.weight_grad = empty(self.weight.shape).zero_()
        self.bias_grad = empty(out_channels).zero_() if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.out_channels * self.kernel_size ** 2)
        self.weight.uniform_(-bound, bound)
        if self.bias is not None:
            self.bias.uniform_(-bound, bound)

    def _args(self):
        return dict(kernel_size=self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)

    def forward(self, x):
        self.x = x
        size = [(n - 1) * self.stride - 2 * self.padding + self.dilation * (self.kernel_size - 1)
                + self.output_padding + 1 for n in x.shape[2:]]
        out = fold(self.weight.flatten(1).t() @ x.flatten(2), size, **self._args())
        if self.bias is not None:
            out = out + self.bias[None, :, None, None]
        return out

    def backward(self, grad):
        cols = unfold(grad, **self._args())
        self.weight_grad += (self.x.flatten(2) @ cols.transpose(1, 2)).sum(0).reshape(self.weight.shape)
        if self.bias is not None:
            self.bias_grad += grad.sum((0, 2, 3))
        return (self.weight.flatten(1) @ cols).reshape(self.x.shape)

    def param(self):
        out = [(self.weight, self.weight_grad)]
        if self.bias is not None:
            out.append((self.bias, self.bias_grad))
        return out
