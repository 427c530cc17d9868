"""Run a network on images of any size: pad to a multiple, split large images into tiles.

A network that halves the resolution k times needs H and W multiples of ``2**k`` (the course
network: 4; a U-Net of depth 3: 8): its :class:`Geometry`. An image is padded at the bottom and
right by repeating its last row/column, run, and cropped back.

An image larger than ``tile`` on a side is cut into ``tile x tile`` tiles, each run with a
``margin`` of surrounding pixels that is then discarded, so memory stays bounded by the tile size.
Tiles start at multiples of the geometry's multiple and the margin covers the network's receptive
field, so the result equals running the whole image at once (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .errors import field_error

MULTIPLE = 4
MARGIN = 16
DEFAULT_TILE = 256

Forward = Callable[[Tensor], Tensor]


class Geometry(NamedTuple):
    """What a network needs of its input: H and W multiples of ``multiple``, and ``margin`` pixels
    of context around a tile (a multiple of ``multiple``). The default is the course network's."""

    multiple: int = MULTIPLE
    margin: int = MARGIN


COURSE = Geometry()


def pad_to_multiple(x: Tensor, multiple: int = MULTIPLE) -> Tensor:
    """Pad the last two dims at the end, repeating the last row/column, to multiples of ``multiple``."""
    h, w = x.shape[-2:]
    rows = torch.arange(-(-h // multiple) * multiple, device=x.device).clamp_(max=h - 1)
    cols = torch.arange(-(-w // multiple) * multiple, device=x.device).clamp_(max=w - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def check_tile(tile: int, multiple: int = MULTIPLE) -> int:
    """``tile`` must be a positive multiple of ``multiple`` (default 4)."""
    if not (isinstance(tile, int) and tile > 0 and tile % multiple == 0):
        raise field_error("tile", f"must be a positive multiple of {multiple}, got {tile!r}")
    return tile


def run_tiled(forward: Forward, x: Tensor, tile: int = DEFAULT_TILE, geometry: Geometry = COURSE) -> Tensor:
    """``forward`` applied to the (N, C, H, W) batch ``x`` of any H, W; returns (N, C', H, W).

    Args:
        forward: the network; takes and returns (N, C, h, w) with h, w multiples of
            ``geometry.multiple``.
        tile: largest side run at once (default 256, a multiple of ``geometry.multiple``).
        geometry: the network's multiple and margin (default the course network's: 4 and 16).
    """
    multiple, margin = geometry
    check_tile(tile, multiple)
    h, w = x.shape[-2:]
    padded = pad_to_multiple(x, multiple)
    hp, wp = padded.shape[-2:]
    if hp <= tile and wp <= tile:
        return forward(padded)[..., :h, :w]
    out: Tensor | None = None
    for top in range(0, hp, tile):
        for left in range(0, wp, tile):
            t0, l0 = max(0, top - margin), max(0, left - margin)
            t1, l1 = min(hp, top + tile + margin), min(wp, left + tile + margin)
            y = forward(padded[..., t0:t1, l0:l1])
            if out is None:
                out = y.new_empty(*y.shape[:-2], hp, wp)
            bottom, right = min(hp, top + tile), min(wp, left + tile)
            out[..., top:bottom, left:right] = y[..., top - t0 : bottom - t0, left - l0 : right - l0]
    assert out is not None  # the loops run at least once: hp, wp > tile > 0
    return out[..., :h, :w]
