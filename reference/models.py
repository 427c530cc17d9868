"""torch.nn twins of :mod:`impl.models`: same layers, same order, same state_dict keys."""

from __future__ import annotations

from torch import nn

from . import (
    Add,
    Concat,
    Conv2d,
    ConvTranspose2d,
    Identity,
    LeakyReLU,
    MaxPool2d,
    ReLU,
    Sequential,
    Shift,
    Sigmoid,
    Upsampling,
)

UPSAMPLINGS = ("nearest", "transpose")


def _up(in_channels: int, out_channels: int, upsampling: str) -> list[nn.Module]:
    if upsampling == "nearest":
        return [Upsampling(scale_factor=2), Conv2d(in_channels, out_channels, 3, padding=1)]
    return [ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)]


def course_network(upsampling: str = "nearest", channels: int = 48) -> nn.Sequential:
    """The EE-559 network of :func:`impl.models.course_network`, in torch.nn."""
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {upsampling!r}")
    return Sequential(
        Conv2d(3, channels, 3, stride=2, padding=1),
        ReLU(),
        Conv2d(channels, channels, 3, stride=2, padding=1),
        ReLU(),
        *_up(channels, channels, upsampling),
        ReLU(),
        *_up(channels, 3, upsampling),
        Sigmoid(),
    )


def _unet_level(in_channels: int, width: int, depth: int) -> nn.Sequential:
    encode = [Conv2d(in_channels, width, 3, padding=1), LeakyReLU(0.1)]
    if depth == 0:
        return Sequential(*encode, Conv2d(width, width, 3, padding=1), LeakyReLU(0.1))
    inner = Sequential(MaxPool2d(2), _unet_level(width, width, depth - 1), Upsampling(scale_factor=2))
    return Sequential(*encode, Concat(inner, Identity()), Conv2d(2 * width, width, 3, padding=1), LeakyReLU(0.1))


def unet(depth: int = 3, width: int = 48, channels: int = 3, residual: bool = False) -> nn.Module:
    """The U-Net of :func:`impl.models.unet`, in torch.nn."""
    if depth < 0 or width < 1:
        raise ValueError(f"unet needs depth >= 0 and width >= 1, got depth={depth}, width={width}")
    body = Sequential(_unet_level(channels, width, depth), Conv2d(width, channels, 1))
    return Add(Sequential(Shift(-0.5), body), Identity()) if residual else body
