"""BatchStream: the training batches of a :class:`TrainConfig`, reproducible from its seed.

One ``torch.Generator`` seeded with ``config.seed`` draws everything (crops, flips, rotations,
noise), so the same seed gives bit-identical batches; :meth:`BatchStream.state` and
:meth:`BatchStream.restore` let a resumed run continue the exact same stream.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .config import TrainConfig
from .data import CropSampler, PairSampler, folder_images, load_course_pairs, training_images
from .errors import field_error
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
            self.pairs = PairSampler(*_square_pairs(config))
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

    def restore(self, state: dict[str, Any], step: int) -> None:
        """Continue where a checkpoint's stream left off: ``state`` is its :meth:`state`, ``step``
        the steps done (this stream needs only the former; :class:`ShardedStream` only the latter).

        Raises:
            UserError: ``state`` is not a generator state of this stream (naming the field ``rng``).
        """
        generator = state.get("generator")
        if not (isinstance(generator, Tensor) and generator.dtype == torch.uint8 and generator.device.type == "cpu"):
            raise field_error("rng", f"must hold this stream's 'generator' state, got keys {sorted(map(str, state))}")
        try:
            self.generator.set_state(generator)
        except RuntimeError as e:  # a state of the wrong size or contents
            raise field_error("rng", f": not a generator state ({e})") from None


def _square_pairs(config: TrainConfig) -> tuple[Tensor, Tensor]:
    """The course pairs of ``config.pkl``, refused unless square (a quarter turn must keep a batch's
    shape) with a side the network takes (a multiple of its :attr:`~TrainConfig.multiple`)."""
    assert config.pkl is not None
    inputs, targets = load_course_pairs(config.pkl, "pkl")
    h, w = inputs.shape[-2:]
    if h != w or h < config.multiple or h % config.multiple:
        raise field_error(
            "pkl",
            f": {config.pkl}: images of {h}x{w} pixels; training needs square images with a side that is a "
            f"multiple of {config.multiple} (the {config.arch} network)",
        )
    return inputs, targets
