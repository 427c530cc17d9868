import math
from torch import empty
from torch.nn.functional import fold, unfold
from .module import Module


class Conv2d(Module):
    """2D convolution with unfold/fold.

    We store the kernel as (input_channel, output_channel, k, k), the same layout as our
    TransposeConv2d, so the two can share weights if we want to.
    """

    def __init__(self, input_channel, output_channel, kernel_size, stride=1, padding=0, bias=True):
        self.input_channel, self.output_channel = input_channel, output_channel
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        k = 1 / math.sqrt(input_channel * kernel_size * kernel_size)
        self.weight = empty(input_channel, output_channel, kernel_size, kernel_size).uniform_(-k, k)
        self.weight_grad = empty(self.weight.shape).zero_()
        self.bias = empty(output_channel).uniform_(-k, k) if bias else None
        self.bias_grad = empty(output_channel).zero_() if bias else None

    def _matrix(self):
        # (output_channel, input_channel * k * k), the order unfold uses
        return self.weight.transpose(0, 1).reshape(self.output_channel, -1)

    def forward(self, input):
        self.input_size = input.shape[-2:]
        self.unfolded = unfold(input, self.kernel_size, padding=self.padding, stride=self.stride)
        out = self._matrix() @ self.unfolded
        if self.bias is not None:
            out = out + self.bias.view(-1, 1)
        h = (input.shape[2] + 2 * self.padding - self.kernel_size) // self.stride + 1
        w = (input.shape[3] + 2 * self.padding - self.kernel_size) // self.stride + 1
        return out.view(input.shape[0], self.output_channel, h, w)

    def backward(self, gradwrtoutput):
        g = gradwrtoutput.reshape(gradwrtoutput.shape[0], self.output_channel, -1)
        dW = (g @ self.unfolded.transpose(1, 2)).sum(0)
        dW = dW.view(self.output_channel, self.input_channel, self.kernel_size, self.kernel_size).transpose(0, 1)
        self.weight_grad += dW
        db = None
        if self.bias is not None:
            db = g.sum((0, 2))
            self.bias_grad += db
        dX = fold(self._matrix().t() @ g, self.input_size, self.kernel_size, padding=self.padding,
                  stride=self.stride)
        return dX, dW, db

    def param(self):
        if self.bias is None:
            return [self.weight], [self.weight_grad]
        return [self.weight, self.bias], [self.weight_grad, self.bias_grad]
