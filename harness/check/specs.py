"""What the checker knows of each block: torch's constructor defaults, a base configuration and
the landmark variations around it, how to draw more, how to shrink a configuration, torch's
answer (computed here, with autograd, never in the target's process), and the wrong answers of
known bugs, each computed by torch too, to name a diagnosis."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torch.nn.grad
from torch import Tensor

Config = dict[str, Any]
Reference = dict[str, Tensor]

CONV_DEFAULTS: dict[str, Any] = {
    "in_channels": None,
    "out_channels": None,
    "kernel_size": None,
    "stride": 1,
    "padding": 0,
}
CONV_DEFAULTS |= {"dilation": 1, "bias": True}
TRANSPOSE_DEFAULTS: dict[str, Any] = {
    "in_channels": None,
    "out_channels": None,
    "kernel_size": None,
    "stride": 1,
    "padding": 0,
}
TRANSPOSE_DEFAULTS |= {"output_padding": 0, "bias": True, "dilation": 1}  # torch's order
SHAPE_KEYS = ("batch", "size")


def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def _conv_valid(c: Config) -> bool:
    (h, w), (kh, kw) = c["size"], _pair(c["kernel_size"])
    p, d = c["padding"], c["dilation"]
    return h + 2 * p >= d * (kh - 1) + 1 and w + 2 * p >= d * (kw - 1) + 1


def _transpose_valid(c: Config) -> bool:
    # torch allows output_padding < max(stride, dilation); below the stride is what a fold-based
    # block can do and what networks use, so a refusal beyond it is no finding
    return c["output_padding"] < c["stride"] and _transpose_size(c)[0] > 0


def _transpose_size(c: Config) -> tuple[int, int]:
    kh, kw = _pair(c["kernel_size"])
    s, p, d, op = c["stride"], c["padding"], c["dilation"], c["output_padding"]
    h, w = c["size"]
    return ((h - 1) * s - 2 * p + d * (kh - 1) + op + 1, (w - 1) * s - 2 * p + d * (kw - 1) + op + 1)


@dataclass
class Spec:
    """One block kind. ``torch_fn(config, params, x)`` is torch's forward; ``alternatives``
    gives {diagnosis: function like ``torch_fn``} for bugs whose wrong answer torch can compute."""

    name: str
    defaults: dict[str, Any]
    base: Config
    variations: list[Config]
    draw: Callable[[random.Random], Config]
    torch_fn: Callable[[Config, dict[str, Tensor], Tensor], Tensor]
    valid: Callable[[Config], bool] = lambda c: True
    weight_shape: Callable[[Config], tuple[int, ...]] | None = None
    shrink: dict[str, list[Any]] = field(default_factory=dict)
    alternatives: dict[str, Callable[[Config, dict[str, Tensor], Tensor], Tensor]] = field(default_factory=dict)

    def kwargs(self, c: Config) -> dict[str, Any]:
        return {k: c[k] for k in self.defaults if k in c}

    def configs(self, extra: int, seed: int) -> list[Config]:
        rng = random.Random(seed)
        landmarks = [{**self.base, **v} for v in self.variations]
        drawn = [{**self.base, **self.draw(rng)} for _ in range(extra)]
        return [c for c in landmarks + drawn if self.valid(c)]

    def params(self, c: Config, gen: torch.Generator, dtype: torch.dtype) -> dict[str, Tensor]:
        if self.weight_shape is None:
            return {}
        out = {"weight": torch.randn(self.weight_shape(c), generator=gen, dtype=dtype)}
        if c.get("bias", False):
            out["bias"] = torch.randn(int(c["out_channels"]), generator=gen, dtype=dtype)
        return out

    def input(self, c: Config, gen: torch.Generator, dtype: torch.dtype) -> Tensor:
        channels = c.get("in_channels") or c.get("channels") or 2
        x = torch.randn(int(c["batch"]), int(channels), *c["size"], generator=gen, dtype=dtype)
        if c.get("large"):  # |x| in the hundreds, 800 and -800 always: exp() overflows in a naive sigmoid
            x = x.sign() * (100 + 700 * x.abs().clamp(max=1))
            x.view(-1)[0], x.view(-1)[-1] = 800.0, -800.0
        if c.get("negative"):  # every window negative: zero padding would win a max
            x = -x.abs() - 1
        return x.round() if c.get("ties") else x  # equal values, and exact zeros (ReLU's kink)

    def reference(self, c: Config, params: dict[str, Tensor], x: Tensor, g: Tensor | None, fn: Any = None) -> Reference:
        """torch's output, input gradient and parameter gradients for upstream ``g``."""
        fn = fn or self.torch_fn
        xr = x.clone().requires_grad_(True)
        pr = {k: v.clone().requires_grad_(True) for k, v in params.items()}
        out = fn(c, pr, xr)
        result = {"output": out.detach()}
        if g is not None and out.requires_grad:
            grads = torch.autograd.grad(out, [xr, *pr.values()], g, allow_unused=True)
            result["input gradient"] = grads[0] if grads[0] is not None else torch.zeros_like(x)
            for name, grad in zip(pr, grads[1:]):
                result[f"gradient of {name}"] = grad if grad is not None else torch.zeros_like(pr[name])
        return result


def _conv(c: Config, p: dict[str, Tensor], x: Tensor) -> Tensor:
    return F.conv2d(x, p["weight"], p.get("bias"), c["stride"], c["padding"], c["dilation"])


def _transpose(c: Config, p: dict[str, Tensor], x: Tensor) -> Tensor:
    return F.conv_transpose2d(
        x, p["weight"], p.get("bias"), c["stride"], c["padding"], c["output_padding"], 1, c["dilation"]
    )


class _InputGradWith(torch.autograd.Function):
    """A convolution whose input gradient uses another kernel (a bug's), as torch computes it."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, wrong: Tensor, c: Config) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight, wrong)
        ctx.c = c
        return F.conv2d(x, weight, None, c["stride"], c["padding"], c["dilation"])

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None, None]:  # type: ignore[override]
        x, weight, wrong = ctx.saved_tensors
        c = ctx.c
        gx = torch.nn.grad.conv2d_input(x.shape, wrong, g, c["stride"], c["padding"], c["dilation"])
        gw = torch.nn.grad.conv2d_weight(x, weight.shape, g, c["stride"], c["padding"], c["dilation"])
        return gx, gw, None, None


def _viewed_kernel(c: Config, p: dict[str, Tensor], x: Tensor) -> Tensor:
    """The input gradient with the kernel viewed as (in*k*k, out), not transposed to it."""
    w = p["weight"]
    wrong = w.detach().reshape(w.shape[1], w.shape[2], w.shape[3], w.shape[0]).permute(3, 0, 1, 2)
    out = _InputGradWith.apply(x, w, wrong, c)
    return out if "bias" not in p else out + p["bias"].view(1, -1, 1, 1)


def _reshaped_kernel(c: Config, p: dict[str, Tensor], x: Tensor) -> Tensor:
    """The input gradient with the kernel reshaped to (C_in, C_out, kh, kw) instead of transposed."""
    w = p["weight"]
    wrong = w.detach().reshape(w.shape[1], w.shape[0], *w.shape[2:]).transpose(0, 1)
    out = _InputGradWith.apply(x, w, wrong, c)
    return out if "bias" not in p else out + p["bias"].view(1, -1, 1, 1)


def _with(fn: Callable[..., Tensor], **fixed: Any) -> Callable[..., Tensor]:
    """``fn`` with some arguments at other values (an argument the bug ignores)."""
    return lambda c, p, x: fn({**c, **fixed}, p, x)


def _conv_draw(rng: random.Random) -> Config:
    return {
        "batch": rng.randint(1, 3),
        "in_channels": rng.randint(1, 4),
        "out_channels": rng.randint(1, 4),
        "size": (rng.randint(3, 9), rng.randint(3, 9)),
        "kernel_size": rng.choice([1, 2, 3, (1, 3), (3, 2)]),
        "stride": rng.randint(1, 3),
        "padding": rng.randint(0, 2),
        "dilation": rng.randint(1, 2),
        "bias": rng.random() < 0.8,
    }


CONV_BASE: Config = {"batch": 2, "in_channels": 2, "out_channels": 3, "size": (7, 9), "kernel_size": 3, "stride": 1}
CONV_BASE |= {"padding": 0, "dilation": 1, "bias": True}
CONV_VARIATIONS: list[Config] = [
    {},
    {"batch": 1},
    {"in_channels": 1, "out_channels": 1},
    {"in_channels": 3, "out_channels": 3},
    {"in_channels": 4, "out_channels": 2},
    {"kernel_size": 1},
    {"kernel_size": 2},
    {"kernel_size": (2, 3)},
    {"stride": 2},
    {"stride": 3},
    {"stride": 2, "padding": 1},
    {"padding": 1},
    {"padding": 2},
    {"dilation": 2},
    {"dilation": 2, "padding": 2},
    {"size": (8, 8)},
    {"size": (9, 9), "stride": 2},
    {"size": (9, 7)},
    {"bias": False},
]
CONV_SHRINK: dict[str, list[Any]] = {
    "batch": [1],
    "in_channels": [1, 2],
    "out_channels": [1, 2],
    "size": [(3, 3), (4, 4), (5, 5), (3, 4), (5, 6), (6, 6), (7, 7)],
    "kernel_size": [1, 2, 3],
    "stride": [1, 2],
    "padding": [0, 1],
    "dilation": [1],
    "bias": [True],
}

SPECS: dict[str, Spec] = {}


def _register(spec: Spec) -> None:
    SPECS[spec.name] = spec


_register(
    Spec(
        "Conv2d",
        CONV_DEFAULTS,
        CONV_BASE,
        CONV_VARIATIONS,
        _conv_draw,
        _conv,
        _conv_valid,
        lambda c: (c["out_channels"], c["in_channels"], *_pair(c["kernel_size"])),
        CONV_SHRINK,
        {
            "argument ignored: stride": _with(_conv, stride=1),
            "argument ignored: padding": _with(_conv, padding=0),
            "argument ignored: dilation": _with(_conv, dilation=1),
            "transposed: the kernel reshaped instead of transposed": _reshaped_kernel,
            "kernel viewed as (in*k*k, out) instead of transposed": _viewed_kernel,
        },
    )
)
_register(
    Spec(
        "ConvTranspose2d",
        TRANSPOSE_DEFAULTS,
        {**CONV_BASE, "size": (4, 5), "output_padding": 0},
        [*CONV_VARIATIONS[:15], {"stride": 2, "output_padding": 1}, {"dilation": 2, "stride": 2, "output_padding": 1}]
        + [{"size": (5, 5)}, {"bias": False}],
        lambda rng: {**_conv_draw(rng), "size": (rng.randint(2, 6), rng.randint(2, 6)), "output_padding": 0},
        _transpose,
        _transpose_valid,
        lambda c: (c["in_channels"], c["out_channels"], *_pair(c["kernel_size"])),
        {**CONV_SHRINK, "size": [(2, 2), (3, 3), (2, 3), (4, 4), (4, 5)], "output_padding": [0]},
        {
            "argument ignored: stride": _with(_transpose, stride=1),
            "argument ignored: padding": _with(_transpose, padding=0),
            "argument ignored: dilation": _with(_transpose, dilation=1),
            "argument ignored: output_padding": _with(_transpose, output_padding=0),
        },
    )
)

ELEMENTWISE_BASE: Config = {"batch": 2, "channels": 3, "size": (5, 7)}
ELEMENTWISE_VARIATIONS: list[Config] = [{}, {"batch": 1}, {"channels": 1}, {"size": (4, 4)}, {"ties": True}]
ELEMENTWISE_SHRINK: dict[str, list[Any]] = {"batch": [1], "channels": [1], "size": [(1, 1), (2, 2), (2, 3)]}


def _elementwise_draw(rng: random.Random) -> Config:
    return {"batch": rng.randint(1, 3), "channels": rng.randint(1, 4), "size": (rng.randint(1, 6), rng.randint(1, 6))}


def _activation(name: str, fn: Callable[[Tensor], Tensor], derivative: Callable[[Tensor], Tensor]) -> Spec:
    """An elementwise block; its known bugs: the mask or derivative taken at the upstream gradient
    (the input gradient is then ``g * f'(g)``), or the derivative returned without the gradient."""
    saturating = name in ("Sigmoid", "Tanh")
    masked = not saturating  # ReLU's derivative is a mask
    return Spec(
        name,
        {"negative_slope": 0.01} if name == "LeakyReLU" else {},
        dict(ELEMENTWISE_BASE),
        ELEMENTWISE_VARIATIONS + ([{"large": True}] if saturating else []),
        _elementwise_draw,
        lambda c, p, x: fn(x),
        shrink=ELEMENTWISE_SHRINK,
        alternatives={
            "mask from the wrong tensor" if masked else "derivative at the upstream gradient": (
                lambda c, p, x: _upstream_derivative(x, derivative)
            ),
            "returns the mask" if masked else "returns the derivative": (
                lambda c, p, x: _derivative_only(x, derivative)
            ),
            "derivative of the upstream gradient, not multiplied by it": lambda c, p, x: _GradIs.apply(
                x, lambda x, g: derivative(g)
            ),
        },
    )


class _GradIs(torch.autograd.Function):
    """Identity forward whose backward returns ``rule(x, g)``: a bug's input gradient, as torch."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, rule: Any) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.rule = rule
        return x.clone()

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return ctx.rule(x, g), None


def _upstream_derivative(x: Tensor, derivative: Callable[[Tensor], Tensor]) -> Tensor:
    return _GradIs.apply(x, lambda x, g: g * derivative(g))


def _derivative_only(x: Tensor, derivative: Callable[[Tensor], Tensor]) -> Tensor:
    return _GradIs.apply(x, lambda x, g: derivative(x))


_register(_activation("ReLU", F.relu, lambda t: (t > 0).to(t.dtype)))
_register(_activation("Sigmoid", torch.sigmoid, lambda t: torch.sigmoid(t) * (1 - torch.sigmoid(t))))
_register(_activation("Tanh", torch.tanh, lambda t: 1 - torch.tanh(t) ** 2))
_register(
    _activation("LeakyReLU", lambda t: F.leaky_relu(t, 0.01), lambda t: torch.where(t > 0, 1.0, 0.01).to(t.dtype))
)
_register(
    Spec(
        "Upsampling",
        {"scale_factor": None},
        {**ELEMENTWISE_BASE, "scale_factor": 2},
        [*ELEMENTWISE_VARIATIONS, {"scale_factor": 3}],
        lambda rng: {**_elementwise_draw(rng), "scale_factor": rng.randint(2, 3)},
        lambda c, p, x: F.interpolate(x, scale_factor=c["scale_factor"], mode="nearest"),
        shrink={**ELEMENTWISE_SHRINK, "scale_factor": [2]},
    )
)
POOL_VARIATIONS: list[Config] = [{}, {"batch": 1}, {"channels": 1}, {"size": (4, 4)}, {"size": (7, 9)}]
POOL_VARIATIONS += [{"ties": True}, {"kernel_size": 3, "stride": 2, "padding": 1, "ties": True}]  # overlapping windows
POOL_VARIATIONS += [{"padding": 1, "negative": True}]  # padding must never win a max
_register(
    Spec(
        "MaxPool2d",
        {"kernel_size": None, "stride": None, "padding": 0},
        {**ELEMENTWISE_BASE, "size": (6, 8), "kernel_size": 2},
        POOL_VARIATIONS,
        lambda rng: {**_elementwise_draw(rng), "size": (rng.randint(2, 8), rng.randint(2, 8)), "kernel_size": 2},
        lambda c, p, x: F.max_pool2d(x, c["kernel_size"], c.get("stride"), c.get("padding", 0)),
        lambda c: min(c["size"]) >= c["kernel_size"] and 2 * c.get("padding", 0) <= c["kernel_size"],
        shrink={**ELEMENTWISE_SHRINK, "size": [(2, 2), (2, 4), (4, 4)]},
    )
)


def describe(c: Config) -> str:
    """A configuration as a user reads it: batch and image first, then the arguments."""
    head = f"batch {c['batch']}, image {c['size'][0]}x{c['size'][1]}"
    rest = ", ".join(f"{k}={v}" for k, v in c.items() if k not in SHAPE_KEYS)
    return f"{head}, {rest}" if rest else head
