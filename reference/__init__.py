"""The impl blocks mirrored with torch.nn / torch.optim, for comparison only.

Same names and constructor signatures as :mod:`impl`. The optimizers force torch.optim's
single-tensor path (``foreach=False``), the one impl reproduces operation for operation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

Conv2d = nn.Conv2d
ConvTranspose2d = nn.ConvTranspose2d
ReLU = nn.ReLU
LeakyReLU = nn.LeakyReLU
Sigmoid = nn.Sigmoid
Tanh = nn.Tanh
MSELoss = nn.MSELoss
Sequential = nn.Sequential
MaxPool2d = nn.MaxPool2d
Identity = nn.Identity


class Concat(nn.Module):
    """Every branch on the same input, outputs concatenated along ``dim`` (impl.Concat's twin)."""

    def __init__(self, *branches: nn.Module, dim: int = -3) -> None:
        super().__init__()
        for i, m in enumerate(branches):
            self.add_module(str(i), m)
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (torch's name)
        return torch.cat([m(input) for m in self.children()], dim=self.dim)


class Add(nn.Module):
    """Every branch on the same input, outputs added (impl.Add's twin)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        for i, m in enumerate(branches):
            self.add_module(str(i), m)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (torch's name)
        outs = [m(input) for m in self.children()]
        return sum(outs[1:], outs[0])


class Shift(nn.Module):
    """``input + offset`` (impl.Shift's twin)."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 (torch's name)
        return input + self.offset


class Upsampling(nn.Upsample):
    """``nn.Upsample`` restricted to impl's signature (a 3D input is (N, C, L), as in torch)."""

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
    ) -> None:
        super().__init__(size=size, scale_factor=scale_factor, mode=mode)


class SGD(torch.optim.SGD):
    """``torch.optim.SGD`` with impl.SGD's signature."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=False,
        )


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` with impl.Adam's signature."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            foreach=False,
        )


MSE = MSELoss
TransposeConv2d = ConvTranspose2d
NearestUpsampling = Upsampling

__all__ = [
    "Conv2d",
    "ConvTranspose2d",
    "Upsampling",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "MSELoss",
    "Sequential",
    "Concat",
    "Add",
    "Shift",
    "Identity",
    "MaxPool2d",
    "SGD",
    "Adam",
    "MSE",
    "TransposeConv2d",
    "NearestUpsampling",
]
