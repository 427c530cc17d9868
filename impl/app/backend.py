"""ImplBackend: one network, its optimizer and its training step, over the impl blocks.

The training loop (:mod:`impl.app.train`), the Model API (:mod:`impl.app.api`) and the evaluation
talk to a network only through this small interface, so the torch.nn twin
(:class:`harness.twin.TorchBackend`) plugs into the same code:

- ``train_step(inputs, targets, lr) -> float``: one optimizer step on the MSE loss, returns the loss;
- ``forward(x) -> Tensor``: the network's output, without training;
- ``state_dict()`` / ``load_state_dict()``: weights with torch.nn's keys (CPU copies);
- ``optimizer_state_dict()`` / ``load_optimizer_state_dict()``: torch.optim's layout;
- ``device`` and ``config`` (its :attr:`~impl.app.config.TrainConfig.geometry` says how to tile).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Protocol

import torch
from torch import Tensor

import impl
import impl.models
from impl.module import Module

from .config import TrainConfig


class Backend(Protocol):
    """What the loop, the Model API and the evaluation need from a network."""

    device: torch.device
    config: TrainConfig

    def train_step(self, inputs: Tensor, targets: Tensor, lr: float) -> float: ...

    def forward(self, x: Tensor) -> Tensor: ...

    def state_dict(self) -> dict[str, Tensor]: ...

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None: ...

    def optimizer_state_dict(self) -> dict[str, Any]: ...

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None: ...


def default_device() -> torch.device:
    """CUDA when available, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_network(config: TrainConfig, models: ModuleType = impl.models) -> Any:
    """``config``'s network, the course network or a U-Net, from ``models``: :mod:`impl.models`
    (default) or its torch.nn twin :mod:`reference.models` (the same function names)."""
    if config.arch == "unet":
        return models.unet(config.depth, config.channels, residual=config.residual)
    return models.course_network(config.upsampling, config.channels)


def initial_state(config: TrainConfig) -> dict[str, Tensor]:
    """The initial weights of ``config``'s network: impl's default initialisation seeded with
    ``config.seed`` (the global RNG is left as it was). Both backends start from these."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = build_network(config)
    return {k: v.clone() for k, v in net.state_dict().items()}


class ImplBackend:
    """The network of a :class:`TrainConfig` built from impl blocks, with impl's Adam or SGD.

    Args:
        config: network and optimizer settings.
        device: default :func:`default_device`.
        weights: a state dict to start from (default: the seeded initial weights of
            :func:`initial_state`); the network is built once either way.
        reduce_gradients: called with the parameter gradients between backward and the optimizer
            step (data-parallel averaging, :func:`impl.app.distributed.average_gradients`).

    The optimizer is built on first use, so a backend loaded for inference has none.
    """

    name = "impl"

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device | str | None = None,
        *,
        weights: Mapping[str, Tensor] | None = None,
        reduce_gradients: Callable[[list[Tensor]], None] | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device) if device is not None else default_device()
        with torch.random.fork_rng(devices=[]):  # the same draws as initial_state(config)
            torch.manual_seed(config.seed)
            self.net: Module = build_network(config)
        if weights is not None:
            self.net.load_state_dict(weights)
        self.net.to(device=self.device)  # before the optimizer, which holds the parameters
        self.loss = impl.MSELoss()
        self.reduce_gradients = reduce_gradients
        self._optimizer: impl.Optimizer | None = None

    @property
    def optimizer(self) -> impl.Optimizer:
        if self._optimizer is None:
            lr, params = self.config.learning_rate(0), self.net.param()
            if self.config.optimizer == "adam":
                self._optimizer = impl.Adam(params, lr=lr)
            else:
                self._optimizer = impl.SGD(params, lr=lr, momentum=self.config.momentum)
        return self._optimizer

    def train_step(self, inputs: Tensor, targets: Tensor, lr: float) -> float:
        self.optimizer.lr = lr
        self.optimizer.zero_grad()
        self.net.train()
        loss = self.loss(self.net(inputs.to(self.device)), targets.to(self.device))
        self.net.backward(self.loss.backward())
        if self.reduce_gradients is not None:
            self.reduce_gradients([g for _, g in self.net.param()])
        self.optimizer.step()
        return loss.item()

    def forward(self, x: Tensor) -> Tensor:
        # eval mode: no backward follows, so a convolution keeps its input, not the larger Winograd tiles
        return self.net.eval()(x.to(self.device))

    def state_dict(self) -> dict[str, Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        self.net.load_state_dict(state)

    def optimizer_state_dict(self) -> dict[str, Any]:
        return _to_cpu(self.optimizer.state_dict())

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


def _to_cpu(obj: Any) -> Any:
    """A copy of a nest of dicts/lists with every tensor moved to the CPU (for checkpoints)."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj
