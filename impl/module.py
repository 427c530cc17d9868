"""Module: the one layer contract every block follows.

- ``forward(*inputs)`` returns the output and keeps, under ``self._saved``, only what backward
  needs; ``__call__`` is ``forward``.
- ``backward(*grad_outputs)`` returns the gradient w.r.t. the input and **accumulates** (``+=``)
  the parameter gradients. Calling it before ``forward`` raises ``RuntimeError``.
- ``param()`` returns ``[(parameter, gradient), ...]``; ``state_dict()`` uses torch.nn's keys.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from .errors import StateDictError


class Module:
    """Base class of the blocks. Subclasses register parameters with :meth:`_register`."""

    training: bool = True

    def __init__(self) -> None:
        self._param_names: list[str] = []
        self._grads: dict[str, Tensor] = {}
        self._saved: Any = None
        self.training = True

    # --- the contract ---------------------------------------------------------------------
    # ``(*args: Any, **kwargs: Any)`` lets each block declare its own arguments (mypy).
    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, *args: Any, **kwargs: Any) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *inputs: Tensor, **kwargs: Any) -> Tensor:
        return self.forward(*inputs, **kwargs)

    def _require_saved(self) -> Any:
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._saved

    # --- parameters ----------------------------------------------------------------------
    def _register(self, name: str, value: Tensor | None) -> None:
        """Make ``value`` the parameter ``name`` (``None`` keeps the attribute, e.g. no bias)."""
        setattr(self, name, value)
        if value is not None:
            self._param_names.append(name)
            self._grads[name] = value.new_zeros(value.shape)

    def children(self) -> Iterator[tuple[str, Module]]:
        return iter(())

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor, Tensor]]:
        """Yield ``(name, parameter, gradient)`` with torch.nn's dotted names."""
        for name in self._param_names:
            yield prefix + name, getattr(self, name), self._grads[name]
        for child_name, child in self.children():
            yield from child.named_parameters(f"{prefix}{child_name}.")

    def param(self) -> list[tuple[Tensor, Tensor]]:
        return [(p, g) for _, p, g in self.named_parameters()]

    def zero_grad(self) -> None:
        for _, _, g in self.named_parameters():
            g.zero_()

    def train(self, mode: bool = True) -> Module:
        self.training = mode
        for _, child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Module:
        """Move and/or cast parameters and gradients in place (build optimizers afterwards)."""
        for name in self._param_names:
            setattr(self, name, getattr(self, name).to(device=device, dtype=dtype))
            self._grads[name] = self._grads[name].to(device=device, dtype=dtype)
        self._saved = None
        for _, child in self.children():
            child.to(device=device, dtype=dtype)
        return self

    def double(self) -> Module:
        return self.to(dtype=torch.float64)

    def float(self) -> Module:
        return self.to(dtype=torch.float32)

    # --- state_dict ----------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters by torch.nn's keys; the tensors are the module's own (like torch)."""
        return OrderedDict((name, p) for name, p, _ in self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True) -> None:
        """Copy values in place, so optimizers holding the parameters keep working.

        Every key and shape is checked before anything is copied: a refused state dict leaves
        the module unchanged.
        """
        own = {name: p for name, p, _ in self.named_parameters()}
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise StateDictError(
                f"{type(self).__name__}.load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        for key, p in own.items():
            if key in state_dict:
                value = state_dict[key]
                if not isinstance(value, Tensor) or value.shape != p.shape:
                    got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                    raise StateDictError(
                        f"{type(self).__name__}.load_state_dict: {key!r} expects shape {tuple(p.shape)}, got {got}"
                    )
        for key, p in own.items():
            if key in state_dict:
                p.copy_(state_dict[key])

    # --- printing ------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"
