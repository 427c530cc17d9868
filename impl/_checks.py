"""Argument normalisation and input checks shared by the blocks (torch's ``_pair`` and friends)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from .errors import DTypeError, ShapeError

IntPair = int | tuple[int, int]
FLOAT_DTYPES = ("torch.float16", "torch.bfloat16", "torch.float32", "torch.float64")


def pair(value: IntPair | Sequence[int], name: str, minimum: int = 1) -> tuple[int, int]:
    """Normalise an int or a 2-sequence of ints to a pair, checking each is ``>= minimum``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        value = (value, value)
    if (
        not isinstance(value, Sequence)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {tuple(value)}")
    return (value[0], value[1])


def positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_float_tensor(x: object, layer: str, name: str = "input") -> Tensor:
    """A floating-point tensor, or a DTypeError naming the layer and what it got."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if str(x.dtype) not in FLOAT_DTYPES:
        raise DTypeError(f"{layer}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_image(x: object, layer: str, channels: int | None, like: Tensor | None) -> Tensor:
    """Check a (N, C, H, W) or (C, H, W) input; ``like`` is a parameter it must match."""
    x = check_float_tensor(x, layer)
    if x.dim() not in (3, 4):
        raise ShapeError(
            f"{layer}: expected a 3D (C, H, W) or 4D (N, C, H, W) input, got {x.dim()}D input of shape {tuple(x.shape)}"
        )
    if min(x.shape[-2:]) < 1:
        raise ShapeError(f"{layer}: expected a non-empty image (H, W >= 1), got input of shape {tuple(x.shape)}")
    if channels is not None and x.shape[-3] != channels:
        raise ShapeError(f"{layer}: expected input with {channels} channels (dim -3), got shape {tuple(x.shape)}")
    if like is not None and (x.dtype != like.dtype or x.device != like.device):
        raise DTypeError(
            f"{layer}: input is {x.dtype} on {x.device} but the parameters are "
            f"{like.dtype} on {like.device}; convert one with .to()"
        )
    return x
