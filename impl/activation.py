"""Element-wise activations. Each keeps one tensor for backward: the mask or the output."""

from __future__ import annotations

from torch import Tensor

from ._checks import check_float_tensor
from .errors import ShapeError
from .module import Module


class _Elementwise(Module):
    """``forward`` computes ``(out, saved)``; ``backward`` is ``grad * derivative(saved)``."""

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
        if grad_output.shape != saved.shape:
            raise ShapeError(
                f"{type(self).__name__}.backward: grad_output must have the output's shape "
                f"{tuple(saved.shape)}, got {tuple(grad_output.shape)}"
            )
        return grad_output * self._derivative(saved)


class ReLU(_Elementwise):
    """``max(0, x)``; the gradient is 0 where the output is 0 (at x <= 0) and passes elsewhere,
    NaN included, as torch's ``threshold_backward`` on the output."""

    def _forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = x.clamp(min=0)  # clamp: relu(-inf) = 0 and relu(nan) = nan, as torch
        return out, out

    def _derivative(self, out: Tensor) -> Tensor:
        # float 0/1 rather than a bool mask: a bool operand makes the product several times slower
        return out.ne(0).to(out.dtype)


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
        # slope: exactly 1 where x > 0, exactly negative_slope elsewhere (sign(nan) = 0), from
        # float operations only, in x's memory layout: lerp(s, 1, w) is s at w = 0 and 1 at w = 1
        positive = x.sign().clamp_(min=0)
        slope = x.new_full((), self.negative_slope).lerp(x.new_ones(()), positive)
        return x * slope, slope

    def _derivative(self, slope: Tensor) -> Tensor:
        return slope

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
