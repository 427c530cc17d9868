"""How the checker talks to somebody's blocks: it probes the contracts seen in the wild, and an
adapter file settles what probing cannot. Runs in the child process, beside the target.

An adapter file (``n2n check TARGET --adapter FILE``) defines any of these functions; each one
replaces the probing of that step:

    build(name, kwargs, namespace) -> block       # kwargs torch-named: in_channels, kernel_size, ...
    get_params(block) -> {"weight": t, "bias": t}  # torch names
    set_params(block, values) -> None
    get_grads(block) -> {"weight": g, "bias": g}
    zero_grad(block) -> None
    forward(block, *inputs) -> tensor
    backward(block, grad) -> input gradient        # grad is None for a loss
    make_optimizer(name, blocks, kwargs, namespace) -> optimizer   # "SGD" / "Adam", torch-named kwargs
    step(optimizer) -> None

``namespace`` maps the course's block names to the target's classes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

from torch import Tensor

SYNONYMS = {
    "in_channels": ("in_channels", "in_ch", "input_channels", "in_channel", "c_in", "ch_in", "nb_in", "in_c"),
    "out_channels": ("out_channels", "out_ch", "output_channels", "out_channel", "c_out", "ch_out", "nb_out", "out_c"),
    "kernel_size": ("kernel_size", "kernel", "k", "ksize", "kernel_shape"),
    "stride": ("stride", "strides", "s"),
    "padding": ("padding", "pad", "p", "paddings"),
    "dilation": ("dilation", "dilations", "d"),
    "output_padding": ("output_padding", "out_padding"),
    "bias": ("bias", "use_bias", "with_bias", "has_bias"),
    "scale_factor": ("scale_factor", "scale", "factor", "size_factor"),
    "negative_slope": ("negative_slope", "slope", "alpha", "a"),
    "lr": ("lr", "learning_rate", "eta", "step_size"),
    "momentum": ("momentum", "mu", "beta"),
    "weight_decay": ("weight_decay", "wd", "l2"),
    "betas": ("betas",),
    "dampening": ("dampening",),
    "nesterov": ("nesterov",),
    "amsgrad": ("amsgrad",),
    "eps": ("eps", "epsilon"),
}
TARGET_FIRST = ("target", "targets", "y", "y_true", "truth", "label", "labels", "gt", "ground_truth")


OPTIMIZER_FORMS = ("a list of (parameter, gradient) pairs", "a list of per-layer lists", "the model")


class Unsupported(Exception):
    """The target refuses this configuration (an argument it has no parameter for)."""


def _positional(cls: type) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _canonical(name: str) -> str | None:
    low = name.lower()
    return next((key for key, names in SYNONYMS.items() if low in names), None)


def _by_name(
    name: str, params: list[inspect.Parameter], kwargs: dict[str, Any], defaults: dict[str, Any]
) -> dict[str, Any]:
    """Torch-named ``kwargs`` under the target's own parameter names; an argument it lacks is
    dropped while it has torch's default value, else the configuration is unsupported."""
    by_name: dict[str, Any] = {}
    for key, value in kwargs.items():
        match = next((p for p in params if _canonical(p.name) == key), None)
        if match is None:
            if value == defaults.get(key, object()):
                continue
            raise Unsupported(f"{name} has no argument for {key}={value!r}")
        by_name[match.name] = value
    return by_name


class Adapter:
    """Probing, with the user's adapter functions taking precedence."""

    def __init__(self, namespace: dict[str, type], user: ModuleType | None) -> None:
        self.namespace = namespace
        self.user = user
        self.notes: set[str] = set()

    def _user(self, name: str) -> Callable[..., Any] | None:
        return getattr(self.user, name, None) if self.user is not None else None

    def build(self, name: str, kwargs: dict[str, Any], defaults: dict[str, Any]) -> Any:
        """The target's block from torch-named arguments; ``defaults`` are torch's (an argument
        the target lacks is fine while it has torch's default value)."""
        if (hook := self._user("build")) is not None:
            return hook(name, dict(kwargs), self.namespace)
        cls = self.namespace[name]
        params = _positional(cls)
        by_name = _by_name(name, params, kwargs, defaults)
        wanted_bias = kwargs.get("bias", True)
        bias_param = next((p for p in params if _canonical(p.name) == "bias"), None)
        if bias_param is not None and bias_param.name not in by_name:
            by_name[bias_param.name] = wanted_bias
            if bias_param.default is False:
                self.notes.add(f"{name}: bias is off by default; passed bias={wanted_bias}")
        order = [_canonical(p.name) for p in params]
        torch_order = list(defaults)
        if [k for k in order if k in torch_order] != [k for k in torch_order if k in order]:
            self.notes.add(f"{name}: arguments in another order ({', '.join(p.name for p in params)}); passed by name")
        return cls(**by_name)

    # parameters and gradients --------------------------------------------------------------
    def _pairs(self, block: Any) -> list[tuple[Tensor, Tensor | None]]:
        for method in ("param", "params", "parameters"):
            fn = getattr(block, method, None)
            if callable(fn):
                if method != "param":
                    self.notes.add(f"parameters read with {method}()")
                items = list(fn())
                pairs = []
                for item in items:
                    if isinstance(item, Tensor):
                        pairs.append((item, item.grad))
                    elif isinstance(item, (tuple, list)) and len(item) >= 2:
                        pairs.append((item[0], item[1]))
                    elif isinstance(item, (tuple, list)) and len(item) == 1:
                        pairs.append((item[0], item[0].grad))
                if items and isinstance(items[0], Tensor):
                    self.notes.add("parameters are tensors carrying .grad")
                return pairs
        return []

    def _named(self, block: Any) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Torch names by rank: the 4D tensor is the weight, the 1D one the bias."""
        pairs = self._pairs(block)
        named: dict[str, tuple[Tensor, Tensor | None]] = {}
        for p, g in pairs:
            name = "bias" if p.dim() == 1 else "weight"
            named.setdefault(name, (p, g))
        if len(pairs) == 2 and pairs[0][0].dim() == 1:
            self.notes.add("param() gives bias then weight")
        return named

    def get_params(self, block: Any) -> dict[str, Tensor]:
        if (hook := self._user("get_params")) is not None:
            return dict(hook(block))
        return {k: p for k, (p, _) in self._named(block).items()}

    def set_params(self, block: Any, values: dict[str, Tensor]) -> None:
        if (hook := self._user("set_params")) is not None:
            hook(block, values)
            return
        current = self.get_params(block)
        dtype = next(iter(values.values())).dtype if values else None
        if current and dtype is not None and next(iter(current.values())).dtype != dtype:
            convert = getattr(block, "to", None)
            if callable(convert):  # torch-like blocks: their gradient buffers follow
                try:
                    convert(dtype=dtype)
                    current = self.get_params(block)
                except Exception:  # noqa: BLE001 (then the values are set as they are)
                    pass
        for name, value in values.items():
            if name not in current:
                raise Unsupported(f"no parameter {name!r} found (found {sorted(current)})")
            p = current[name]
            if p.shape != value.shape and p.numel() == value.numel():
                raise Unsupported(f"{name}: stored as {tuple(p.shape)}, torch's layout is {tuple(value.shape)}")
            if p.dtype != value.dtype and isinstance(p.grad, Tensor):
                p.grad = None  # a float32 .grad cannot stay on a float64 tensor
            p.data = value.clone()

    def get_grads(self, block: Any) -> dict[str, Tensor | None]:
        if (hook := self._user("get_grads")) is not None:
            return dict(hook(block))
        named = self._named(block)
        return {k: (g if g is not None else p.grad) for k, (p, g) in named.items()}

    def zero_grad(self, block: Any) -> None:
        if (hook := self._user("zero_grad")) is not None:
            hook(block)
            return
        fn = getattr(block, "zero_grad", None)
        if callable(fn):
            fn()
            return
        for g in self.get_grads(block).values():
            if g is not None:
                g.zero_()

    # calls ---------------------------------------------------------------------------------
    def forward(self, block: Any, *inputs: Tensor) -> Any:
        if (hook := self._user("forward")) is not None:
            return hook(block, *inputs)
        return block.forward(*inputs)

    def backward(self, block: Any, grad: Tensor | None) -> Any:
        if (hook := self._user("backward")) is not None:
            return hook(block, grad)
        out = block.backward() if grad is None else block.backward(grad)
        if isinstance(out, (tuple, list)) and len(out) == 1:
            self.notes.add("backward returns a 1-tuple")
            return out[0]
        return out

    def loss_swapped(self, block: Any) -> bool:
        """Whether the loss takes (target, prediction), by its forward's parameter names."""
        try:
            params = [p.name for p in inspect.signature(block.forward).parameters.values()]
        except (TypeError, ValueError):
            return False
        swapped = bool(params) and params[0].lower() in TARGET_FIRST
        if swapped:
            self.notes.add("the loss is called as (target, prediction)")
        return swapped

    # optimizers ----------------------------------------------------------------------------
    def make_optimizer(
        self, name: str, blocks: list[Any], kwargs: dict[str, Any], defaults: dict[str, Any], form: int
    ) -> Any:
        """The target's optimizer over ``blocks``, given its parameters in form number ``form``
        (:data:`OPTIMIZER_FORMS`): the caller tries the next form when a step fails."""
        if (hook := self._user("make_optimizer")) is not None:
            if form:
                raise Unsupported(f"the adapter's make_optimizer for {name} failed")
            return hook(name, blocks, dict(kwargs), self.namespace)
        cls = self.namespace[name]
        params = _positional(cls)
        if not params:
            raise Unsupported(f"{name} takes no parameters")
        by_name = _by_name(name, params, kwargs, defaults)
        given: Any
        if form == 0:
            given = [pair for b in blocks for pair in self._pair_list(b)]
        elif form == 1:
            given = [self._pair_list(b) for b in blocks]
        elif form == 2 and "Sequential" in self.namespace:
            given = self.namespace["Sequential"](*blocks)
        else:
            raise Unsupported(f"{name}: none of the parameter forms ({', '.join(OPTIMIZER_FORMS)}) worked")
        if form:
            self.notes.add(f"{name} is built from {OPTIMIZER_FORMS[form]}")
        return cls(**{params[0].name: given, **by_name})

    def _pair_list(self, block: Any) -> list[Any]:
        fn = next(
            (getattr(block, m) for m in ("param", "params", "parameters") if callable(getattr(block, m, None))), None
        )
        return list(fn()) if fn is not None else []

    def step(self, optimizer: Any) -> None:
        if (hook := self._user("step")) is not None:
            hook(optimizer)
            return
        for method in ("step", "update"):
            fn = getattr(optimizer, method, None)
            if callable(fn):
                if method != "step":
                    self.notes.add(f"the optimizer steps with {method}()")
                fn()
                return
        raise Unsupported("the optimizer has neither step() nor update()")
