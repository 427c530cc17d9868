"""Containers: Sequential (modules in order), Concat and Add (branches on one input); the
identity-like Identity and Shift."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

from ._checks import check_float_tensor
from .errors import ShapeError
from .module import Module


class Sequential(Module):
    """``Sequential(*modules)``, as ``torch.nn.Sequential``: ``len``, indexing (an int gives a
    module, a slice a new Sequential sharing the modules), iteration; state_dict keys are
    ``"<index>.<name>"``.

    Example:
        >>> net = Sequential(Conv2d(3, 8, 3, padding=1), ReLU())
        >>> out = net(x); grad_x = net.backward(grad_out)
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} must be a Module, got {type(m).__name__}")
        self.modules: list[Module] = list(modules)

    def children(self) -> Iterator[tuple[str, Module]]:
        return ((str(i), m) for i, m in enumerate(self.modules))

    def forward(self, x: Tensor) -> Tensor:
        for m in self.modules:
            x = m(x)
        return x

    def backward(self, grad_output: Tensor) -> Tensor:
        for m in reversed(self.modules):
            grad_output = m.backward(grad_output)
        return grad_output

    def __len__(self) -> int:
        return len(self.modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.modules)

    def __getitem__(self, index: int | slice) -> Module:
        if isinstance(index, slice):
            return Sequential(*self.modules[index])
        return self.modules[index]

    def append(self, module: Module) -> Sequential:
        self.modules.append(module)
        return self

    def __repr__(self) -> str:
        lines = [f"  ({i}): {m!r}" for i, m in enumerate(self.modules)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"


class Identity(Module):
    """Returns its input; the gradient passes through unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        self._saved = True
        return x

    def backward(self, grad_output: Tensor) -> Tensor:
        self._require_saved()
        return grad_output


class Shift(Module):
    """Adds a constant: ``x + offset`` (``Shift(-0.5)`` centres images in [0, 1]); the gradient
    passes unchanged, as through :class:`Identity`.

    Args:
        offset: a finite number.
    """

    def __init__(self, offset: float) -> None:
        super().__init__()
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset):
            raise TypeError(f"Shift: offset must be a finite number, got {offset!r}")
        self.offset = float(offset)

    def forward(self, x: Tensor) -> Tensor:
        out = check_float_tensor(x, "Shift") + self.offset
        self._saved = True
        return out

    def backward(self, grad_output: Tensor) -> Tensor:
        self._require_saved()
        return grad_output

    def extra_repr(self) -> str:
        return f"offset={self.offset}"


def _sum(tensors: list[Tensor]) -> Tensor:
    """The sum of one or more tensors; none of them is written in place."""
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


class _Branches(Module):
    """Modules applied to the same input (its branches), their outputs then combined."""

    def __init__(self, *branches: Module) -> None:
        super().__init__()
        name = type(self).__name__
        if not branches:
            raise ValueError(f"{name} needs at least one branch")
        for i, m in enumerate(branches):
            if not isinstance(m, Module):
                raise TypeError(f"{name}: branch {i} must be a Module, got {type(m).__name__}")
        self.branches = list(branches)

    def children(self) -> Iterator[tuple[str, Module]]:
        return ((str(i), m) for i, m in enumerate(self.branches))

    def _backward_branches(self, grads: Iterable[Tensor]) -> Tensor:
        """Each branch's share of the output gradient sent back through it; the input gradients summed."""
        return _sum([m.backward(g) for m, g in zip(self.branches, grads)])

    def extra_repr(self) -> str:
        return ", ".join(repr(m) for m in self.branches)


class Concat(_Branches):
    """Applies every branch to the same input and concatenates the outputs along ``dim``
    (default -3: the channels of (N, C, H, W) and of unbatched (C, H, W) images):
    ``Concat(inner, Identity())`` is a U-Net skip connection.

    Backward splits the gradient along ``dim``, sends each part back through its branch and
    sums the input gradients. state_dict keys are ``"<branch index>.<name>"``.
    """

    def __init__(self, *branches: Module, dim: int = -3) -> None:
        super().__init__(*branches)
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        outs = [m(x) for m in self.branches]
        rank = outs[0].dim()
        if not -rank <= self.dim < rank:  # torch.cat's rule (a 0-d output has no dim to join)
            raise ShapeError(
                f"Concat: dim {self.dim} is out of range for branch outputs of shape {tuple(outs[0].shape)}"
            )
        dim = self.dim % rank
        shapes = [tuple(o.shape[:dim] + o.shape[dim + 1 :]) for o in outs]
        if any(shape != shapes[0] for shape in shapes):
            raise ShapeError(
                f"Concat: the branch outputs must match except along dim {self.dim}, got shapes "
                f"{[tuple(o.shape) for o in outs]} (a U-Net needs H and W divisible by 2**depth)"
            )
        self._saved = [o.shape[self.dim] for o in outs]
        return torch.cat(outs, dim=self.dim)

    def backward(self, grad_output: Tensor) -> Tensor:
        sizes = self._require_saved()
        return self._backward_branches(grad_output.split(sizes, dim=self.dim))

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", dim={self.dim}" if self.dim != -3 else "")


class Add(_Branches):
    """Applies every branch to the same input and adds the outputs, which must have one shape
    (no broadcasting): ``Add(body, Identity())`` is a residual connection, ``x + body(x)``.

    Backward sends the whole gradient back through every branch and sums the input gradients.
    state_dict keys are ``"<branch index>.<name>"``.
    """

    def forward(self, x: Tensor) -> Tensor:
        outs = [m(x) for m in self.branches]
        if any(o.shape != outs[0].shape for o in outs):
            raise ShapeError(f"Add: the branch outputs must have one shape, got {[tuple(o.shape) for o in outs]}")
        self._saved = True
        return _sum(outs)

    def backward(self, grad_output: Tensor) -> Tensor:
        self._require_saved()
        return self._backward_branches(grad_output for _ in self.branches)
