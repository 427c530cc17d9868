"""TrainConfig: everything that decides a training run's result, as primitives.

It is stored in every checkpoint (as a dict) so a run can be resumed and a saved model rebuilt.
Settings that do not change the result (validation interval, progress bar) are not part of it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from .errors import UserError, field_error
from .noise import PAIRS, TARGETS, Noise
from .tiling import COURSE, Geometry

#: every network's default batch size: on 2 CPU cores a step of 16 crops costs about as much per image
#: as one of 64, and at equal training time the smaller batches train both networks further. The
#: course network, about 2 min: 26.71 / 27.33 / 27.84 dB at batch 64 / 32 / 16 (1700 / 3000 / 6000
#: steps). The residual U-Net, about 210 s: 29.29 / 29.63 / 29.91 dB at batch 64 / 32 / 8 (500 / 1000
#: / 3000 steps), and 251 s gave 29.96 dB at 16 (2000 steps). README, "The denoiser".
DEFAULT_BATCH_SIZE = 16
#: each network's default optimizer steps. The course network's is the main job: 8.4 min of
#: training on 2 cores (6000 / 15000 / 20000 steps of batch 16 reached 27.84 / 28.42 / 28.58 dB with
#: the engine of that study; 20000 reach 28.66 dB with the current one).
#: The U-Net's is the report's budget run, inside the main job's 15 min on 2 cores: 5500 steps took
#: 10.5 min (30.50 dB) before the engine's faster small-image products; 7000 fill about as much now.
DEFAULT_STEPS = {"course": 20000, "unet": 7000}
ARCHS = ("course", "unet")
UPSAMPLINGS = ("nearest", "transpose")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("none", "cosine")
#: each network's default peak learning rate (Adam, cosine schedule), from sweeps on 2 CPU cores
#: (held-out PSNR; README, "The denoiser"): the course network at 1500 steps reached 25.77 / 26.22 /
#: 26.77 / 26.41 / 23.77 dB at 1e-3 / 3e-3 / 6e-3 / 1e-2 / 2e-2, so 5e-3 keeps a margin below where
#: it turns unstable; the residual U-Net at 500 steps reached 29.29 dB at 1e-3 and 28.49 at 3e-3
DEFAULT_LR = {"course": 5e-3, "unet": 1e-3}
FLOAT32_MAX = float(torch.finfo(torch.float32).max)  # a larger lr or momentum overflows in the update


@dataclass
class TrainConfig:
    """A training run. Defaults are the main job (``n2n train`` with no flags).

    Args:
        arch: network: ``'course'`` (default; the EE-559 network of :func:`impl.models.course_network`)
            or ``'unet'`` (:func:`impl.models.unet`, ``depth`` poolings of width ``channels``).
        upsampling: ``'nearest'`` (default) or ``'transpose'`` (course network only).
        channels: hidden width (default 48). depth: U-Net poolings (default 3; unet only).
        residual: the U-Net computes ``x + body(x - 0.5)``: a correction to its input (default
            False, the paper's network; unet only; see :func:`impl.models.unet`).
        noise: noise spec (see :mod:`impl.app.noise`), default ``'gaussian:25'``.
        pairs: ``'n2n'`` (Noise2Noise, default) or ``'n2c'`` (Noise2Clean).
        targets: ``'raw'`` (default; unclipped Noise2Noise targets: unbiased noise, see
            :mod:`impl.app.noise`) or ``'clipped'`` (clipped to [0, 1] like the inputs).
        optimizer: ``'adam'`` (default) or ``'sgd'`` (with ``momentum``, default 0.9).
        lr: peak learning rate (default None: the network's :data:`DEFAULT_LR`, 5e-3 for the
            course network and 1e-3 for the U-Net; the built config holds the number).
        lr_schedule: ``'cosine'`` (default; decays to 0 at the last step) or ``'none'``.
        batch_size: default :data:`DEFAULT_BATCH_SIZE` (16). crop: crop side (default 32).
        steps: optimizer steps (default None: the network's :data:`DEFAULT_STEPS`, 20000 for the
            course network and 7000 for the U-Net).
        seed: initial weights, crops and noise (default 0).
        images: a folder of training images instead of the built-in ones (default None).
        pkl: a course ``train_data.pkl`` of noisy pairs instead of images (default None).
    """

    arch: str = "course"
    upsampling: str = "nearest"
    channels: int = 48
    depth: int = 3
    residual: bool = False
    noise: str = "gaussian:25"
    pairs: str = "n2n"
    targets: str = "raw"
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float = 0.9
    lr_schedule: str = "cosine"
    batch_size: int = DEFAULT_BATCH_SIZE
    steps: int | None = None
    crop: int = 32
    seed: int = 0
    images: str | None = None
    pkl: str | None = None

    def __post_init__(self) -> None:
        choices = {
            "arch": ARCHS,
            "upsampling": UPSAMPLINGS,
            "pairs": PAIRS,
            "targets": TARGETS,
            "optimizer": OPTIMIZERS,
            "lr_schedule": LR_SCHEDULES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise field_error(name, f"must be one of {allowed}, got {getattr(self, name)!r}")
        if self.steps is None:
            self.steps = DEFAULT_STEPS[self.arch]
        for name, low in (("channels", 1), ("depth", 0), ("batch_size", 1), ("steps", 0), ("crop", 4), ("seed", 0)):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise field_error(name, f"must be an integer >= {low}, got {value!r}")
        if self.crop % self.multiple:
            raise field_error(
                "crop",
                f"must be a multiple of {self.multiple} (the {self.arch} network halves the size "
                f"{self.multiple.bit_length() - 1} times), got {self.crop}",
            )
        if self.lr is None:
            self.lr = DEFAULT_LR[self.arch]
        for name in ("lr", "momentum"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= FLOAT32_MAX):
                raise field_error(name, f"must be a number from 0 to {FLOAT32_MAX:.3g} (float32), got {value!r}")
        if not isinstance(self.residual, bool):
            raise field_error("residual", f"must be true or false, got {self.residual!r}")
        if self.residual and self.arch != "unet":
            raise field_error("residual", "is a U-Net option (arch unet)")
        if not isinstance(self.noise, str):
            raise field_error("noise", f"must be a noise spec string, got {self.noise!r}")
        Noise.parse(self.noise)
        for name in ("images", "pkl"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise field_error(name, f"must be a path, got {getattr(self, name)!r}")
        if self.images is not None and self.pkl is not None:
            raise field_error("pkl", "and images are exclusive: train on one source")
        if self.pkl is not None and self.pairs == "n2c":
            raise field_error("pairs", "n2c needs clean images; a course .pkl holds noisy pairs only")

    @property
    def geometry(self) -> Geometry:
        """What H and W of the network's input must be a multiple of (4, or ``2**depth`` for a
        U-Net) and the tiling margin: a bound of the receptive field's radius, a multiple of the
        former. 16 for the course network (radius 9); ``5 * 2**depth`` for a U-Net (radius
        ``5 * 2**depth - 3``). tests/test_app_unet.py measures both radii at every pixel phase."""
        return Geometry(2**self.depth, 5 * 2**self.depth) if self.arch == "unet" else COURSE

    @property
    def network(self) -> str:
        """The call that builds the network, as the report writes it: ``unet(depth=3, width=48)``."""
        if self.arch == "unet":
            return f"unet(depth={self.depth}, width={self.channels}{', residual=True' if self.residual else ''})"
        return f"course_network('{self.upsampling}', channels={self.channels})"

    @property
    def total_steps(self) -> int:
        """:attr:`steps`, or the network's default if a caller set it back to None after building."""
        return DEFAULT_STEPS[self.arch] if self.steps is None else self.steps

    @property
    def multiple(self) -> int:
        """:attr:`geometry`'s multiple."""
        return self.geometry.multiple

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise :class:`UserError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(values) - known))
        if unknown:
            raise UserError(f"unknown configuration keys {unknown}; known: {sorted(known)}")
        return cls(**values)

    def learning_rate(self, step: int) -> float:
        r"""The learning rate of step ``step`` (0-based): ``lr``, or ``lr * (1 + cos(pi * step / steps)) / 2``.
        Step 0's is the peak ``lr`` under both schedules."""
        peak = DEFAULT_LR[self.arch] if self.lr is None else self.lr
        if self.lr_schedule == "none":
            return peak
        return peak * 0.5 * (1 + math.cos(math.pi * step / max(self.total_steps, 1)))
