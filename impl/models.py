"""Ready networks built from the blocks."""

from __future__ import annotations

from .activation import ReLU, Sigmoid
from .container import Sequential
from .conv import Conv2d, ConvTranspose2d
from .module import Module
from .upsample import Upsampling

UPSAMPLINGS = ("nearest", "transpose")


def _up(in_channels: int, out_channels: int, upsampling: str) -> list[Module]:
    """Double the resolution: nearest Upsampling + 3x3 Conv2d, or one ConvTranspose2d."""
    if upsampling == "nearest":
        return [Upsampling(scale_factor=2), Conv2d(in_channels, out_channels, 3, padding=1)]
    return [ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)]


def course_network(upsampling: str = "nearest", channels: int = 48) -> Sequential:
    """The EE-559 Noise2Noise network: two stride-2 3x3 convolutions down, two upsamplings up.

    ``Conv2d(3, 48, 3, s2, p1), ReLU, Conv2d(48, 48, 3, s2, p1), ReLU, up(48, 48), ReLU,
    up(48, 3), Sigmoid`` where ``up`` is ``Upsampling(scale_factor=2) + Conv2d(3, padding=1)``
    (``upsampling='nearest'``) or ``ConvTranspose2d(3, stride=2, padding=1, output_padding=1)``
    (``upsampling='transpose'``). Input and output: (N, 3, H, W) in [0, 1], H and W multiples
    of 4.
    """
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
