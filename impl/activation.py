"""Element-wise activations. Each keeps one tensor for backward: the mask or the output."""

from __future__ import annotations

from torch import Tensor

from ._checks import check_float_tensor
from .errors import ShapeError
from .module import Module


class _Elementwise(Module):
    """``forward`` computes ``(out, saved)``; ``backward`` is ``grad * derivative(saved)``, the
    product written into the derivative, a new tensor (one temporary less per backward)."""

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _derivative(self, saved: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        out, saved = self._forward(check_float_tensor(x, type(self).__name__))
        self._saved = saved
        return out

    def backward(self, grad_output: Tensor) -> Tensor:
        saved = self._require_saved()
        self._check_grad_shape(grad_output, saved)
        derivative = self._derivative(saved)
        if derivative.dtype != grad_output.dtype:  # the product's dtype is the promoted one
            return grad_output * derivative
        return derivative.mul_(grad_output)

    def _check_grad_shape(self, grad_output: Tensor, saved: Tensor) -> None:
        if grad_output.shape != saved.shape:
            raise ShapeError(
                f"{type(self).__name__}.backward: grad_output must have the output's shape "
                f"{tuple(saved.shape)}, got {tuple(grad_output.shape)}"
            )


class ReLU(_Elementwise):
    """``max(0, x)``; the gradient is 0 where the output is 0 (at x <= 0) and passes elsewhere,
    NaN included, as torch's ``threshold_backward`` on the output."""

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = x.clamp(min=0)  # clamp: relu(-inf) = 0 and relu(nan) = nan, as torch
        return out, out

    def _derivative(self, out: Tensor) -> Tensor:
        # 1 where the output is positive or NaN, 0 where it is 0, in float operations only: a
        # comparison's bool mask, and any product with one, take several times longer here
        return out.nan_to_num(nan=1.0).sign_()


class LeakyReLU(_Elementwise):
    """``x if x > 0 else negative_slope * x``; the gradient at 0 (and at NaN) is
    ``negative_slope``, as torch's.

    Args:
        negative_slope: slope for negative inputs. Default 0.01.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(f"negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self._by_output:
            # max(x, s * x) is x where x > 0 and s * x elsewhere for 0 < s <= 1, NaN kept (clamp
            # propagates it): two passes, and the output (which the next layer holds anyway)
            # is all backward needs
            out = (x * self.negative_slope).clamp_(min=x)
            return out, out
        # any other slope: x * slope, the slope exactly 1 where x > 0 and exactly s elsewhere
        # (sign(nan) = 0), from float operations in x's memory layout: lerp(s, 1, w) is s at
        # w = 0 and 1 at w = 1
        positive = x.sign().clamp_(min=0)
        slope = x.new_full((), self.negative_slope).lerp(x.new_ones(()), positive)
        return x * slope, slope

    @property
    def _by_output(self) -> bool:
        return 0 < self.negative_slope <= 1

    def _derivative(self, saved: Tensor) -> Tensor:
        if self._by_output:
            # the output is positive exactly where x is (s > 0), and sign(nan) = 0 gives NaN the
            # slope, as torch; clamp_(min=s) maps the signs {1, 0, -1} to {1, s, s}
            return saved.sign().clamp_(min=self.negative_slope)
        return saved.clone()  # the saved slope: backward writes into what this returns

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" if self.negative_slope != 0.01 else ""


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``; derivative ``s * (1 - s)`` from the saved output ``s``."""

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = x.neg().exp_().add_(1).reciprocal_()
        return s, s

    def _derivative(self, s: Tensor) -> Tensor:
        return s.addcmul(s, s, value=-1)  # s - s^2 = s * (1 - s): one pass, one new tensor


class Tanh(_Elementwise):
    """``tanh(x) = sign(x) * (1 - e^{-2|x|}) / (1 + e^{-2|x|})``, written with ``expm1`` so it
    stays accurate near 0; derivative ``1 - t^2`` from the saved output ``t``."""

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        m = x.abs().mul_(-2).expm1_()
        t = m.neg().div_(m + 2).mul_(x.sign())
        return t, t

    def _derivative(self, t: Tensor) -> Tensor:
        return 1 - t * t
