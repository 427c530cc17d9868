"""The torch.nn twin of the course Model (:mod:`impl.app.course`): the same network, trained with
autograd and torch.optim.

:class:`TorchBackend` is the training step of :mod:`impl.app.train` written with torch.nn, so the
shared loop, data stream and evaluation compare impl and torch.nn on identical batches from
identical initial weights (copied from :func:`impl.app.backend.initial_state`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import impl.app.course
from impl.app.api import CourseModel
from impl.app.backend import build_network, default_device, initial_state
from impl.app.config import TrainConfig
from reference import SGD, Adam, models

BESTMODEL: Path = impl.app.course.BESTMODEL  # one shipped file serves both (same state_dict keys)


class TorchBackend:
    """The network of a :class:`TrainConfig` in torch.nn with torch.optim (single-tensor path).

    Args:
        config: network and optimizer settings. device: default CUDA when available, else the CPU.
    """

    name = "reference"

    def __init__(self, config: TrainConfig, device: torch.device | str | None = None) -> None:
        self.config = config
        self.device = torch.device(device) if device is not None else default_device()
        self.net: nn.Module = build_network(config, models)
        self.net.load_state_dict(initial_state(config))
        self.net.to(self.device)
        if config.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = Adam(self.net.parameters(), lr=config.learning_rate(0))
        else:
            self.optimizer = SGD(self.net.parameters(), lr=config.learning_rate(0), momentum=config.momentum)
        self.loss = nn.MSELoss()

    def train_step(self, inputs: Tensor, targets: Tensor, lr: float) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        loss = self.loss(self.net(inputs.to(self.device)), targets.to(self.device))
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.net(x.to(self.device))

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.net.load_state_dict(state)

    def optimizer_state_dict(self) -> dict[str, Any]:
        # a copy: torch.optim's state_dict holds the live buffers, and load_state_dict on another
        # optimizer would share them (tensors already on the right device are not copied)
        return copy.deepcopy(self.optimizer.state_dict())

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


class Model(CourseModel):
    """:class:`impl.app.course.Model` with the torch.nn backend; loads the same ``impl/bestmodel.pth``."""

    def __init__(self) -> None:
        super().__init__(TorchBackend, BESTMODEL)
