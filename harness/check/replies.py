"""Every reply is checked before the checker uses it: the fields the request's operation allows,
their types and lengths, and each tensor a plain, dense CPU tensor with data (not meta, sparse,
quantized, nested, a subclass or one that carries autograd). A reply that fails is a finding
about the target ("forward returned a sparse tensor"), never a traceback of n2n. Every string
in it is escaped and shortened on the way (:func:`.capture.escape`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .capture import MESSAGE_LIMIT, escape

MAX_ITEMS = 1000  # notes, rule records, steps, blocks: far more than an honest reply holds

# what a field is called in a message ("forward returned ..."), by field name
SAID = {
    "output": "forward returned",
    "input_grad": "backward returned",
    "input_after": "the input after forward and backward is",
    "value": "the loss's forward returned",
    "grad": "the loss's backward returned",
    "grads": "a parameter's gradient is",
    "grads_initial": "a parameter's gradient before backward is",
    "grads_twice": "a parameter's gradient after two backwards is",
    "grads_zeroed": "a parameter's gradient after zero_grad is",
    "params": "a parameter after a step is",
    "losses": "the training's losses are",
    "blocks": "the blocks are",
}


def tensor_problem(t: Any) -> str | None:
    """What makes ``t`` unusable as an answer, or None."""
    if not isinstance(t, Tensor):
        return f"a {type(t).__name__}, not a tensor"
    if type(t) is not Tensor:
        return f"a {type(t).__name__} (a tensor subclass)"
    problems = (
        (t.is_meta, "a meta tensor (it holds no values)"),
        (t.layout != torch.strided, f"a tensor of layout {t.layout} (sparse), not a dense one"),
        (t.is_quantized, "a quantized tensor"),
        (t.is_nested, "a nested tensor"),
        (t.device.type != "cpu", f"a tensor on {t.device}, not on the CPU"),
        (t.requires_grad, "a tensor that requires grad (autograd)"),
    )
    return next((message for bad, message in problems if bad), None)


# field kinds: each returns what is wrong with a value, or None (strings are escaped in place
# by the caller, since they may be nested)
def _tensor(v: Any) -> str | None:
    return tensor_problem(v)


def _optional_tensor(v: Any) -> str | None:
    return None if v is None else tensor_problem(v)


def _tensors(v: Any) -> str | None:
    if not isinstance(v, dict) or len(v) > MAX_ITEMS:
        return f"a {type(v).__name__}, not a dict of tensors"
    if any(not isinstance(k, str) for k in v):
        return "a dict whose keys are not names"
    return next((f"{k}: {p}" for k, t in v.items() if (p := _optional_tensor(t))), None)


def _tensors_list(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) > MAX_ITEMS:
        return f"a {type(v).__name__}, not a list"
    return next((p for item in v if (p := _tensors(item))), None)


def _history(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) > MAX_ITEMS:
        return f"a {type(v).__name__}, not a list of steps"
    return next((p for step in v if (p := _tensors_list(step))), None)


def _floats(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) > MAX_ITEMS:
        return f"a {type(v).__name__}, not a list of numbers"
    bad = next((x for x in v if type(x) not in (float, int)), None)
    return None if bad is None else f"a list holding a {type(bad).__name__}"


def _strs(v: Any) -> str | None:
    if not isinstance(v, list) or len(v) > MAX_ITEMS or not all(isinstance(s, str) for s in v):
        return f"a {type(v).__name__}, not a list of strings"
    return None


def _names(v: Any) -> str | None:
    ok = isinstance(v, dict) and len(v) <= MAX_ITEMS and all(isinstance(x, str) for kv in v.items() for x in kv)
    return None if ok else f"a {type(v).__name__}, not a dict of names"


def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else f"a {type(v).__name__}, not a string"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"a {type(v).__name__}, not True or False"


def _record(keys: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, dict) or set(v) != set(keys) or not all(isinstance(v[k], str) for k in keys):
            return f"not a record of {', '.join(keys)}"
        return None

    return check


def _records(keys: tuple[str, ...]) -> Callable[[Any], str | None]:
    one = _record(keys)

    def check(v: Any) -> str | None:
        if not isinstance(v, list) or len(v) > MAX_ITEMS:
            return f"a {type(v).__name__}, not a list of records"
        return next((p for item in v if (p := one(item))), None)

    return check


def _error(v: Any) -> str | None:
    """An exception: its type, message and place, whose code raised it, and whether on purpose."""
    kinds = {"type": str, "message": str, "where": str, "whose": str, "refusal": bool}
    if not isinstance(v, dict) or not {"type", "message", "where"} <= set(v) <= set(kinds):
        return "not a record of type, message, where"
    return next((f"{k}: not a {t.__name__}" for k, t in kinds.items() if k in v and type(v[k]) is not t), None)


def _recipe_params(v: Any) -> str | None:
    ok = isinstance(v, dict) and len(v) <= MAX_ITEMS and all(isinstance(p, dict) for p in v.values())
    return None if ok else f"a {type(v).__name__}, not a dict of parameter places"


ERROR = _error
RULE_KEYS = ("block", "caller", "does", "where")
COMMON = {"error": ERROR, "unsupported": _str, "notes": _strs, "rule": _records(RULE_KEYS)}
FIELDS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    # (notes: every reply's)
    "load": {"blocks": _strs, "file": _str, "files": _strs, "classes": _names, "skipped": _names},
    "layer": {
        "params": _strs,
        "bias_arg": _str,
        "layout": _str,
        "output": _tensor,
        "input_grad": _optional_tensor,
        "input_after": _tensor,
        "backward_error": ERROR,
        **{k: _tensors for k in ("grads", "grads_initial", "grads_twice", "grads_zeroed")},
    },
    "backward_first": {"raised": _bool},
    "loss": {"value": _tensor, "grad": _optional_tensor, "swapped": _bool, "grad_unsupported": _str},
    "sequential": {"output": _tensor, "input_grad": _optional_tensor, "grads": _tensors_list, "params": _tensors_list},
    "sequential_params": {"param_counts": _floats, "param_error": ERROR},
    "optimizer": {"params": _history, "grads_changed": _bool, "phase": _str},
    "recipe": {
        "adapter": _bool,
        "module": _str,
        "class": _str,
        "call": _str,
        "params": _recipe_params,
        "layout": _str,
        "stateless": _bool,
    },
    "train": {"losses": _floats, "params": _history},
}
# an answer has these (or says why not: error / unsupported; a layer's backward_error)
REQUIRED = {
    "load": ("blocks", "file", "files"),
    "layer": ("output", "input_grad", "grads", "input_after"),
    "backward_first": ("raised",),
    "loss": ("value", "grad"),
    "sequential": ("output", "input_grad", "grads"),
    "optimizer": ("params",),
    "train": ("losses", "params"),
}


# lists as long as a field of the request: {op: {reply field: request field}}
LENGTHS = {
    "sequential": {"grads": "blocks"},
    "optimizer": {"params": "grads"},
    "train": {"params": "batches", "losses": "batches"},
}


def check(request: dict[str, Any], reply: dict[str, Any]) -> str | None:
    """What is wrong with ``reply`` to ``request``, or None; its strings are escaped and
    shortened in place."""
    op = request["op"]
    fields = {**COMMON, **FIELDS.get(op, {})}
    unknown = sorted(str(k) for k in reply if k not in fields)
    if unknown:
        return f"the reply has fields no request asks for ({escape(', '.join(unknown))})"
    for key, value in reply.items():
        problem = fields[key](value)
        if problem is not None:
            return f"{SAID.get(key, f'the reply field {key} is')} {problem}"
    if not any(k in reply for k in ("error", "unsupported")):
        required = ("output",) if "backward_error" in reply else REQUIRED.get(op, ())
        missing = [k for k in required if k not in reply]
        if missing:
            return f"the reply lacks {', '.join(missing)}"
    problem = _lengths(request, reply)
    if problem is not None:
        return problem
    for key, value in reply.items():
        reply[key] = _escaped(value, None if key in ("file", "files") else MESSAGE_LIMIT)
    return None


def _lengths(request: dict[str, Any], reply: dict[str, Any]) -> str | None:
    """Lists as long as the request asks (a forged short list would pass every comparison),
    each step of parameters one entry per block."""
    for key, asked in LENGTHS.get(request["op"], {}).items():
        if key in reply and len(reply[key]) != len(request[asked]):
            return f"{SAID.get(key, key)} {len(reply[key])} in number, not {len(request[asked])}"
    blocks = len(request.get("blocks", ()))
    if any(len(step) != blocks for step in reply.get("params", []) if request["op"] in ("optimizer", "train")):
        return f"{SAID['params']} not one entry per block of {blocks}"
    return None


def _escaped(value: Any, limit: int | None) -> Any:
    """``value`` with every string in it escaped (tensors and numbers as they are); paths are
    not shortened (one that had a control character in it no longer names a file: not read)."""
    if isinstance(value, str):
        return escape(value, limit)
    if isinstance(value, list):
        return [_escaped(v, limit) for v in value]
    if isinstance(value, dict):
        return {(escape(k, limit) if isinstance(k, str) else k): _escaped(v, limit) for k, v in value.items()}
    return value
