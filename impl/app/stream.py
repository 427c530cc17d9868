"""BatchStream: the training batches of a :class:`TrainConfig`, reproducible from its seed.

One ``torch.Generator`` seeded with ``config.seed`` draws everything (crops, flips, rotations,
noise), so the same seed gives bit-identical batches; :meth:`BatchStream.state` and
:meth:`BatchStream.load_state` let a resumed run continue the exact same stream.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .config import TrainConfig
from .data import CropSampler, PairSampler, folder_images, load_course_pairs, training_images
from .noise import Noise, make_pair


class BatchStream:
    """Training pairs ``(input, target)`` of shape (batch_size, 3, crop, crop), in [0, 1].

    - built-in images (default) or ``config.images``: random crops, then noise pairs
      (Noise2Noise or Noise2Clean, ``config.pairs``) with ``config.noise``;
    - ``config.pkl``: random pairs of the course's noisy pairs (already noisy, full 32 x 32).
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.generator = torch.Generator().manual_seed(config.seed)
        self.noise = Noise.parse(config.noise)
        self.pairs: PairSampler | None = None
        self.crops: CropSampler | None = None
        if config.pkl is not None:
            self.pairs = PairSampler(*load_course_pairs(config.pkl))
        else:
            images = folder_images(config.images) if config.images is not None else training_images()
            self.crops = CropSampler(images, config.crop)

    def next_batch(self) -> tuple[Tensor, Tensor]:
        if self.pairs is not None:
            return self.pairs.sample(self.config.batch_size, self.generator)
        assert self.crops is not None  # set in __init__ when pairs is not
        clean = self.crops.sample(self.config.batch_size, self.generator)
        return make_pair(clean, self.noise, self.config.pairs, self.generator, self.config.targets)

    def state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def seek(self, step: int) -> None:
        """Called with the checkpoint's step on resume (the generator state already says it all)."""
