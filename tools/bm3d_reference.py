"""Measure colour BM3D on the report's held-out images, once, outside the product.

BM3D is the classical state of the art the shipped U-Net is compared with (issue 8); it is not a
dependency of n2n-blocks. Run this in a scratch environment that has the reference implementation
(``bm3d`` on PyPI, Tampere University's CBM3D) beside this package, from the repository root::

    python -m venv /tmp/bm3d && /tmp/bm3d/bin/pip install -c constraints.txt -e . bm3d
    /tmp/bm3d/bin/python tools/bm3d_reference.py

It writes ``reports/bm3d.json``: PSNR and SSIM of ``bm3d.bm3d_rgb`` given the known sigma, on the
very noisy pixels every method of the report sees (clipped to [0, 1], as a camera's 8-bit image
would be) and on the same draws left unclipped (the textbook Gaussian setting of published BM3D
figures). ``n2n report`` reads the file and compares the shipped U-Net with both. The default
profile ('np') is the strongest here: 'high' and 'vn' gave 30.74 and 30.72 dB on the clipped
pixels (against 30.86), 31.56 and 31.90 unclipped (against 32.18).
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import bm3d
import numpy as np
import torch

from impl.app.checkpoint import atomic_write
from impl.app.data import EVAL_SIZE
from impl.app.evaluate import DEFAULT_NOISE, EVAL_SEED, heldout_set
from impl.app.metrics import psnr, ssim

SIZE = EVAL_SIZE  # the report's held-out crop side


def cbm3d(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``bm3d.bm3d_rgb`` on a (3, H, W) tensor: the colour (YCbCr) BM3D with noise std ``sigma``."""
    out = bm3d.bm3d_rgb(image.permute(1, 2, 0).double().numpy(), sigma)
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))).float()


def main(path: str = "reports/bm3d.json") -> None:
    record: dict[str, object] = {
        "method": "CBM3D (bm3d.bm3d_rgb, known sigma)",
        "package": f"bm3d {version('bm3d')}",
        "noise": DEFAULT_NOISE,
        "seed": EVAL_SEED,
        "size": SIZE,
    }
    started = time.perf_counter()
    for clip in (True, False):
        evalset = heldout_set(size=SIZE, clip=clip)
        assert evalset.sigma is not None
        outputs = [cbm3d(x, evalset.sigma) for x in evalset.noisy]
        scores = {"psnr": round(psnr(outputs, evalset.clean), 4), "ssim": round(ssim(outputs, evalset.clean), 4)}
        record["clipped" if clip else "unclipped"] = scores
        print(f"{evalset.name}: {scores}")
    record["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write(Path(path), lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
