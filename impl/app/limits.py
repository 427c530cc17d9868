"""Memory estimates, checked before allocating: a run or a tile that cannot fit is refused with
the estimate in the message, instead of swapping for minutes and dying.

The estimates are deliberately rough upper bounds (float32 everywhere): parameters counted exactly
from the configuration, activations as bytes per pixel of the input proportional to the width,
with a factor that covers the layer outputs impl keeps for backward and the im2col buffers of its
convolutions. A value is refused only when its estimate exceeds the memory available now.
"""

from __future__ import annotations

import os

import torch

from .config import TrainConfig
from .errors import UserError, field_error

#: float32 values kept per input pixel and per unit of width: layer outputs and im2col buffers
#: (the course network works at 1/2 and 1/4 resolution; the U-Net keeps its full-resolution levels)
ACTIVATIONS_PER_WIDTH = {"course": 12, "unet": 32}


def available_bytes(device: torch.device | None = None) -> int:
    """Free memory on ``device``: CUDA's free memory, else the system's available RAM."""
    if device is not None and device.type == "cuda":  # pragma: no cover - no GPU in CI
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: the physical memory
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parameter_count(config: TrainConfig) -> int:
    """The number of weights of ``config``'s network (exact; no network is built)."""
    c = config.channels
    if config.arch == "course":  # conv 3->c, conv c->c, up c->c, up c->3 (3x3 kernels, biases)
        return (27 * c + c) + (9 * c * c + c) + (9 * c * c + c) + (27 * c + 3)
    total, width = 3 * c + 3, c  # the 1x1 convolution out
    for level in range(config.depth + 1):
        inputs = 3 if level == 0 else width
        total += 9 * inputs * width + width  # encode
        total += (18 if level < config.depth else 9) * width * width + width  # decode, or the bottom's second conv
    return total


def forward_bytes(config: TrainConfig, images: int, height: int, width: int) -> int:
    """Activation memory of one forward and backward on ``images`` inputs of ``height x width``."""
    return 4 * images * height * width * config.channels * ACTIVATIONS_PER_WIDTH[config.arch]


def training_bytes(config: TrainConfig) -> int:
    """A training step: weights, gradients and optimizer state, plus the batch's activations."""
    return 16 * parameter_count(config) + forward_bytes(config, config.batch_size, config.crop, config.crop)


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.3g} GB"


def check_fits(needed: int, what: str, field: str | None = None, device: torch.device | None = None) -> None:
    """Raise UserError (about ``field``) when ``needed`` bytes exceed the memory available."""
    free = available_bytes(device)
    if needed > free:
        text = f"{what} needs about {gigabytes(needed)} of memory, more than the {gigabytes(free)} available"
        raise field_error(field, f": {text}") if field is not None else UserError(text)


def check_training(config: TrainConfig) -> None:
    """Refuse a configuration whose network or training step cannot fit, naming the field to lower."""
    check_fits(16 * parameter_count(config), f"training a network of {config.channels} channels", "channels")
    crops = f"{config.batch_size} crops of {config.crop}x{config.crop}"
    check_fits(training_bytes(config), f"a training step on {crops}", "batch_size")


def check_model(config: TrainConfig) -> None:
    """Refuse a saved configuration whose network cannot even be built."""
    check_fits(4 * parameter_count(config), f"a network of {config.channels} channels", "channels")


def check_tiles(config: TrainConfig, images: int, height: int, width: int, tile: int) -> None:
    """Refuse a ``tile`` whose tiles (with their margin) cannot be run on ``images`` at once."""
    margin = config.geometry.margin
    h, w = min(height, tile + 2 * margin), min(width, tile + 2 * margin)
    check_fits(forward_bytes(config, images, h, w), f"running {images} x {h}x{w} pixels at once", "tile")
