"""Image files and arrays to and from (3, H, W) float tensors in [0, 1].

Reading converts every layout to RGB: greyscale is repeated on the three channels, an alpha
channel is dropped (not composited), 16-bit files (16-bit colour PNGs too) are rescaled to
[0, 1] and float files clipped to it. Writing rounds to 8 bits and goes through
:func:`impl.app.checkpoint.atomic_write`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import skimage.util
import torch
from PIL import Image, ImageFile, ImageOps
from torch import Tensor

from .checkpoint import atomic_write
from .errors import UserError, field_error

SUFFIXES = (".png", ".jpg", ".jpeg")
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_DIRECT_MODES = ("L", "LA", "RGB", "RGBA", "I;16", "F")  # modes numpy reads as 8/16-bit or float grey or colour


def to_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4) array -> (H, W, 3) float32 in [0, 1].

    Raises:
        UserError: any other shape.
    """
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"expected an image of shape (H, W) or (H, W, 1-4 channels), got {array.shape}")
    if array.dtype.kind == "f":  # a float file: [0, 1] by convention, anything else clipped
        array = np.clip(np.nan_to_num(array, nan=0.0), 0, 1)
    array = skimage.util.img_as_float32(array)
    if array.shape[2] <= 2:  # grey, grey + alpha
        return np.repeat(array[:, :, :1], 3, axis=2)
    return array[:, :, :3]


def to_tensor(array: np.ndarray) -> Tensor:
    """Image array (any layout of :func:`to_rgb`) -> (3, H, W) float32 tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(to_rgb(array).transpose(2, 0, 1)))


def to_uint8(image: Tensor) -> np.ndarray:
    """(3, H, W) tensor in [0, 1] -> (H, W, 3) uint8 array (clipped, rounded)."""
    return (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def read_image(path: str | Path) -> Tensor:
    """Read a PNG or JPEG file as a (3, H, W) float32 tensor in [0, 1].

    Raises:
        FileNotFoundError: no such file.
        UserError: the file is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as file:
            array = _sixteen_bit_colour(path, file)
            if array is None:
                # a camera's EXIF orientation tag: return the pixels the way viewers show them
                image: Image.Image = ImageOps.exif_transpose(file)
                if image.mode not in _DIRECT_MODES:  # palette, 1-bit, CMYK ...: let PIL make it RGB(A)
                    image = image.convert("RGBA" if "transparency" in image.info or "A" in image.mode else "RGB")
                array = np.asarray(image)
    except Exception as e:  # PIL raises many types for a damaged or foreign file
        raise UserError(f"cannot read image {path}: {e}") from None
    try:
        return to_tensor(array)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


def _sixteen_bit_colour(path: Path, file: ImageFile.ImageFile) -> np.ndarray | None:
    """A 16-bit colour PNG as a uint16 array (None for any other file). PIL has no 16-bit colour
    mode: it decodes the high byte of each sample only (rawmode ``RGB;16B``). Decoding the same
    data a second time as little-endian (``RGB;16L``) gives the low bytes."""
    rawmodes = [tile[3] for tile in file.tile]
    if file.format != "PNG" or file.mode not in ("RGB", "RGBA") or rawmodes != [f"{file.mode};16B"]:
        return None
    high = np.asarray(file)
    with Image.open(path) as again:
        again.tile = [(*tile[:3], f"{file.mode};16L") for tile in again.tile]  # type: ignore[misc]
        low = np.asarray(again)
    return (high.astype(np.uint16) << 8) | low


def check_suffix(path: str | Path, field: str = "output") -> str:
    """``path``'s suffix, lower-cased, if PNG or JPEG can be written under it.

    Raises:
        UserError: another suffix (about ``field``, the caller's name for the path).
    """
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise field_error(field, f": the file must end in one of {SUFFIXES}, got {Path(path).name!r}")
    return suffix


def write_image(path: str | Path, image: Tensor, quality: int = 95) -> Path:
    """Write a (3, H, W) tensor in [0, 1] as PNG or JPEG (by suffix), atomically.

    Raises:
        UserError: the suffix is not .png, .jpg or .jpeg.
    """
    path = Path(path)
    fmt = _FORMATS[check_suffix(path)]
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))
