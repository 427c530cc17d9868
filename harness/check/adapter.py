"""How the checker talks to somebody's blocks: it probes the contracts seen in the wild, and an
adapter file settles what probing cannot. Runs in the child process, beside the target.

An adapter file (``n2n check TARGET --adapter FILE``) defines any of these functions; each one
replaces the probing of that step:

    build(name, kwargs, namespace) -> block       # kwargs torch-named: in_channels, kernel_size, ...
    get_params(block) -> {"weight": t, "bias": t}  # torch names and layouts
    set_params(block, values) -> None
    get_grads(block) -> {"weight": g, "bias": g}
    zero_grad(block) -> None
    forward(block, *inputs) -> tensor
    backward(block, grad) -> input gradient        # grad is None for a loss
    make_optimizer(name, blocks, kwargs, namespace) -> optimizer   # "SGD" / "Adam", torch-named kwargs
    step(optimizer) -> None

``namespace`` maps the course's block names to the target's classes. Reading parameters and
gradients (pairs, flat lists, wrappers, attributes, other layouts) is :mod:`.params`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from .params import ParamReader, Unsupported

SYNONYMS = {
    "in_channels": ("in_channels", "in_ch", "input_channels", "in_channel", "c_in", "ch_in", "nb_in", "in_c")
    + ("input_channel", "in_chans", "inchannels", "n_in", "nb_in_channels", "in_features", "cin", "channels_in"),
    "out_channels": ("out_channels", "out_ch", "output_channels", "out_channel", "c_out", "ch_out", "nb_out", "out_c")
    + ("output_channel", "out_chans", "outchannels", "n_out", "nb_out_channels", "out_features", "cout", "channels_out")
    + ("nb_channels", "n_channels", "channels", "filters", "nb_filters", "n_filters"),
    "kernel_size": ("kernel_size", "kernel", "k", "ksize", "kernel_shape", "filter_size", "kernelsize", "k_size"),
    "stride": ("stride", "strides", "s", "step"),
    "padding": ("padding", "pad", "p", "paddings", "pad_size"),
    "dilation": ("dilation", "dilations", "d", "dil"),
    "output_padding": ("output_padding", "out_padding", "out_pad", "outpadding"),
    "bias": ("bias", "use_bias", "with_bias", "has_bias", "add_bias", "biased"),
    "scale_factor": ("scale_factor", "scale", "factor", "size_factor", "upscale_factor", "scaling_factor"),
    "negative_slope": ("negative_slope", "slope", "alpha", "a", "leak", "neg_slope"),
    "lr": ("lr", "learning_rate", "eta", "step_size", "alpha_lr", "rate"),
    "momentum": ("momentum", "mu", "beta", "gamma"),
    "weight_decay": ("weight_decay", "wd", "l2", "decay"),
    "betas": ("betas",),
    "dampening": ("dampening",),
    "nesterov": ("nesterov",),
    "amsgrad": ("amsgrad",),
    "eps": ("eps", "epsilon"),
}
TARGET_WORDS = ("target", "truth", "true", "label", "gt", "ground", "clean", "reference")
TARGET_NAMES = ("y", "t")  # whole names only: a substring search would match 'output'

OPTIMIZER_FORMS = (
    "a list of (parameter, gradient) pairs",
    "a list of per-layer lists",
    "a list of parameter tensors",
    "the blocks",
    "the model",
)


def _positional(cls: Any) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _canonical(name: str) -> str | None:
    low = name.lower()
    return next((key for key, names in SYNONYMS.items() if low in names), None)


def _typed(value: Any, default: Any) -> Any:
    """A value in the form of the target's default: an int where it defaults to an int, a pair
    where it defaults to a pair (``stride=(1, 1)``)."""
    if isinstance(default, tuple) and isinstance(value, int) and not isinstance(value, bool):
        return (value,) * len(default)
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, tuple):
        return value[0] if len(set(value)) == 1 else value
    return value


def _flip(value: Any) -> Any:
    """The other form of a size (int <-> pair), for a retry after a TypeError."""
    if isinstance(value, tuple) and len(set(value)) == 1:
        return value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    return value


def _tape(out: Any) -> list[str]:
    """The attributes a forward set on its output tensor, when one of them is a creator (a block
    with a backward): the mark of a tape-style engine, whose backward is driven from the loss."""
    tags = vars(out) if isinstance(out, Tensor) else {}
    creator = any(callable(getattr(v, "backward", None)) for v in tags.values() if not isinstance(v, Tensor))
    return sorted(tags) if creator else []


class Adapter(ParamReader):
    """Probing, with the user's adapter functions taking precedence."""

    def __init__(self, namespace: dict[str, type], user: ModuleType | None) -> None:
        super().__init__()
        self.namespace = namespace
        self.user = user
        self.bias_arg = "flag"  # how the last block built was told about its bias: flag, tensor, absent
        self.last_call: tuple[type, list[Any], dict[str, Any]] | None = None  # for a reproducer

    def _user(self, name: str) -> Callable[..., Any] | None:
        return getattr(self.user, name, None) if self.user is not None else None

    # construction ---------------------------------------------------------------------------
    def build(self, name: str, kwargs: dict[str, Any], defaults: dict[str, Any]) -> Any:
        """The target's block from torch-named arguments; ``defaults`` are torch's (an argument
        the target lacks is fine while it has torch's default value)."""
        if (hook := self._user("build")) is not None:
            return hook(name, dict(kwargs), self.namespace)
        cls = self.namespace[name]
        params = _positional(cls)
        args, by_name = self._arguments(name, params, kwargs, defaults)
        self.last_call = (cls, args, by_name)
        try:
            return cls(*args, **by_name)
        except TypeError:  # an int where it wanted a pair, or the other way round
            flipped = {k: _flip(v) for k, v in by_name.items()}
            if flipped == by_name:
                raise
            self.last_call = (cls, args, flipped)
            block = cls(*args, **flipped)
            self.notes.add(f"{name}: sizes passed as {'pairs' if _has_pair(flipped) else 'ints'}")
            return block

    def _arguments(
        self, name: str, params: list[inspect.Parameter], kwargs: dict[str, Any], defaults: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments: by the target's names where it has them, else in
        torch's order for required parameters with names nobody uses."""
        by_name: dict[str, Any] = {}
        left: dict[str, Any] = {}
        if "bias" in defaults and "bias" not in kwargs:  # torch's default: on
            kwargs = {**kwargs, "bias": defaults["bias"]}
        for key, value in kwargs.items():
            match = next((p for p in params if _canonical(p.name) == key), None)
            if match is None:
                left[key] = value
                continue
            by_name[match.name] = self._value(name, key, value, match, kwargs)
        unnamed = [p for p in params if _canonical(p.name) is None and p.default is p.empty]
        args: list[Any] = []
        if unnamed:  # e.g. Conv2d(a, b, c): torch's order for what has no known name
            order = [k for k in defaults if k in left][: len(unnamed)]
            taken = [(p, k, left.pop(k)) for p, k in zip(unnamed, order, strict=False)]
            # by its own name where it has one: a positional value would land in the first slot
            args = [v for p, _, v in taken if p.kind is p.POSITIONAL_ONLY]
            by_name |= {p.name: v for p, _, v in taken if p.kind is not p.POSITIONAL_ONLY}
            said = ", ".join(f"{p.name} as {k}" for p, k, _ in taken)
            self.notes.add(f"{name}: {said} (torch's order, for names it does not use)")
        for key, value in left.items():
            if key == "bias":
                self.bias_arg = "absent"
                continue  # no bias argument: the block decides, and the checker reads what it has
            if value != defaults.get(key, object()):
                raise Unsupported(f"{name} has no argument for {key}={value!r}")
        self._note_order(name, params, defaults)
        return args, by_name

    def _value(self, name: str, key: str, value: Any, param: inspect.Parameter, kwargs: dict[str, Any]) -> Any:
        if key != "bias":
            return _typed(value, param.default)
        self.bias_arg = "flag"
        if isinstance(param.default, (bool, int)) or param.default is param.empty:  # True/False, or 1/0
            if not param.default and param.default is not param.empty and value:
                self.notes.add(f"{name}: bias is off by default; passed bias={value}")
            return type(param.default)(value) if isinstance(param.default, int) else value
        # bias=None by default: an initial tensor (or nothing for no bias)
        self.bias_arg = "tensor"
        self.notes.add(f"{name}: bias given as an initial tensor")
        return torch.zeros(int(kwargs.get("out_channels", 1))) if value else None

    def _note_order(self, name: str, params: list[inspect.Parameter], defaults: dict[str, Any]) -> None:
        order = [_canonical(p.name) for p in params]
        torch_order = list(defaults)
        if [k for k in order if k in torch_order] != [k for k in torch_order if k in order]:
            self.notes.add(f"{name}: arguments in another order ({', '.join(p.name for p in params)}); passed by name")

    # calls ---------------------------------------------------------------------------------
    def forward(self, block: Any, *inputs: Tensor) -> Any:
        if (hook := self._user("forward")) is not None:
            return hook(block, *inputs)
        try:  # for a stateless backward(input, grad), or a loss's backward(prediction, target)
            block._n2n_input, block._n2n_inputs = inputs[0], inputs
        except AttributeError:  # __slots__: such a block keeps its own state
            pass
        out = block.forward(*inputs)
        try:
            block._n2n_tape = _tape(out)
        except AttributeError:
            pass
        return out

    def backward(self, block: Any, grad: Tensor | None) -> Any:
        """The input gradient: a tensor, a 1-tuple, the element of a (dX, dW, db) tuple shaped like
        the input, or None; ``backward(input, grad)`` when its signature asks for both."""
        if (hook := self._user("backward")) is not None:
            return hook(block, grad)
        tape = getattr(block, "_n2n_tape", [])
        try:
            out = self._backward(block, grad)
        except Exception:
            if not tape:
                raise
            out = None
        if out is None and tape:  # raised, or passed the gradient on: not a contract to blame
            raise Unsupported(
                f"{type(block).__name__}'s forward tags its output with {', '.join(tape)}: a tape, whose backward "
                "hands the gradient to the creators instead of returning it (an adapter's backward settles it)"
            ) from None
        return self._input_grad(block, out)

    def _backward(self, block: Any, grad: Tensor | None) -> Any:
        wanted = [p for p in _positional(block.backward) if p.default is p.empty]
        if grad is None:
            stateless = len(wanted) >= 2 and hasattr(block, "_n2n_inputs")
            if stateless:
                self.notes.add(f"{type(block).__name__}: stateless backward(prediction, target)")
            return block.backward(*block._n2n_inputs) if stateless else block.backward()
        if len(wanted) >= 2 and hasattr(block, "_n2n_input"):
            self.notes.add(f"{type(block).__name__}: stateless backward(input, grad)")
            return block.backward(block._n2n_input, grad)
        return block.backward(grad)

    def _input_grad(self, block: Any, out: Any) -> Any:
        if not isinstance(out, (tuple, list)):
            return out
        if len(out) == 1:
            self.notes.add("backward returns a 1-tuple")
            return out[0]
        x = getattr(block, "_n2n_input", None)
        shaped = [t for t in out if isinstance(t, Tensor) and x is not None and t.shape == x.shape]
        if shaped:
            self.notes.add(
                f"{type(block).__name__}: backward returns a {len(out)}-tuple; the input gradient read from it"
            )
            return shaped[0]
        return out

    def loss_swapped(self, block: Any) -> bool:
        """Whether the loss takes (target, prediction), by its forward's parameter names."""
        params = [p.name.lower() for p in _positional(getattr(block, "forward", None))]
        params = [p for p in params if p != "self"]
        if len(params) < 2:
            return False
        swapped = _is_target(params[0]) and not _is_target(params[1])
        if swapped:
            self.notes.add("the loss is called as (target, prediction)")
        return swapped

    # optimizers ----------------------------------------------------------------------------
    def make_optimizer(
        self, name: str, blocks: list[Any], kwargs: dict[str, Any], defaults: dict[str, Any], form: int
    ) -> Any:
        """The target's optimizer over ``blocks``, given its parameters in form number ``form``
        (:data:`OPTIMIZER_FORMS`): the caller tries the next form when one fails."""
        if (hook := self._user("make_optimizer")) is not None:
            if form:
                raise Unsupported(f"the adapter's make_optimizer for {name} failed")
            return hook(name, blocks, dict(kwargs), self.namespace)
        cls = self.namespace[name]
        params = _positional(cls)
        if not params:
            raise Unsupported(f"{name} takes no parameters")
        args, by_name = self._arguments(name, params[1:], kwargs, defaults)
        return cls(self._form(name, blocks, form), *args, **by_name)

    def _form(self, name: str, blocks: list[Any], form: int) -> Any:
        if form == 0:
            return [pair for b in blocks for pair in self.pair_list(b)]
        if form == 1:
            return [self.pair_list(b) for b in blocks]
        if form == 2:
            return [p for b in blocks for p in self.get_params(b).values()]
        if form == 3:
            return list(blocks)
        if form == 4 and "Sequential" in self.namespace:
            return self.namespace["Sequential"](*blocks)
        raise Unsupported(f"{name}: none of the parameter forms ({', '.join(OPTIMIZER_FORMS)}) worked")

    def step_wants_model(self, optimizer: Any) -> bool:
        fn = getattr(optimizer, "step", None)
        return callable(fn) and any(p.default is p.empty for p in _positional(fn))

    def step(self, optimizer: Any, blocks: list[Any] | None = None, model: Any = None, lr: float = 0.0) -> None:
        """``step()``, ``step(model)``, ``update()``, or each block's own ``step(lr)``."""
        if (hook := self._user("step")) is not None:
            hook(optimizer)
            return
        for method in ("step", "update"):
            fn = getattr(optimizer, method, None)
            if callable(fn):
                if method != "step":
                    self.notes.add(f"the optimizer steps with {method}()")
                wants = [p for p in _positional(fn) if p.default is p.empty]
                if wants and model is not None:
                    self.notes.add(f"the optimizer steps with {method}(model)")
                    fn(model)
                else:
                    fn()
                return
        steps = [getattr(b, "step", None) for b in blocks or []]
        if steps and all(callable(s) for s in steps if s is not None) and any(steps):
            self.notes.add("each block steps itself with step(lr)")
            for s in steps:
                if s is not None:
                    s(lr)
            return
        raise Unsupported("the optimizer has neither step() nor update()")


def _is_target(name: str) -> bool:
    return name in TARGET_NAMES or any(word in name for word in TARGET_WORDS)


def _has_pair(kwargs: dict[str, Any]) -> bool:
    return any(isinstance(v, tuple) for v in kwargs.values())
