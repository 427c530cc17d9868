"""Sequential: modules applied in order, back-propagated in reverse."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor

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
