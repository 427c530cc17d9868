"""Where a tensor lives in a block, as a Python expression a person can read
(``block.weight``, ``block.param()[0][1]``, ``block.grads['W']``): a reproducer drives the target
through these, exactly as the checker did. Runs in the child process."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .params import PARAM_METHODS, WRAPPED, listed


def _inside(value: Any, expr: str, tensor: Tensor) -> str | None:
    """``expr`` itself, an element of it, or a wrapper's attribute, when that is ``tensor``."""
    if value is tensor:
        return expr
    if isinstance(value, dict):
        return next((f"{expr}[{k!r}]" for k, v in value.items() if v is tensor), None)
    if isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            found = item is tensor and f"{expr}[{i}]" or _wrapped(item, f"{expr}[{i}]", tensor)
            if found:
                return found
        return None
    return _wrapped(value, expr, tensor)


def _wrapped(value: Any, expr: str, tensor: Tensor) -> str | None:
    if isinstance(value, (tuple, list)):
        return next((f"{expr}[{j}]" for j, v in enumerate(value) if v is tensor), None)
    return next((f"{expr}.{a}" for a in (*WRAPPED, "grad") if getattr(value, a, None) is tensor), None)


def path(block: Any, tensor: Tensor | None) -> str | None:
    """An expression for ``tensor`` starting from ``block``: its attributes first, then what its
    parameter method returns, then a parameter's ``.grad``."""
    if tensor is None:
        return None
    for name, value in vars(block).items() if hasattr(block, "__dict__") else ():
        if not name.startswith("_n2n") and (found := _inside(value, f"block.{name}", tensor)):
            return found
    for method in PARAM_METHODS:
        fn = getattr(block, method, None)
        if callable(fn) and (found := _inside(listed(fn()), f"block.{method}()", tensor)):
            return found
    return None
