"""Finding a block's parameters and gradients, however a student kept them: ``param()`` /
``params()`` / ``parameters()`` giving pairs, flat ``[W, dW]`` or ``[W, b, dW, db]`` lists,
tensors carrying ``.grad``, wrapper objects (``.value``, ``.data``) or placeholders; gradients
in attributes (``grad_weight``, ``dW``, ...) matched by shape; weights stored in another layout
(flat, ``(in, out, k, k)``, a flipped kernel), converted both ways. Runs in the child process."""

from __future__ import annotations

from typing import Any

from torch import Tensor

Pair = tuple[Tensor, Tensor | None]
PARAM_METHODS = ("param", "params", "parameters", "get_params", "get_parameters")
WEIGHT_ATTRS = ("weight", "weights", "W", "w", "kernel", "kernels", "filters")
BIAS_ATTRS = ("bias", "biases", "b")
WRAPPED = ("value", "data", "tensor", "val", "param", "w")
LAYOUTS = ("torch", "flat", "transposed", "flipped", "transposed+flipped")


class Unsupported(Exception):
    """The checker cannot drive the target this way (an argument or a form it lacks)."""


def _unwrap(item: Any) -> Pair | None:
    """A parameter as (tensor, gradient), from a tensor, a pair, a 1-list or a wrapper object."""
    if isinstance(item, Tensor):
        return item, item.grad
    if isinstance(item, (tuple, list)):  # a pair of tensors, or of wrappers each holding one
        first = _tensor_in(item[0]) if item else None
        if first is None:
            return None  # (None, None), ([], []): a placeholder
        grad = _tensor_in(item[1]) if len(item) >= 2 else None
        return first, grad if grad is not None else first.grad
    value = _tensor_in(item)  # a wrapper object, its gradient beside it or on the tensor
    if value is None:
        return None
    grad = getattr(item, "grad", None)
    return value, grad if isinstance(grad, Tensor) else value.grad


def listed(returned: Any) -> list[Any]:
    """What a parameter method returned, as a list: None is empty, a bare tensor is one item
    (``tensor or []`` would raise: a tensor of several values has no truth value)."""
    if returned is None:
        return []
    return [returned] if isinstance(returned, Tensor) else list(returned)


def _tensor_in(item: Any) -> Tensor | None:
    """A tensor, or the one a wrapper object holds (``.value``, ``.data``, ...)."""
    if isinstance(item, Tensor):
        return item
    return next((v for v in (getattr(item, a, None) for a in WRAPPED) if isinstance(v, Tensor)), None)


def _flat_pairs(items: list[Any]) -> list[Pair] | None:
    """``[W, dW]`` / ``[W, b, dW, db]``: tensors, the second half shaped like the first."""
    if not items or len(items) % 2 or not all(isinstance(t, Tensor) for t in items):
        return None
    half = len(items) // 2
    if any(t.grad is not None for t in items) or any(items[i].shape != items[i + half].shape for i in range(half)):
        return None
    return [(items[i], items[i + half]) for i in range(half)]


def _to_torch(t: Tensor, layout: str, shape: tuple[int, ...] | None) -> Tensor:
    if layout == "flat" and shape is not None:
        return t.reshape(shape)
    if "transposed" in layout:
        t = t.transpose(0, 1)
    return t.flip(-1, -2) if "flipped" in layout else t


def _from_torch(t: Tensor, layout: str, stored: tuple[int, ...]) -> Tensor:
    if layout == "flat":
        return t.reshape(stored)
    if "transposed" in layout:
        t = t.transpose(0, 1)
    return t.flip(-1, -2) if "flipped" in layout else t


def auto_layout(stored: tuple[int, ...], wanted: tuple[int, ...]) -> str | None:
    """The layout a shape alone implies (None: the values cannot be stored there)."""
    if stored == wanted:
        return "torch"
    if len(wanted) == 4 and stored == (wanted[1], wanted[0], *wanted[2:]):
        return "transposed"
    numel = 1
    for s in wanted:
        numel *= s
    stored_numel = 1
    for s in stored:
        stored_numel *= s
    return "flat" if stored_numel == numel else None


class ParamReader:
    """Parameters and gradients by torch's names (the 1-D tensor is the bias, the other the
    weight), in torch's layout whatever the target's."""

    def __init__(self) -> None:
        self.notes: set[str] = set()
        self.layout: str | None = None  # forced by the checker's layout probe; None: by shape
        self.used_layout = "torch"  # the weight's layout in the last set_params

    def _user(self, name: str) -> Any:  # pragma: no cover (the Adapter's)
        return None

    def _pairs(self, block: Any) -> list[Pair]:
        for method in PARAM_METHODS:
            fn = getattr(block, method, None)
            if callable(fn):
                if method != "param":
                    self.notes.add(f"parameters read with {method}()")
                return self._from_items(block, listed(fn()))
        attrs = [getattr(block, a, None) for a in (*WEIGHT_ATTRS, *BIAS_ATTRS)]
        return [self._with_grad(block, t, t.grad) for t in attrs if isinstance(t, Tensor)]

    def _from_items(self, block: Any, items: list[Any]) -> list[Pair]:
        flat = _flat_pairs(items)
        if flat is not None:
            self.notes.add("param() gives a flat list: parameters, then their gradients")
            return flat
        pairs = [p for p in (_unwrap(i) for i in items) if p is not None]
        if items and isinstance(items[0], Tensor):
            self.notes.add("parameters are tensors carrying .grad")
        return [self._with_grad(block, p, g) for p, g in pairs]

    def _with_grad(self, block: Any, p: Tensor, g: Tensor | None) -> Pair:
        """A gradient missing from the pair: the block's gradient-named attribute of p's shape."""
        if g is not None:
            return p, g
        for name, value in vars(block).items() if hasattr(block, "__dict__") else ():
            low = name.lower()
            if isinstance(value, Tensor) and value is not p and value.shape == p.shape:
                if "grad" in low or low.startswith("d"):
                    self.notes.add(f"{type(block).__name__}: gradient kept in attribute {name}")
                    return p, value
        return p, None

    def _named(self, block: Any) -> dict[str, Pair]:
        pairs = self._pairs(block)
        named: dict[str, Pair] = {}
        for p, g in pairs:
            named.setdefault("bias" if p.dim() == 1 else "weight", (p, g))
        if len(pairs) == 2 and pairs[0][0].dim() == 1:
            self.notes.add("param() gives bias then weight")
        return named

    def _layout(self, block: Any, name: str, stored: Tensor) -> str:
        shapes = getattr(block, "_n2n_shapes", {})
        if name != "weight" or name not in shapes:
            return "torch"
        forced = getattr(block, "_n2n_layout", None) or self.layout
        return forced or auto_layout(tuple(stored.shape), shapes[name]) or "torch"

    def get_params(self, block: Any) -> dict[str, Tensor]:
        if (hook := self._user("get_params")) is not None:
            return dict(hook(block))
        shapes = getattr(block, "_n2n_shapes", {})
        out = {}
        for k, (p, _) in self._named(block).items():
            out[k] = _to_torch(p, self._layout(block, k, p), shapes.get(k))
        return out

    def set_params(self, block: Any, values: dict[str, Tensor]) -> None:
        """Torch's values into the target's tensors (in place: the target keeps its references);
        a gradient buffer follows its parameter's dtype, never dropped."""
        if (hook := self._user("set_params")) is not None:
            hook(block, values)
            return
        current = self._named(block)
        try:
            block._n2n_shapes = {k: tuple(v.shape) for k, v in values.items()}
            block._n2n_layout = self.layout
        except AttributeError:  # a block with __slots__: layouts by shape only
            pass
        for name, value in values.items():
            if name not in current:
                raise Unsupported(f"no parameter {name!r} found (found {sorted(current)})")
            p, g = current[name]
            layout = self.layout if name == "weight" and self.layout else auto_layout(tuple(p.shape), value.shape)
            if layout is None:
                raise Unsupported(f"{name}: stored as {tuple(p.shape)}, torch's layout is {tuple(value.shape)}")
            if name == "weight":
                self.used_layout = layout
            if layout != "torch" and not (name == "weight" and self.layout):  # (a layout tried: said if kept)
                self.notes.add(f"{type(block).__name__}: {name} stored in another layout ({layout}); converted")
            stored = _from_torch(value, layout, tuple(p.shape)).clone()
            if stored.shape != p.shape:
                raise Unsupported(f"{name}: stored as {tuple(p.shape)}, not in the {layout} layout")
            if p.grad is not None and p.grad.dtype != stored.dtype:
                grad, p.grad = p.grad, None
                p.data = stored
                p.grad = grad.to(stored.dtype)
            else:
                p.data = stored
            if g is not None and g is not p.grad and g.dtype != stored.dtype:
                g.data = g.data.to(stored.dtype)

    def get_grads(self, block: Any) -> dict[str, Tensor | None]:
        if (hook := self._user("get_grads")) is not None:
            return dict(hook(block))
        shapes = getattr(block, "_n2n_shapes", {})
        out: dict[str, Tensor | None] = {}
        for k, (p, g) in self._named(block).items():
            g = g if g is not None else p.grad
            out[k] = None if g is None else _to_torch(g, self._layout(block, k, p), shapes.get(k))
        return out

    def zero_grad(self, block: Any) -> None:
        if (hook := self._user("zero_grad")) is not None:
            hook(block)
            return
        fn = getattr(block, "zero_grad", None)
        if callable(fn):
            fn()
            return
        self.clear_grads(block)

    def clear_grads(self, block: Any) -> None:
        """Zero the gradient tensors in place (the checker's own zeroing, not the target's)."""
        for _, (p, g) in self._named(block).items():
            g = g if g is not None else p.grad
            if g is not None:
                g.zero_()

    def pair_list(self, block: Any) -> list[Any]:
        """What the block's own parameter method returns (for its optimizer), placeholders such
        as ``(None, None)`` left out: a parameterless block then gives nothing to step."""
        fn = next((getattr(block, m) for m in PARAM_METHODS if callable(getattr(block, m, None))), None)
        items = listed(fn()) if fn is not None else []
        return items if _flat_pairs(items) else [i for i in items if _unwrap(i) is not None]
