"""torch.nn twins of :mod:`impl.models`: same layers, same order, same state_dict keys."""

from __future__ import annotations

from torch import nn

from . import Conv2d, ConvTranspose2d, ReLU, Sequential, Sigmoid, Upsampling

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
