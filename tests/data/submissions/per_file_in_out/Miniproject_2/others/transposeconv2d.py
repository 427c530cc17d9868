import math
from torch import empty, zeros
from torch.nn.functional import fold, unfold
from .module import Module


class TransposeConv2d(Module):
    """Transposed convolution done the way it is drawn in the lecture: put (stride - 1) zeros
    between the input pixels, pad with (k - 1 - padding), and convolve with the flipped kernel."""

    def __init__(self, input_channel, output_channel, kernel_size, stride=1, padding=0, bias=True):
        self.input_channel, self.output_channel = input_channel, output_channel
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        k = 1 / math.sqrt(output_channel * kernel_size * kernel_size)
        self.weight = empty(input_channel, output_channel, kernel_size, kernel_size).uniform_(-k, k)
        self.weight_grad = empty(self.weight.shape).zero_()
        self.bias = empty(output_channel).uniform_(-k, k) if bias else None
        self.bias_grad = empty(output_channel).zero_() if bias else None

    def _kernel(self):
        # flipped, as (output_channel, input_channel * k * k)
        return self.weight.flip(2, 3).transpose(0, 1).reshape(self.output_channel, -1)

    def forward(self, input):
        N, C, H, W = input.shape
        s, k = self.stride, self.kernel_size
        q = k - 1 - self.padding
        # q < 0 (padding >= kernel): "negative padding", i.e. crop the zero-inserted input
        self.pad, self.crop = max(q, 0), max(-q, 0)
        self.input_shape = input.shape
        dil = zeros(N, C, (H - 1) * s + 1 + 2 * self.pad, (W - 1) * s + 1 + 2 * self.pad)
        dil[:, :, self.pad:self.pad + (H - 1) * s + 1:s, self.pad:self.pad + (W - 1) * s + 1:s] = input
        self.dil_shape = dil.shape
        c = self.crop
        dil = dil[:, :, c:dil.shape[2] - c, c:dil.shape[3] - c]
        self.dil_size = dil.shape[2:]
        self.cols = unfold(dil, k)
        Ho, Wo = dil.shape[2] - k + 1, dil.shape[3] - k + 1
        out = (self._kernel() @ self.cols).view(N, self.output_channel, Ho, Wo)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    def backward(self, gradwrtoutput):
        N, C, H, W = self.input_shape
        s, k = self.stride, self.kernel_size
        g = gradwrtoutput.reshape(N, self.output_channel, -1)
        dK = (g @ self.cols.transpose(1, 2)).sum(0).view(self.output_channel, C, k, k)
        dW = dK.transpose(0, 1).flip(2, 3)
        self.weight_grad += dW
        db = None
        if self.bias is not None:
            db = gradwrtoutput.sum((0, 2, 3))
            self.bias_grad += db
        ddil = zeros(self.dil_shape)
        c, q = self.crop, self.pad
        ddil[:, :, c:self.dil_shape[2] - c, c:self.dil_shape[3] - c] = fold(self._kernel().t() @ g, self.dil_size, k)
        dX = ddil[:, :, q:q + (H - 1) * s + 1:s, q:q + (W - 1) * s + 1:s]
        return dX, dW, db

    def param(self):
        if self.bias is None:
            return [self.weight], [self.weight_grad]
        return [self.weight, self.bias], [self.weight_grad, self.bias_grad]
