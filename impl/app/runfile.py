"""A run's state and its two file formats, each writer beside its reader.

- ``checkpoint.pth`` (:func:`checkpoint_dict` / :func:`read_checkpoint`): everything a resume needs,
  weights, optimizer state, the batch stream's state, step, losses, validations, training seconds,
  the devices used, the configuration;
- an exported model, ``bestmodel.pth`` (:func:`export_model` / :func:`read_model`): configuration
  and weights; :func:`read_model` also reads a training checkpoint.

Both are plain dicts of tensors, numbers, strings and lists, so they load with
``torch.load(weights_only=True)``. The readers check every field's presence and type before
anything is built from it, and name the field that is wrong: a file is untrusted input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from .backend import Backend
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .errors import UserError
from .limits import check_model

FORMAT = "n2n-checkpoint-v1"
MODEL_FORMAT = "n2n-model-v1"


@dataclass
class RunState:
    """Progress of a run: steps done, per-step losses, ``[step, PSNR]`` validations, training seconds."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    val_psnr: list[list[float]] = field(default_factory=list)
    elapsed: float = 0.0
    stopped: str = ""
    devices: list[str] = field(default_factory=list)  # where its steps ran ('cpu', 'cuda')


@dataclass
class Saved:
    """A training checkpoint, checked: what :func:`read_checkpoint` returns."""

    config: dict[str, Any]
    state: RunState
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]


def backend_name(backend: Backend | Callable[..., Backend]) -> str:
    return getattr(backend, "name", type(backend).__name__)


def checkpoint_dict(config: TrainConfig, backend: Backend, rng: dict[str, Any], state: RunState) -> dict[str, Any]:
    """Everything a resume needs, as plain tensors/numbers/strings/lists (``weights_only``-loadable);
    ``rng`` is the batch stream's state (``BatchStream.state()``), restored from the ``rng`` field."""
    return {
        "format": FORMAT,
        "backend": backend_name(backend),
        "config": config.to_dict(),
        "model": backend.state_dict(),
        "optimizer": backend.optimizer_state_dict(),
        "rng": rng,
        "step": state.step,
        "losses": list(state.losses),
        "val_psnr": [list(v) for v in state.val_psnr],
        "elapsed": state.elapsed,
        "devices": list(state.devices),
    }


def read_checkpoint(saved: dict[str, Any], path: str | Path, kind: str) -> Saved:
    """The checked contents of a training checkpoint of the ``kind`` backend loaded from ``path``.

    Raises:
        UserError: not a training checkpoint of ``kind``, or a field missing, of the wrong type,
            or inconsistent (``step`` must count the ``losses``); the message names the field.
    """
    if saved.get("format") != FORMAT or saved.get("backend") != kind:
        raise UserError(f"{path} is not a training checkpoint of the {kind} backend")
    check = _Fields(saved, path)
    step = check.get("step", int, "an integer >= 0", lambda v: v >= 0)
    losses = check.get("losses", list, "a list of numbers", lambda v: all(_number(x) for x in v))
    if step != len(losses):
        raise UserError(f"{path}: field 'step' is {step} but 'losses' holds {len(losses)} steps")
    pairs = check.get("val_psnr", list, "a list of [step, PSNR]", lambda v: all(_pair(p) for p in v))
    elapsed = check.get("elapsed", (int, float), "a number of seconds >= 0", lambda v: math.isfinite(v) and v >= 0)
    devices = check.get("devices", list, "a list of device names", lambda v: all(isinstance(d, str) for d in v), [])
    model = _weights(check, "model")
    optimizer = check.get("optimizer", dict, "an optimizer state dict", _optimizer_layout)
    state = RunState(step, [float(x) for x in losses], [list(p) for p in pairs], float(elapsed), devices=devices)
    return Saved(_config_dict(check), state, model, optimizer, check.get("rng", dict, "a stream state dict"))


def export_model(path: str | Path, config: TrainConfig, backend: Backend, state: RunState | None = None) -> Path:
    """Save the weights for inference (``bestmodel.pth`` format): ``{"format", "config",
    "state_dict"}``, and ``"trained"`` (steps done, training seconds, devices) when ``state`` is given."""
    saved: dict[str, Any] = {"format": MODEL_FORMAT, "config": config.to_dict(), "state_dict": backend.state_dict()}
    if state is not None:
        saved["trained"] = {"steps": state.step, "seconds": state.elapsed, "devices": list(state.devices)}
    return save_checkpoint(saved, path)


def read_model(saved: dict[str, Any], path: str | Path) -> tuple[TrainConfig, dict[str, Tensor]]:
    """The configuration and weights of an exported model or a training checkpoint, checked.

    Raises:
        UserError: not a model file of this program, a configuration that is not valid or whose
            network cannot fit in memory (naming the saved field), or weights that are not tensors.
    """
    if not isinstance(saved.get("config"), dict) or not isinstance(saved.get("state_dict", saved.get("model")), dict):
        raise UserError(f"{path}: not a model saved by n2n (expected the keys 'config' and 'state_dict' or 'model')")
    check = _Fields(saved, path)
    weights = _weights(check, "state_dict" if "state_dict" in saved else "model")
    return saved_config(_config_dict(check), path), weights


def saved_config(values: dict[str, Any], path: str | Path) -> TrainConfig:
    """``TrainConfig.from_dict(values)`` of a configuration read from ``path``; an invalid field is
    named as the file's (it is not a flag the user passed)."""
    try:
        config = TrainConfig.from_dict(values)
        check_model(config)
    except UserError as e:
        what = f"field 'config.{e.field}'" if e.field is not None else "field 'config'"
        raise UserError(f"{path}: the saved configuration is not usable: {what}{e.detail}") from None
    return config


class _Fields:
    """Typed access to the fields of a loaded dict, naming the file and the field on any mismatch."""

    def __init__(self, saved: dict[str, Any], path: str | Path) -> None:
        self.saved, self.path = saved, path

    def get(
        self,
        name: str,
        kind: type | tuple[type, ...],
        expected: str,
        valid: Callable[[Any], bool] = lambda v: True,
        default: Any = None,
    ) -> Any:
        if name not in self.saved and default is not None:
            return default
        if name not in self.saved:
            raise UserError(f"{self.path}: field '{name}' is missing")
        value = self.saved[name]
        if not isinstance(value, kind) or isinstance(value, bool) or not valid(value):
            shown = repr(value) if isinstance(value, (int, float, str)) else type(value).__name__
            raise UserError(f"{self.path}: field '{name}' must be {expected}, got {shown[:80]}")
        return value


def _weights(check: _Fields, name: str) -> dict[str, Tensor]:
    """Weights: string keys, CPU tensors with data (a meta tensor has none)."""

    def valid(weights: dict[Any, Any]) -> bool:
        return all(isinstance(k, str) and isinstance(v, Tensor) and v.device.type == "cpu" for k, v in weights.items())

    return check.get(name, dict, "a dict of names to CPU tensors", valid)


def _config_dict(check: _Fields) -> dict[str, Any]:
    return check.get("config", dict, "a dict of settings", lambda v: all(isinstance(k, str) for k in v))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _pair(p: Any) -> bool:
    return isinstance(p, (list, tuple)) and len(p) == 2 and all(_number(x) for x in p)


def _optimizer_layout(state: dict[str, Any]) -> bool:
    """torch.optim's layout: ``state`` (index -> dict) and a non-empty ``param_groups`` of dicts with ``params``."""
    groups, entries = state.get("param_groups"), state.get("state")
    return (
        isinstance(groups, list)
        and len(groups) > 0
        and all(isinstance(g, dict) and isinstance(g.get("params"), list) and _number(g.get("lr")) for g in groups)
        and isinstance(entries, dict)
        and all(isinstance(k, int) and isinstance(v, dict) for k, v in entries.items())
    )


def check_optimizer_shapes(optimizer: dict[str, Any], weights: dict[str, Tensor]) -> None:
    """Every per-parameter buffer of a :func:`read_checkpoint` optimizer state (``exp_avg``,
    ``momentum_buffer`` ...) is a CPU tensor of its parameter's shape (``weights`` in order)."""
    shapes = [tuple(t.shape) for t in weights.values()]
    for index, entry in optimizer["state"].items():
        for key, value in entry.items():
            if not isinstance(value, Tensor) or (key == "step" and value.dim() == 0):
                continue
            expected = shapes[index] if index in range(len(shapes)) else "no parameter"
            if tuple(value.shape) != expected or value.device.type != "cpu":
                raise UserError(f"state {index}.{key} is {value.device.type} {tuple(value.shape)}, expected {expected}")
