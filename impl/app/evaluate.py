"""Evaluation: PSNR/SSIM of models beside the noisy input and two classical baselines.

Every method sees exactly the same noisy images. The held-out set is the 256 x 256 center crops of
astronaut and coffee (:func:`impl.app.data.heldout_images`) with noise drawn from a
``torch.Generator`` seeded with :data:`EVAL_SEED`, so every evaluation uses the same noisy pixels.

Baselines from scikit-image, with the noise level as their one parameter (the known Gaussian sigma,
else an estimate, see :func:`estimate_sigma`): non-local means (``denoise_nl_means``, ``h = 0.8
sigma``, 5 x 5 patches, search distance 6, the exact ("slow") algorithm, as skimage's documentation
shows it; on the held-out set it beats the fast mode by 0.9 dB and every other h in 0.7-1.0, patch
5-7 and distance 6-11 we tried) and total variation (``denoise_tv_chambolle``, ``weight = sigma``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import skimage.restoration
import torch
from torch import Tensor

from .backend import Backend
from .data import EVAL_SIZE, folder_images, heldout_images, load_course_pairs
from .ensemble import self_ensemble
from .errors import field_error
from .metrics import psnr, ssim
from .noise import Noise
from .tiling import COURSE, DEFAULT_TILE, Forward, run_tiled

EVAL_SEED = 2022
DEFAULT_NOISE = "gaussian:25"
EVAL_BATCH = 64  # images of one shape run at once
MIN_SIDE = 3  # SSIM's smallest window
ENSEMBLE_SUFFIX = ", x8 self-ensemble"


@dataclass
class EvalSet:
    """Noisy images and their clean originals, (3, H, W) in [0, 1]; ``sigma``: the Gaussian noise
    level on [0, 1] when known (None: baselines estimate it)."""

    name: str
    noisy: list[Tensor]
    clean: list[Tensor]
    sigma: float | None = None


@dataclass
class Row:
    """One line of the results table, with the denoised images."""

    method: str
    psnr: float
    ssim: float
    outputs: list[Tensor]


def _noisy_set(name: str, clean: list[Tensor], noise: str, seed: int, clip: bool = True) -> EvalSet:
    model = Noise.parse(noise)
    generator = torch.Generator().manual_seed(seed)
    noisy = [model.apply(image[None], generator, clip=clip)[0] for image in clean]
    return EvalSet(name, noisy, clean, model.sigma)


def heldout_set(
    noise: str = DEFAULT_NOISE, seed: int = EVAL_SEED, size: int = EVAL_SIZE, *, field: str = "size", clip: bool = True
) -> EvalSet:
    """The held-out built-in images (astronaut, coffee) with ``noise`` drawn from ``seed``, clipped
    to [0, 1] like every network input (``clip=False``: the same draws unclipped, the textbook
    Gaussian setting in which denoisers are usually compared, e.g. BM3D's published figures).

    Raises:
        UserError: ``size`` (the message names it as ``field``) is not an integer >= 3, the
            smallest side SSIM's window fits.
    """
    if not (isinstance(size, int) and not isinstance(size, bool) and size >= MIN_SIDE):
        raise field_error(field, f"must be an integer >= {MIN_SIDE} (the held-out crop side; SSIM), got {size!r}")
    name = f"held-out astronaut + coffee, {size}x{size} center crops{'' if clip else ', unclipped noise'}"
    return _noisy_set(name, heldout_images(size), noise, seed, clip)


def folder_set(folder: str | Path, noise: str = DEFAULT_NOISE, seed: int = EVAL_SEED, field: str = "images") -> EvalSet:
    """Every PNG/JPEG of ``folder`` as clean images, with ``noise`` drawn from ``seed``."""
    images = folder_images(folder, field)
    _check_sides(images, field, folder)
    return _noisy_set(f"images in {folder}", images, noise, seed)


def pkl_set(path: str | Path, field: str = "pkl") -> EvalSet:
    """A course ``val_data.pkl``: (noisy, clean) uint8 tensors; the noise level is estimated."""
    noisy, clean = load_course_pairs(path, field)
    _check_sides(list(clean), field, path)
    return EvalSet(f"{Path(path).name} ({len(noisy)} images)", list(noisy.float() / 255), list(clean.float() / 255))


def _check_sides(images: Sequence[Tensor], field: str, source: str | Path) -> None:
    for i, image in enumerate(images):
        if min(image.shape[-2:]) < MIN_SIDE:
            raise field_error(
                field,
                f": {source}: image {i} is {image.shape[-2]}x{image.shape[-1]}; evaluation needs at least "
                f"{MIN_SIDE}x{MIN_SIDE} pixels (SSIM's smallest window)",
            )


def estimate_sigma(image: Tensor) -> float:
    """Gaussian noise level of a (C, H, W) image (Immerkaer 1996): the mean absolute response to
    the Laplacian-difference kernel, scaled; averaged over channels."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    sigmas = []
    for channel in image.double().cpu().numpy():
        h, w = channel.shape
        valid = sum(kernel[i, j] * channel[i : h - 2 + i, j : w - 2 + j] for i in range(3) for j in range(3))
        sigmas.append(math.sqrt(math.pi / 2) * np.abs(valid).sum() / (6 * (w - 2) * (h - 2)))
    return float(np.mean(sigmas))


def nl_means(image: Tensor, sigma: float) -> Tensor:
    """skimage non-local means of a (3, H, W) image with noise level ``sigma`` (on [0, 1])."""
    array = image.double().permute(1, 2, 0).numpy()
    out = skimage.restoration.denoise_nl_means(
        array, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=False, channel_axis=2
    )
    return torch.from_numpy(out).permute(2, 0, 1).float()


def tv_chambolle(image: Tensor, sigma: float) -> Tensor:
    """skimage total-variation denoising (Chambolle) of a (3, H, W) image, ``weight = sigma``."""
    out = skimage.restoration.denoise_tv_chambolle(
        image.double().permute(1, 2, 0).numpy(), weight=sigma, channel_axis=2
    )
    return torch.from_numpy(out).permute(2, 0, 1).float()


BASELINES: dict[str, Callable[[Tensor, float], Tensor]] = {"NL-means": nl_means, "TV (Chambolle)": tv_chambolle}


def denoise_images(
    model: Backend | Forward,
    images: Sequence[Tensor],
    tile: int = DEFAULT_TILE,
    batch: int = EVAL_BATCH,
    ensemble: bool = False,
) -> list[Tensor]:
    """Run a backend (tiled by its configuration's geometry) or a plain ``forward`` (the course
    network's geometry) on (3, H, W) images of any sizes; consecutive images of one shape share a
    batch. ``ensemble``: average over the 8 flips and quarter turns (:mod:`impl.app.ensemble`)."""
    forward, geometry = (model, COURSE) if callable(model) else (model.forward, model.config.geometry)
    if ensemble:
        forward = self_ensemble(forward)
    outputs: list[Tensor] = []
    start = 0
    while start < len(images):
        end = start + 1
        while end < len(images) and end - start < batch and images[end].shape == images[start].shape:
            end += 1
        out = run_tiled(forward, torch.stack(list(images[start:end])), tile, geometry)
        outputs.extend(out.detach().float().cpu())
        start = end
    return outputs


def evaluate(
    evalset: EvalSet,
    models: Mapping[str, Backend | Forward],
    tile: int = DEFAULT_TILE,
    baselines: bool = True,
    ensemble: Collection[str] = (),
) -> list[Row]:
    """Rows: the noisy input, each baseline (if ``baselines``), then each model (a backend or a
    forward function, see :func:`denoise_images`), in that order; a model named in ``ensemble`` is
    followed by its self-ensemble's row, named with :data:`ENSEMBLE_SUFFIX`."""
    unknown = sorted(set(ensemble) - set(models))
    if unknown:
        raise ValueError(f"ensemble names models that are not evaluated: {unknown}")
    candidates: dict[str, list[Tensor]] = {"Noisy input": [x.clone() for x in evalset.noisy]}
    if baselines:
        sigmas = [evalset.sigma if evalset.sigma is not None else estimate_sigma(x) for x in evalset.noisy]
        for name, method in BASELINES.items():
            candidates[name] = [method(x, s) for x, s in zip(evalset.noisy, sigmas)]
    for name, model in models.items():
        candidates[name] = denoise_images(model, evalset.noisy, tile)
        if name in ensemble:
            candidates[name + ENSEMBLE_SUFFIX] = denoise_images(model, evalset.noisy, tile, ensemble=True)
    return [Row(name, psnr(out, evalset.clean), ssim(out, evalset.clean), out) for name, out in candidates.items()]


def format_table(rows: Sequence[Row]) -> str:
    """A Markdown table: method, PSNR (dB), SSIM."""
    width = max(len("method"), *(len(r.method) for r in rows))
    lines = [f"| {'method':<{width}} | PSNR (dB) |  SSIM  |", f"|{'-' * (width + 2)}|----------:|-------:|"]
    lines += [f"| {r.method:<{width}} | {r.psnr:9.2f} | {r.ssim:6.4f} |" for r in rows]
    return "\n".join(lines)
