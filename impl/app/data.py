"""Training and evaluation images: built-in photographs, the fixed split, crops, folders, course files.

Built-in images are the colour photographs shipped inside scikit-image (loaded from the installed
package, never downloaded). The split is fixed: :data:`HELD_OUT` (astronaut, coffee) is used only
for evaluation, :data:`TRAINING` (the other seven) only for training.

All images are (3, H, W) float32 tensors in [0, 1]; all randomness comes from the
``torch.Generator`` the caller passes, so the same seed gives the same crops.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import skimage.data
import torch
from torch import Tensor

from .checkpoint import safe_load
from .errors import UserError, field_error
from .images import SUFFIXES, read_image, to_tensor


@functools.cache
def _stereo() -> tuple[np.ndarray, np.ndarray]:
    left, right, _disparity = skimage.data.stereo_motorcycle()
    return left, right


_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "rocket": skimage.data.rocket,
    "hubble_deep_field": skimage.data.hubble_deep_field,
    "immunohistochemistry": skimage.data.immunohistochemistry,
    "retina": skimage.data.retina,
    "motorcycle_left": lambda: _stereo()[0],
    "motorcycle_right": lambda: _stereo()[1],
}
BUILTIN = tuple(_LOADERS)
HELD_OUT = ("astronaut", "coffee")
TRAINING = tuple(name for name in BUILTIN if name not in HELD_OUT)
EVAL_SIZE = 256  # held-out images are center crops of EVAL_SIZE x EVAL_SIZE (a multiple of 4)


@functools.cache
def builtin_image(name: str) -> Tensor:
    """The built-in photograph ``name`` (one of :data:`BUILTIN`) as a (3, H, W) tensor in [0, 1].

    The tensor is cached and shared: do not modify it in place.
    """
    if name not in _LOADERS:
        raise UserError(f"unknown built-in image {name!r}; choose from {BUILTIN}")
    return to_tensor(_LOADERS[name]())


def training_images() -> list[Tensor]:
    """The built-in images of :data:`TRAINING`, never the held-out ones."""
    return [builtin_image(name) for name in TRAINING]


def center_crop(image: Tensor, size: int) -> Tensor:
    """The central ``size x size`` window of a (C, H, W) image (the whole side when it is smaller)."""
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[..., top : top + size, left : left + size]


def heldout_images(size: int = EVAL_SIZE) -> list[Tensor]:
    """Center crops ``size x size`` of the :data:`HELD_OUT` images (astronaut, coffee)."""
    return [center_crop(builtin_image(name), size) for name in HELD_OUT]


def folder_images(folder: str | Path, field: str = "images") -> list[Tensor]:
    """Every PNG/JPEG file directly inside ``folder``, sorted by name, as (3, H, W) tensors.

    Raises:
        UserError: ``folder`` is not a directory or holds no PNG/JPEG file, or a file is unreadable
            (the message is about ``field``, the caller's name for the folder).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise field_error(field, f": {folder} is not a directory")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if not files:
        raise field_error(field, f": no {'/'.join(SUFFIXES)} files in {folder}")
    return [read_image(p) for p in files]


def load_course_pairs(path: str | Path, field: str = "pkl") -> tuple[Tensor, Tensor]:
    """Load an EE-559 course file: ``train_data.pkl`` (noisy, noisy) or ``val_data.pkl`` (noisy, clean).

    Both hold a pair of uint8 tensors of the same shape N x 3 x H x W (32 x 32 in the course),
    loaded with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        UserError: the file is not a pair of uint8 N x 3 x H x W CPU tensors of equal shape (the
            message is about ``field``, the caller's name for the file).
    """
    obj = safe_load(path, "course data file", "a torch file of tensors")
    expected = "a pair of uint8 tensors N x 3 x H x W of the same shape"
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, Tensor) for t in obj)):
        raise field_error(field, f": {path}: expected {expected}, got {type(obj).__name__}")
    first, second = obj
    for t in (first, second):
        if t.dtype != torch.uint8 or t.dim() != 4 or t.shape[1] != 3:
            raise field_error(field, f": {path}: expected {expected}, got {t.dtype} of shape {tuple(t.shape)}")
        if t.device.type != "cpu":  # meta tensors (no data) load with weights_only too
            raise field_error(field, f": {path}: expected {expected} with data, got {t.device.type} tensors")
    if first.shape != second.shape or first.shape[0] == 0:
        raise field_error(
            field, f": {path}: expected {expected}, got shapes {tuple(first.shape)} and {tuple(second.shape)}"
        )
    return first, second


def dihedral(image: Tensor, code: int) -> Tensor:
    """One of the 8 flips/rotations of the last two dims: horizontal flip if ``code >= 4``, then
    ``code % 4`` quarter turns."""
    if code >= 4:
        image = image.flip(-1)
    return image.rot90(code % 4, dims=(-2, -1))


def undo_dihedral(image: Tensor, code: int) -> Tensor:
    """The inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, code), code)`` is ``x``."""
    image = image.rot90(-(code % 4), dims=(-2, -1))
    return image.flip(-1) if code >= 4 else image


class CropSampler:
    """Random ``size x size`` crops of a list of images, each with a random flip and quarter turn.

    Every crop draws an image (uniformly), a position and one of the 8 dihedral transforms from the
    generator passed to :meth:`sample`.

    Args:
        images: (3, H, W) tensors in [0, 1], each at least ``size`` on both sides.
        size: crop side (default 32).

    Example:
        >>> crops = CropSampler(training_images()).sample(64, torch.Generator().manual_seed(0))
    """

    def __init__(self, images: Sequence[Tensor], size: int = 32) -> None:
        if not images:
            raise UserError("CropSampler: no images to crop from")
        if not (isinstance(size, int) and size >= 4):
            raise UserError(f"crop size must be an integer >= 4, got {size!r}")
        for i, image in enumerate(images):
            if min(image.shape[-2:]) < size:
                raise UserError(f"image {i} of shape {tuple(image.shape)} is smaller than the crop size {size}")
        self.images, self.size = list(images), size

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        """``count`` crops as a (count, 3, size, size) tensor."""
        draws = torch.rand(count, 4, generator=generator, dtype=torch.float64)
        crops = []
        for u_image, u_top, u_left, u_code in draws.tolist():
            image = self.images[int(u_image * len(self.images))]
            h, w = image.shape[-2:]
            top, left = int(u_top * (h - self.size + 1)), int(u_left * (w - self.size + 1))
            crop = image[:, top : top + self.size, left : left + self.size]
            crops.append(dihedral(crop, int(u_code * 8)))
        return torch.stack(crops)


class PairSampler:
    """Random pairs from two aligned uint8 tensors (the course's noisy pairs), with the same random
    flip and quarter turn applied to both halves of a pair; returned as float in [0, 1]."""

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def sample(self, count: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        index = torch.randint(len(self.inputs), (count,), generator=generator)
        codes = torch.randint(8, (count,), generator=generator).tolist()
        pairs = [
            [dihedral(t[i].float() / 255, code) for t in (self.inputs, self.targets)]
            for i, code in zip(index.tolist(), codes)
        ]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
