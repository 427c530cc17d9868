"""One entry per block (in the style of torch's ModuleInfo): how to build it in impl and in its
torch.nn mirror, and sample inputs. Generic checks in ``test_registry.py`` run over all of it, so
a new block gets every check by adding one entry here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import torch

import impl
import impl._gemm
import impl.models
import reference
import reference.models


@dataclass(frozen=True)
class Sample:
    """A construction (``args``/``kwargs`` for ``block`` in impl and reference) and an input shape."""

    block: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    shape: tuple[int, ...] = (2, 4, 8, 6)
    family: str = "default"
    image: bool = True  # (N, C, H, W) input: unbatched/channels_last variants apply
    factory: Callable[[ModuleType], Any] | None = None  # for blocks built from other blocks

    def build(self, namespace: ModuleType) -> Any:
        if self.factory is not None:
            return self.factory(namespace)
        if self.block in ("course_network", "unet"):
            return getattr(namespace.models, self.block)(*self.args, **self.kwargs)
        return getattr(namespace, self.block)(*self.args, **self.kwargs)

    @property
    def id(self) -> str:
        args = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())])
        return f"{self.block}({args})"


SAMPLES = [
    Sample("Conv2d", (4, 6, 3), {"stride": 2, "padding": 1}, family="strided"),
    Sample("Conv2d", (4, 6, 3), {"padding": 1}, family="stride 1"),
    Sample(
        "Conv2d", (4, 6, (2, 3)), {"padding": "same", "dilation": 2, "padding_mode": "reflect"}, family="same, reflect"
    ),
    Sample(
        "Conv2d",
        (4, 6, 3),
        {"groups": 2, "bias": False, "padding": (1, 2), "padding_mode": "circular"},
        family="groups, circular",
    ),
    Sample(
        "Conv2d", (4, 4, 3), {"groups": 4, "padding_mode": "replicate", "padding": 1}, family="depthwise, replicate"
    ),
    # the engine's remaining decisions (impl._gemm.BOUNDARIES): few outputs at a stride; one strided tap
    Sample("Conv2d", (8, 1, 3), {"stride": 2, "padding": 1}, shape=(2, 8, 8, 6), family="strided, few outputs"),
    Sample("Conv2d", (16, 1, 3), {"stride": 2}, shape=(2, 16, 7, 6), family="strided, few outputs, sub-pixel"),
    Sample("Conv2d", (8, 1, (3, 2)), {"stride": 2, "padding": 1}, shape=(2, 8, 7, 6), family="strided, 3x2"),
    Sample("Conv2d", (4, 6, 1), {"stride": 2}, family="strided, one tap"),
    Sample("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1}, family="strided"),
    Sample("ConvTranspose2d", (4, 6, 3), {"dilation": 2, "output_padding": 1}, family="stride 1, dilated"),
    Sample("ConvTranspose2d", (4, 6, 2), {"stride": 3, "groups": 2, "bias": False}, family="groups"),
    Sample("Upsampling", (), {"scale_factor": 2}, family="integer"),
    Sample("Upsampling", (), {"scale_factor": (1.5, 0.5), "mode": "nearest-exact"}, family="fractional"),
    Sample("Upsampling", (), {"size": (5, 11)}, family="size"),
    Sample("MaxPool2d", (2,), family="2x2"),
    Sample("MaxPool2d", (3,), {"stride": 2, "padding": 1, "ceil_mode": True}, family="overlapping, ceil"),
    Sample("ReLU", image=False),
    Sample("LeakyReLU", (0.1,), image=False),
    Sample("Sigmoid", image=False),
    Sample("Tanh", image=False),
    Sample("Sequential", family="empty", image=False),
    Sample("Identity", image=False),
    Sample("Shift", (-0.5,), image=False),
    Sample(
        "Concat", factory=lambda m: m.Concat(m.Sequential(m.Conv2d(4, 2, 1), m.ReLU()), m.Identity()), family="skip"
    ),
    Sample("Concat", factory=lambda m: m.Concat(m.Tanh(), m.Sigmoid(), dim=-1), image=False, family="last dim"),
    Sample(
        "Add",
        factory=lambda m: m.Add(m.Sequential(m.Conv2d(4, 4, 3, padding=1), m.ReLU()), m.Identity()),
        family="residual",
    ),
    Sample("Add", factory=lambda m: m.Add(m.Tanh(), m.Sigmoid(), m.LeakyReLU(0.1)), image=False, family="three"),
    Sample("course_network", ("nearest",), {"channels": 8}, shape=(2, 3, 8, 8), family="nearest"),
    Sample("course_network", ("transpose",), {"channels": 8}, shape=(2, 3, 8, 8), family="transpose"),
    Sample("unet", (2, 6), shape=(2, 3, 8, 4)),
    Sample("unet", (1, 4), {"residual": True}, shape=(2, 3, 4, 6), family="residual"),
]

# The shipped networks (impl.models at width 48: course_network with either upsampling, unet(3, 48)
# plain and residual) and every distinct convolution, transposed convolution, pooling and
# upsampling inside them, at their real channel counts, on the image sizes an 8x8 input gives
# them (small, so that every generic check stays quick).
PRODUCT = "product shapes"
SHIPPED_SAMPLES = [
    Sample("course_network", ("nearest",), {"channels": 48}, shape=(2, 3, 8, 8), family=PRODUCT),
    Sample("course_network", ("transpose",), {"channels": 48}, shape=(2, 3, 8, 8), family=PRODUCT),
    Sample("unet", (3, 48), shape=(2, 3, 8, 8), family=PRODUCT),
    Sample("unet", (3, 48), {"residual": True}, shape=(2, 3, 8, 8), family=PRODUCT),
]
PRODUCT_SAMPLES = [
    Sample("Conv2d", (3, 48, 3), {"stride": 2, "padding": 1}, shape=(2, 3, 8, 8), family=PRODUCT),
    Sample("Conv2d", (48, 48, 3), {"stride": 2, "padding": 1}, shape=(2, 48, 4, 4), family=PRODUCT),
    Sample("Conv2d", (48, 48, 3), {"padding": 1}, shape=(2, 48, 4, 4), family=PRODUCT),
    Sample("Conv2d", (48, 3, 3), {"padding": 1}, shape=(2, 48, 8, 8), family=PRODUCT),
    Sample("Conv2d", (3, 48, 3), {"padding": 1}, shape=(2, 3, 8, 8), family=PRODUCT),
    Sample("Conv2d", (96, 48, 3), {"padding": 1}, shape=(2, 96, 4, 4), family=PRODUCT),
    Sample("Conv2d", (48, 3, 1), shape=(2, 48, 8, 8), family=PRODUCT),
    Sample("ConvTranspose2d", (48, 48, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 48, 2, 2), PRODUCT),
    Sample("ConvTranspose2d", (48, 3, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (2, 48, 4, 4), PRODUCT),
    Sample("MaxPool2d", (2,), shape=(2, 48, 4, 4), family=PRODUCT),
    Sample("Upsampling", (), {"scale_factor": 2}, shape=(2, 48, 2, 2), family=PRODUCT),
    *SHIPPED_SAMPLES,
]
SAMPLES += PRODUCT_SAMPLES

# Past the engine's thresholds at their real values (impl._gemm: BLOCK_ROWS, PATCH_FLOATS): the
# 48 -> 48 convolutions on images large enough for more than one block of rows per tap (or of
# Winograd tiles), and one too narrow for Winograd whose patches do not fit either (the weight
# gradient asks whether Winograd pays only then). Too large for every generic check: float32
# parity only (tests/test_product_shapes.py).
ROW_BLOCK_SAMPLES = [
    Sample("Conv2d", (48, 48, 3), {"padding": 1}, shape=(1, 48, 96, 96), family="row blocks"),
    Sample("Conv2d", (8, 8, 3), {"padding": 1}, shape=(1, 8, 128, 128), family="row blocks"),
    Sample(
        "ConvTranspose2d", (48, 48, 3), {"stride": 2, "padding": 1, "output_padding": 1}, (1, 48, 92, 92), "row blocks"
    ),
]

# Blocks exported by impl that need more than one input, or no input: checked elsewhere.
CHECKED_ELSEWHERE = {"MSELoss": "tests/test_elementwise.py (two inputs)", "Module": "abstract base"}


def all_blocks() -> set[str]:
    """Class names (aliases such as MSE count once) of every Module subclass impl exports."""
    classes = [getattr(impl, name) for name in impl.__all__]
    return {c.__name__ for c in classes if isinstance(c, type) and issubclass(c, impl.Module)}


def pair(sample: Sample) -> tuple[Any, Any]:
    return sample.build(impl), sample.build(reference)


def thresholds_seen(samples: list[Sample]) -> dict[tuple[str, str], Counter[bool]]:
    """For every (direction, test) of impl._gemm.BOUNDARIES: how often a forward and backward
    of each sample (float32 and float64, as the registry's parity runs them) found it holding
    (True) and failing (False). (Where torch's own product is reproduced, impl._exact, the
    engine is not consulted: float32 at batch 1 and a few transposed shapes.)"""
    seen: set[tuple[str, str, bool]] = set()
    counts: dict[tuple[str, str], Counter[bool]] = {b: Counter() for b in impl._gemm.BOUNDARIES}
    previous, impl._gemm.TRACE = impl._gemm.TRACE, seen
    try:
        for sample in samples:
            seen.clear()
            for dtype in (torch.float32, torch.float64):
                torch.manual_seed(0)
                mod = sample.build(impl).to(dtype=dtype)
                out = mod(torch.randn(sample.shape, dtype=dtype))
                mod.backward(torch.ones_like(out))
            for direction, test, outcome in seen:
                counts[direction, test][outcome] += 1
    finally:
        impl._gemm.TRACE = previous
    return counts
