"""The EE-559 course rule, at run time: installed in the child before the target is imported, the
:class:`Recorder` wraps the entry points the rule forbids (functions of ``torch.nn.functional``
other than fold and unfold, ``torch.nn.Module``'s constructor, ``backward``,
``torch.autograd.grad``, ``requires_grad_``) so that each call the target's own code makes is
recorded with the file and line of its frame. The records travel in the replies; the checker
turns them into findings (:mod:`.rule`)."""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import torch
import torch.nn.functional as F

ALLOWED_FUNCTIONAL = {"fold", "unfold"}
TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_HERE = Path(__file__).resolve()
CHECKER_DIRS = (str(_HERE.parents[1]) + os.sep, str(_HERE.parents[2] / "n2n") + os.sep)


def target_file(file: str, root: Path) -> bool:
    """Whether ``file`` is the target's own code: under its folder, and neither an installed
    package nor the checker itself (which may share the folder: ``n2n check .`` here)."""
    inside = file.startswith(str(root) + os.sep) and not file.startswith(CHECKER_DIRS)
    return inside and "site-packages" not in file and "dist-packages" not in file


class Recorder:
    """Wraps the forbidden entry points so that each call made from the target's own code is
    recorded (``is_target``: whether a file is the target's; ``name``: its name in the report).
    Calls torch makes on its own behalf are not the target's; ``blocks`` maps a class name to the
    block it is (filled in after discovery)."""

    def __init__(self, is_target: Callable[[str], bool], name: Callable[[str], str]) -> None:
        self.is_target, self.name = is_target, name
        self.blocks: dict[str, str] = {}
        self.records: list[dict[str, str]] = []
        self.seen: set[tuple[str, str, str]] = set()
        self.busy = False  # a forbidden call inside another is not recorded twice

    def install(self) -> None:
        for attr in dir(F):
            fn = getattr(F, attr)
            if attr not in ALLOWED_FUNCTIONAL and not attr.startswith("_") and inspect.isroutine(fn):
                setattr(F, attr, self._wrap(fn, f"calls torch.nn.functional.{attr}", stop_at_torch=True))
        torch.autograd.grad = self._wrap(torch.autograd.grad, "calls torch.autograd.grad", True)
        torch.autograd.backward = self._wrap(torch.autograd.backward, "calls torch.autograd.backward", True)
        torch.Tensor.backward = self._wrap(  # type: ignore[method-assign]
            torch.Tensor.backward, "calls Tensor.backward (autograd)", True
        )
        requires_grad_ = torch.Tensor.requires_grad_

        def _requires_grad_(t: torch.Tensor, requires_grad: bool = True) -> torch.Tensor:
            if requires_grad:
                self.note("calls Tensor.requires_grad_ (autograd)", sys._getframe(1), stop_at_torch=True)
            return requires_grad_(t, requires_grad)

        torch.Tensor.requires_grad_ = _requires_grad_  # type: ignore[method-assign,assignment]
        module_init = torch.nn.Module.__init__

        def _module_init(module: torch.nn.Module, *args: Any, **kwargs: Any) -> None:
            cls = type(module)
            what = f"torch.nn.{cls.__name__}" if cls.__module__.startswith("torch.") else "torch.nn.Module"
            self.note(f"builds on {what}", sys._getframe(1), stop_at_torch=False)
            module_init(module, *args, **kwargs)

        torch.nn.Module.__init__ = _module_init  # type: ignore[method-assign,assignment]

    def _wrap(self, fn: Callable[..., Any], does: str, stop_at_torch: bool) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.busy:
                self.note(does, sys._getframe(1), stop_at_torch)
            self.busy, was = True, self.busy
            try:
                return fn(*args, **kwargs)
            finally:
                self.busy = was

        return wrapper

    def note(self, does: str, frame: FrameType | None, stop_at_torch: bool) -> None:
        """Record ``does`` at the first frame of the target's from ``frame`` outward; none when
        torch itself made the call (``stop_at_torch``) or only the checker did."""
        while frame is not None:
            file = frame.f_code.co_filename
            if file.startswith(TORCH_DIR):
                if stop_at_torch:
                    return
            elif self.is_target(file):
                self.add(frame.f_code.co_qualname, does, f"{self.name(file)}:{frame.f_lineno}")
                return
            frame = frame.f_back

    def add(self, caller: str, does: str, where: str) -> None:
        if (caller, does, where) in self.seen:
            return
        self.seen.add((caller, does, where))
        block = self.blocks.get(caller.split(".")[0], "")
        self.records.append({"block": block, "caller": caller, "does": does, "where": where})

    def take(self) -> list[dict[str, str]]:
        """The records since the last call (each reply carries its own)."""
        out, self.records = self.records, []
        return out
