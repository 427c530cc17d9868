"""Models loaded for inference: the network of an exported model (``bestmodel.pth``) or of a
training checkpoint, built once with its weights and no optimizer. Light on purpose: the course
Model API imports it, and ``import Miniproject_2.model`` must not pull in the training loop's
progress bars, scikit-image or torch.distributed."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .backend import Backend, ImplBackend
from .checkpoint import load_checkpoint
from .errors import UserError
from .runfile import read_model

BackendFactory = Callable[..., Backend]  # called as factory(config), plus keywords it declares


def _takes(factory: BackendFactory, keyword: str) -> bool:
    """Whether ``factory`` declares the keyword argument (ImplBackend: ``weights``, ``reduce_gradients``)."""
    return keyword in inspect.signature(factory).parameters


def _load_field(path: Path | str, name: str, load: Callable[[Any], object], value: Any) -> None:
    """``load(value)``, the contents of the file's field ``name``; any refusal names the field."""
    try:
        load(value)
    except (UserError, ValueError, TypeError, KeyError, IndexError, RuntimeError) as e:
        raise UserError(f"{path}: field '{name}' does not fit this run's configuration: {e}") from None


def load_model(path: str | Path, factory: BackendFactory = ImplBackend) -> Backend:
    """A backend rebuilt from a checkpoint's config, with its weights, for inference: accepts a
    training checkpoint (``checkpoint.pth``) or an exported model (``bestmodel.pth``).

    Raises:
        FileNotFoundError: no such file. UserError: not a model file of this program, or one whose
        configuration or weights are not usable (naming the field).
    """
    return model_from(load_checkpoint(path), path, factory)


def model_from(saved: dict[str, Any], path: str | Path, factory: BackendFactory = ImplBackend) -> Backend:
    """:func:`load_model` of an already loaded checkpoint ``saved`` (read from ``path``)."""
    config, weights = read_model(saved, path)
    field = "state_dict" if "state_dict" in saved else "model"
    if _takes(factory, "weights"):  # built once, with its weights, no optimizer
        backend: list[Backend] = []
        _load_field(path, field, lambda w: backend.append(factory(config, weights=w)), weights)
        return backend[0]
    built = factory(config)
    _load_field(path, field, built.load_state_dict, weights)
    return built
