"""Noise models and Noise2Noise / Noise2Clean training pairs.

A noise is written as a short spec string, the form the ``--noise`` flag takes:

- ``gaussian:25``: additive Gaussian, sigma 25 on the 0-255 scale;
- ``gaussian:0-50``: sigma drawn uniformly in [0, 50] for each image;
- ``poisson:30``: Poisson with peak lambda 30 (``poisson(lambda * x) / lambda``); ``poisson:10-50``
  draws lambda per image.

Noisy inputs are clipped to [0, 1], as an 8-bit camera image would be. A Noise2Noise *target* is
left unclipped by default (``targets='raw'``): clipping makes its noise biased near black and white,
and a network trained on it learns that bias (the course network lost 0.45 dB to Noise2Clean with
clipped targets); unclipped, the noise has zero mean (Gaussian) or the clean image as its mean
(Poisson), which is what Noise2Noise needs. ``targets='clipped'`` is what camera pairs would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import field_error

KINDS = ("gaussian", "poisson")
PAIRS = ("n2n", "n2c")
TARGETS = ("clipped", "raw")


@dataclass(frozen=True)
class Noise:
    """A noise model: ``kind`` and the parameter range ``[low, high]`` (sigma on 0-255, or peak lambda)."""

    kind: str
    low: float
    high: float

    @classmethod
    def parse(cls, spec: str) -> Noise:
        """``'gaussian:25'``, ``'gaussian:0-50'``, ``'poisson:30'`` ... -> :class:`Noise`.

        Raises:
            UserError: an unknown kind, a malformed or negative value, ``low > high``, a zero lambda.
        """
        kind, _, value = spec.partition(":")
        expected = "expected gaussian:SIGMA, gaussian:LOW-HIGH, poisson:PEAK or poisson:LOW-HIGH"
        if kind not in KINDS:
            raise field_error("noise", f": unknown noise {spec!r}; {expected}")
        low_text, _, high_text = value.partition("-")
        try:
            low = float(low_text)
            high = float(high_text) if high_text else low
        except ValueError:
            raise field_error("noise", f": cannot read the value of {spec!r}; {expected}") from None
        if not 0 <= low <= high:
            raise field_error("noise", f": {spec!r} needs 0 <= LOW <= HIGH")
        if kind == "poisson" and low == 0:
            raise field_error("noise", f": {spec!r}: the Poisson peak must be > 0")
        return cls(kind, low, high)

    def __str__(self) -> str:
        value = f"{self.low:g}" if self.low == self.high else f"{self.low:g}-{self.high:g}"
        return f"{self.kind}:{value}"

    @property
    def sigma(self) -> float | None:
        """The Gaussian sigma on the [0, 1] scale (the middle of the range), None for Poisson."""
        return (self.low + self.high) / 2 / 255 if self.kind == "gaussian" else None

    def apply(self, clean: Tensor, generator: torch.Generator, clip: bool = True) -> Tensor:
        """A noisy copy of the (N, C, H, W) batch ``clean`` in [0, 1], clipped to [0, 1] unless
        ``clip`` is false (the same random draws either way)."""
        n = clean.shape[0]
        level = self.low + (self.high - self.low) * torch.rand(n, 1, 1, 1, generator=generator, dtype=clean.dtype)
        if self.kind == "gaussian":
            noisy = clean + level / 255 * torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
        else:
            noisy = torch.poisson(clean * level, generator=generator) / level
        return noisy.clamp_(0, 1) if clip else noisy


def make_pair(
    clean: Tensor, noise: Noise, pairs: str, generator: torch.Generator, targets: str = "raw"
) -> tuple[Tensor, Tensor]:
    """A training pair for a batch of clean images; the input is always clipped to [0, 1].

    Args:
        pairs: ``'n2n'`` (Noise2Noise: input and target with independent noise) or ``'n2c'``
            (Noise2Clean: the target is the clean image).
        targets: ``'raw'`` (default: unclipped) or ``'clipped'``: whether a Noise2Noise target is clipped.
    """
    if pairs not in PAIRS:
        raise field_error("pairs", f"must be one of {PAIRS}, got {pairs!r}")
    if targets not in TARGETS:
        raise field_error("targets", f"must be one of {TARGETS}, got {targets!r}")
    noisy = noise.apply(clean, generator)
    return noisy, (noise.apply(clean, generator, clip=targets == "clipped") if pairs == "n2n" else clean)
