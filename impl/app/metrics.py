r"""Image quality: PSNR and SSIM over a set of images.

PSNR is computed as in the EE-559 test and the Noise2Noise code: the output is clipped to [0, 1],
then

.. math::
    \mathrm{PSNR} = \frac{1}{N} \sum_i -10 \log_{10} \operatorname{mean}\big((\hat x_i - x_i)^2\big)

the mean of the per-image PSNRs (peak 1). A per-image MSE below 1e-10 counts as 1e-10 (100 dB), so
identical images give a finite number. SSIM is ``skimage.metrics.structural_similarity`` on the
same clipped images (data range 1, colour channels averaged), also averaged over images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import skimage.metrics
from torch import Tensor

MIN_MSE = 1e-10


def _pairs(outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> list[tuple[Tensor, Tensor]]:
    if len(outputs) != len(targets) or len(outputs) == 0:
        raise ValueError(f"need as many outputs as targets (at least one), got {len(outputs)} and {len(targets)}")
    pairs = list(zip(outputs, targets))
    for i, (o, t) in enumerate(pairs):
        if o.shape != t.shape or o.dim() != 3:
            raise ValueError(f"image {i}: output {tuple(o.shape)} and target {tuple(t.shape)} must be equal (C, H, W)")
    return pairs


def psnr_per_image(outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> list[float]:
    """PSNR in dB of each (C, H, W) output against its target, outputs clipped to [0, 1]."""
    result = []
    for o, t in _pairs(outputs, targets):
        mse = (o.detach().double().cpu().clamp(0, 1) - t.detach().double().cpu()).pow(2).mean().item()
        result.append(-10 * math.log10(max(mse, MIN_MSE)))
    return result


def psnr(outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> float:
    """Mean of the per-image PSNRs (dB). ``outputs``/``targets``: lists of (C, H, W) or (N, C, H, W) tensors."""
    values = psnr_per_image(outputs, targets)
    return sum(values) / len(values)


def ssim(outputs: Sequence[Tensor], targets: Sequence[Tensor]) -> float:
    """Mean SSIM (skimage, data range 1, 7x7 window or the largest odd window that fits)."""
    values = []
    for o, t in _pairs(outputs, targets):
        a = o.detach().double().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
        b = t.detach().double().cpu().permute(1, 2, 0).numpy()
        side = min(a.shape[:2])
        window = min(7, side if side % 2 else side - 1)
        if window < 3:
            raise ValueError(f"SSIM needs images of at least 3 x 3 pixels, got {a.shape[:2]}")
        values.append(skimage.metrics.structural_similarity(a, b, data_range=1.0, channel_axis=2, win_size=window))
    return float(np.mean(values))
