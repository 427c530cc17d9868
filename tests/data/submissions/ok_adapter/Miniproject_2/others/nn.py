# Layers keep their tensors in dicts: self.tensors["W"], self.tensors["b"] and
# the matching gradients in self.grads. No param(); the optimizer walks the dicts.
import torch
from torch.nn.functional import fold, unfold


class Layer:
    tensors, grads = {}, {}

    def _alloc(self, wshape, c_out, fan, use_bias):
        r = fan**-0.5
        self.tensors = {"W": (torch.rand(wshape) * 2 - 1) * r}
        self.grads = {"W": torch.zeros(wshape)}
        if use_bias:
            self.tensors["b"] = (torch.rand(c_out) * 2 - 1) * r
            self.grads["b"] = torch.zeros(c_out)


def _two(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Conv2d(Layer):
    def __init__(self, c_in, c_out, k, stride=1, pad=0, dil=1, use_bias=True):
        self.k, self.st, self.pd, self.dl = _two(k), _two(stride), _two(pad), _two(dil)
        self._alloc((c_out, c_in) + self.k, c_out, c_in * self.k[0] * self.k[1], use_bias)

    def _o(self):
        return dict(kernel_size=self.k, stride=self.st, padding=self.pd, dilation=self.dl)

    def forward(self, x):
        self.hw, self.X = x.shape[2:], unfold(x, **self._o())
        W = self.tensors["W"]
        y = W.view(W.shape[0], -1).matmul(self.X)
        if "b" in self.tensors:
            y = y + self.tensors["b"][:, None]
        ho, wo = [(self.hw[i] + 2 * self.pd[i] - self.dl[i] * (self.k[i] - 1) - 1) // self.st[i] + 1 for i in (0, 1)]
        return y.view(x.shape[0], W.shape[0], ho, wo)

    def backward(self, dy):
        W = self.tensors["W"]
        dy = dy.flatten(2)
        self.grads["W"] += dy.matmul(self.X.transpose(1, 2)).sum(0).view_as(W)
        if "b" in self.grads:
            self.grads["b"] += dy.sum((0, 2))
        return fold(W.view(W.shape[0], -1).t().matmul(dy), self.hw, **self._o())


class TransposeConv2d(Conv2d):
    def __init__(self, c_in, c_out, k, stride=1, pad=0, dil=1, out_pad=0, use_bias=True):
        self.k, self.st, self.pd, self.dl, self.op = _two(k), _two(stride), _two(pad), _two(dil), _two(out_pad)
        if any(o >= s for o, s in zip(self.op, self.st)):
            raise ValueError("out_pad must be smaller than stride")  # fold needs one block per input pixel
        self._alloc((c_in, c_out) + self.k, c_out, c_out * self.k[0] * self.k[1], use_bias)

    def forward(self, x):
        self.x = x
        W = self.tensors["W"]
        hw = [
            (x.shape[2 + i] - 1) * self.st[i] - 2 * self.pd[i] + self.dl[i] * (self.k[i] - 1) + self.op[i] + 1
            for i in (0, 1)
        ]
        y = fold(W.view(W.shape[0], -1).t().matmul(x.flatten(2)), hw, **self._o())
        if "b" in self.tensors:
            y = y + self.tensors["b"][:, None, None]
        return y

    def backward(self, dy):
        W = self.tensors["W"]
        D = unfold(dy, **self._o())
        self.grads["W"] += self.x.flatten(2).matmul(D.transpose(1, 2)).sum(0).view_as(W)
        if "b" in self.grads:
            self.grads["b"] += dy.sum((0, 2, 3))
        return W.view(W.shape[0], -1).matmul(D).view_as(self.x)
