import math
from torch import empty
from torch.nn.functional import fold, unfold


class Module(object):
    def forward(self, *input):
        raise NotImplementedError

    def backward(self, *gradwrtoutput):
        raise NotImplementedError

    def param(self):
        return []


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True):
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        k = math.sqrt(1 / (in_channels * kernel_size * kernel_size))
        self.weight = empty(out_channels, in_channels, kernel_size, kernel_size).uniform_(-k, k)
        self.grad_weight = empty(self.weight.shape).zero_()
        self.bias = empty(out_channels).uniform_(-k, k) if bias else None
        self.grad_bias = empty(out_channels).zero_() if bias else None
        self.input_size = None
        self.output_size = None

    def _sizes(self, x):
        if self.input_size is None:
            H, W = x.shape[2:]
            span = self.dilation * (self.kernel_size - 1) + 1
            self.input_size = (H, W)
            self.output_size = ((H + 2 * self.padding - span) // self.stride + 1,
                                (W + 2 * self.padding - span) // self.stride + 1)

    def forward(self, x):
        self._sizes(x)
        self.x_unf = unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        out = self.weight.view(self.out_channels, -1) @ self.x_unf
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        return out.view(x.shape[0], self.out_channels, *self.output_size)

    def backward(self, grad):
        grad = grad.view(grad.shape[0], self.out_channels, -1)
        self.grad_weight += (grad @ self.x_unf.transpose(1, 2)).sum(0).view(self.weight.shape)
        if self.bias is not None:
            self.grad_bias += grad.sum((0, 2))
        grad_unf = self.weight.view(self.out_channels, -1).t() @ grad
        return fold(grad_unf, self.input_size, self.kernel_size, self.dilation, self.padding, self.stride)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.grad_weight)]
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class TransposeConv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1,
                 bias=True):
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.output_padding = output_padding
        self.dilation = dilation
        if output_padding and output_padding >= stride:
            raise ValueError("output_padding must be smaller than stride")
        k = math.sqrt(1 / (out_channels * kernel_size * kernel_size))
        self.weight = empty(in_channels, out_channels, kernel_size, kernel_size).uniform_(-k, k)
        self.grad_weight = empty(self.weight.shape).zero_()
        self.bias = empty(out_channels).uniform_(-k, k) if bias else None
        self.grad_bias = empty(out_channels).zero_() if bias else None

    def forward(self, x):
        self.x = x
        N, C, H, W = x.shape
        span = self.dilation * (self.kernel_size - 1) + 1
        H_out = (H - 1) * self.stride - 2 * self.padding + span + self.output_padding
        W_out = (W - 1) * self.stride - 2 * self.padding + span + self.output_padding
        cols = self.weight.view(self.in_channels, -1).t() @ x.view(N, C, -1)
        out = fold(cols, (H_out, W_out), self.kernel_size, self.dilation, self.padding, self.stride)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def backward(self, grad):
        N, C, H, W = self.x.shape
        grad_unf = unfold(grad, self.kernel_size, self.dilation, self.padding, self.stride)
        self.grad_weight += (self.x.view(N, C, -1) @ grad_unf.transpose(1, 2)).sum(0).view(self.weight.shape)
        if self.bias is not None:
            self.grad_bias += grad.sum((0, 2, 3))
        return (self.weight.view(self.in_channels, -1) @ grad_unf).view(N, C, H, W)

    def param(self):
        if self.bias is None:
            return [(self.weight, self.grad_weight)]
        return [(self.weight, self.grad_weight), (self.bias, self.grad_bias)]


class NearestUpsampling(Module):
    def __init__(self, scale_factor=2):
        self.scale_factor = scale_factor

    def forward(self, x):
        s = self.scale_factor
        N, C, H, W = x.shape
        return x.view(N, C, H, 1, W, 1).expand(N, C, H, s, W, s).reshape(N, C, H * s, W * s)

    def backward(self, grad):
        s = self.scale_factor
        N, C, H, W = grad.shape
        return grad.reshape(N, C, H // s, s, W // s, s).sum((3, 5))
