"""Ready networks built from the blocks."""

from __future__ import annotations

from .activation import LeakyReLU, ReLU, Sigmoid
from .container import Add, Concat, Identity, Sequential, Shift
from .conv import Conv2d, ConvTranspose2d
from .module import Module
from .pool import MaxPool2d
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


def _unet_level(in_channels: int, width: int, depth: int) -> Sequential:
    """(N, in, H, W) -> (N, width, H, W); below the top, a pooled branch comes back up and is
    concatenated with the features it started from (the skip connection)."""
    encode = [Conv2d(in_channels, width, 3, padding=1), LeakyReLU(0.1)]
    if depth == 0:
        return Sequential(*encode, Conv2d(width, width, 3, padding=1), LeakyReLU(0.1))
    inner = Sequential(MaxPool2d(2), _unet_level(width, width, depth - 1), Upsampling(scale_factor=2))
    return Sequential(*encode, Concat(inner, Identity()), Conv2d(2 * width, width, 3, padding=1), LeakyReLU(0.1))


def unet(depth: int = 3, width: int = 48, channels: int = 3, residual: bool = False) -> Module:
    """A Noise2Noise-style U-Net: 3x3 convolutions with LeakyReLU(0.1), max-pooling down,
    nearest upsampling up, skip connections by concatenation, a linear 1x1 convolution out.

    Args:
        depth: number of 2x poolings (H and W must be multiples of ``2**depth``). Default 3.
        width: channels of every level. Default 48.
        channels: image channels in and out. Default 3.
        residual: ``x + body(x - 0.5)``, built as ``Add(Sequential(Shift(-0.5), body),
            Identity())``: the body sees centred images and learns the correction (minus the
            noise) rather than the image, which trains faster. Default False (the paper's network).
    """
    if depth < 0 or width < 1:
        raise ValueError(f"unet needs depth >= 0 and width >= 1, got depth={depth}, width={width}")
    body = Sequential(_unet_level(channels, width, depth), Conv2d(width, channels, 1))
    return Add(Sequential(Shift(-0.5), body), Identity()) if residual else body
