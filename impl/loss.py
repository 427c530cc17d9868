"""MSELoss: mean squared error with torch's reductions."""

from __future__ import annotations

from torch import Tensor

from ._checks import check_float_tensor
from .errors import ShapeError
from .module import Module

REDUCTIONS = ("mean", "sum", "none")


class MSELoss(Module):
    """``(input - target)^2`` reduced by ``'mean'`` (default), ``'sum'`` or ``'none'``.

    ``forward(input, target)`` returns the loss; ``backward(grad_output=None)`` returns the
    gradient w.r.t. ``input``: ``2 * (input - target) * grad_output``, divided by the number of
    elements for ``'mean'``. ``grad_output`` defaults to 1 (required for ``'none'``).

    Shapes of input and target must be equal (torch only warns and broadcasts).
    """

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 (torch's name)
        check_float_tensor(input, "MSELoss", "input")
        check_float_tensor(target, "MSELoss", "target")
        if input.shape != target.shape:
            raise ShapeError(
                f"MSELoss: input and target must have the same shape, got {tuple(input.shape)} "
                f"and {tuple(target.shape)}"
            )
        diff = input - target
        self._saved = diff
        squared = diff * diff
        if self.reduction == "mean":
            return squared.mean()
        return squared.sum() if self.reduction == "sum" else squared

    def backward(self, grad_output: Tensor | float | None = None) -> Tensor:
        diff = self._require_saved()
        if grad_output is None:
            if self.reduction == "none":
                raise ShapeError("MSELoss(reduction='none').backward needs grad_output of the input's shape")
            grad_output = 1.0
        elif isinstance(grad_output, Tensor) and grad_output.shape != (diff.shape if self.reduction == "none" else ()):
            raise ShapeError(
                f"MSELoss.backward: grad_output must have shape "
                f"{tuple(diff.shape) if self.reduction == 'none' else ()}, got {tuple(grad_output.shape)}"
            )
        scale = 2.0 / diff.numel() if self.reduction == "mean" else 2.0
        return diff * scale * grad_output

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


MSE = MSELoss
