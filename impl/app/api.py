"""CourseModel: the EE-559 Model API (``Model()``, ``load_pretrained_model``, ``train``, ``predict``).

:class:`impl.app.course.Model` (impl blocks) and :class:`harness.twin.Model` (torch.nn + autograd)
are this class with their backend. Images are N x 3 x H x W, uint8 or float, on the 0-255 scale.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .config import TrainConfig
from .inference import BackendFactory, load_model
from .tiling import DEFAULT_TILE, run_tiled

PREDICT_BATCH = 64
BESTMODEL_COMMAND = "n2n train --name bestmodel --steps 50000 --export impl/bestmodel.pth"


def to_unit(images: Tensor, name: str) -> Tensor:
    """Check a (N, 3, H, W) or (3, H, W) uint8/float image tensor on 0-255 and return float32 / 255.

    Raises:
        TypeError: not a tensor, or neither uint8 nor floating point.
        ValueError: not 3 channels in a 3-D or 4-D tensor, empty, NaN or infinite values, or
            values outside 0-255.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"{name} must be uint8 or floating point on the 0-255 scale, got {images.dtype}")
    if images.dim() not in (3, 4) or images.shape[-3] != 3:
        raise ValueError(f"{name} must have shape N x 3 x H x W (or 3 x H x W), got {tuple(images.shape)}")
    if images.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(images.shape)}")
    if images.is_floating_point():
        if not bool(torch.isfinite(images).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        low, high = images.min().item(), images.max().item()
        if low < 0 or high > 255:
            raise ValueError(f"{name} must be on the 0-255 scale, got values from {low:g} to {high:g}")
    return images.float() / 255


class CourseModel:
    """The course API over a backend (see :mod:`impl.app.backend`).

    Args:
        factory: builds the backend of a :class:`TrainConfig` (default configuration: the course
            network with nearest upsampling, Adam lr 5e-3, batch 16, seed 0).
        pretrained_path: the ``bestmodel.pth`` :meth:`load_pretrained_model` reads.

    ``predict`` runs images larger than :attr:`tile` (256) on a side in overlapping tiles.
    """

    tile = DEFAULT_TILE

    def __init__(self, factory: BackendFactory, pretrained_path: Path) -> None:
        self.factory, self.pretrained_path = factory, pretrained_path
        self.config = TrainConfig()
        self.backend = factory(self.config)
        self.generator = torch.Generator().manual_seed(self.config.seed)

    def load_pretrained_model(self) -> None:
        """Load the ``bestmodel.pth`` shipped inside the package (its config decides the network).

        Raises:
            FileNotFoundError: the file is missing (it names the command that trains it).
        """
        if not self.pretrained_path.is_file():
            raise FileNotFoundError(
                f"no pretrained model at {self.pretrained_path}; train it from the repository root with: "
                f"{BESTMODEL_COMMAND}"
            )
        self.backend = load_model(self.pretrained_path, self.factory)

    def train(self, train_input: Tensor, train_target: Tensor, num_epochs: int) -> None:
        """Train on noisy pairs: ``num_epochs`` passes in shuffled batches of the configuration's
        size (16), Adam at its peak lr (5e-3 for the course network), no schedule.

        Args:
            train_input, train_target: N x 3 x H x W, uint8 or float on 0-255, the same shape; H and
                W multiples of 4 (the course's 32 x 32 are; ``2**depth`` for a U-Net).
        """
        if not isinstance(num_epochs, int) or num_epochs < 0:
            raise ValueError(f"num_epochs must be an integer >= 0, got {num_epochs!r}")
        x, t = to_unit(train_input, "train_input"), to_unit(train_target, "train_target")
        multiple = self.backend.config.multiple
        if x.shape != t.shape or x.dim() != 4 or x.shape[-1] % multiple or x.shape[-2] % multiple or len(x) == 0:
            raise ValueError(
                f"train_input and train_target must be non-empty N x 3 x H x W with H, W multiples of {multiple} and "
                f"equal shapes, got {tuple(x.shape)} and {tuple(t.shape)}"
            )
        batch = self.config.batch_size
        for _ in range(num_epochs):
            order = torch.randperm(len(x), generator=self.generator)
            for index in order.split(batch):
                self.backend.train_step(x[index], t[index], self.config.learning_rate(0))  # the peak lr

    def predict(self, test_input: Tensor) -> Tensor:
        """Denoise N x 3 x H x W images (any H, W; uint8 or float on 0-255).

        Returns:
            float32 on 0-255, the shape and device of ``test_input``.
        """
        x = to_unit(test_input, "test_input")
        batched = x if x.dim() == 4 else x[None]
        geometry = self.backend.config.geometry
        out = torch.cat(
            [run_tiled(self.backend.forward, chunk, self.tile, geometry) for chunk in batched.split(PREDICT_BATCH)]
        )
        y = out.to(test_input.device).float().mul_(255).clamp_(0, 255)
        return y if x.dim() == 4 else y[0]
