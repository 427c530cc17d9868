"""SGD and Adam over ``param()`` lists, step for step as torch.optim (single-tensor path)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


def _number(what: str, name: str, value: Any, low: float = 0.0, below: float | None = None) -> float:
    """``value`` as a float if it is a real number (not a bool), finite, ``>= low`` and ``< below``;
    else ValueError in torch's words (``Invalid learning rate: ...``) naming the argument."""
    if not (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= low
        and (below is None or value < below)
    ):
        expected = f"a finite number >= {low:g}" + ("" if below is None else f" and < {below:g}")
        raise ValueError(f"Invalid {what}: {name}={value!r}, expected {expected}")
    return float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


class Optimizer:
    """Base: holds ``[(parameter, gradient), ...]`` pairs and per-parameter state.

    ``state_dict()`` has torch.optim's layout: ``{"state": {index: {...}}, "param_groups":
    [{hyper-parameters..., "params": [0, 1, ...]}]}``.
    """

    def __init__(self, params: Iterable[tuple[Tensor, Tensor]], lr: float, defaults: dict[str, Any]) -> None:
        try:
            self.params = list(params)
        except TypeError:
            raise TypeError(
                f"params must be an iterable of (parameter, gradient) pairs as param() returns, got {params!r}"
            ) from None
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for i, item in enumerate(self.params):
            if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, Tensor) for t in item)):
                raise TypeError(f"params[{i}] must be a (parameter, gradient) pair as param() returns, got {item!r}")
            if item[0].shape != item[1].shape:
                raise ValueError(
                    f"params[{i}]: gradient shape {tuple(item[1].shape)} != parameter shape {tuple(item[0].shape)}"
                )
        self.lr = _number("learning rate", "lr", lr)
        self.defaults = {"lr": self.lr, **defaults}
        self.state: dict[int, dict[str, Any]] = {}

    def zero_grad(self) -> None:
        for _, g in self.params:
            g.zero_()

    def step(self) -> None:
        # Check everything first: a refused step leaves every parameter unchanged.
        for i, (p, g) in enumerate(self.params):
            if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
                raise ValueError(
                    f"params[{i}]: gradient {tuple(g.shape)} {g.dtype} does not match "
                    f"parameter {tuple(p.shape)} {p.dtype}"
                )
        for i, (p, g) in enumerate(self.params):
            self._update(p, g, self.state.setdefault(i, {}))

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        group = {**self.defaults, "lr": self.lr, "params": list(range(len(self.params)))}
        state = {
            i: {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in s.items()}
            for i, s in self.state.items()
            if s
        }
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        group = state_dict["param_groups"][0]
        if len(group["params"]) != len(self.params):
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state has {len(group['params'])} parameters, "
                f"optimizer has {len(self.params)}"
            )
        self.lr = float(group["lr"])
        self.state = {
            int(i): {
                k: (v.to(self.params[int(i)][0]) if isinstance(v, Tensor) and k != "step" else v) for k, v in s.items()
            }
            for i, s in state_dict["state"].items()
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with torch.optim.SGD's exact update.

    .. math::
        g \leftarrow \pm\nabla + \lambda p,\quad
        b \leftarrow \begin{cases} g & \text{first step} \\ \mu b + (1 - \tau) g \end{cases},\quad
        g \leftarrow g + \mu b \ \text{(nesterov) or } b,\quad p \leftarrow p - \gamma g

    Args:
        params: ``module.param()``. lr: learning rate (default 1e-3). momentum, dampening,
        weight_decay: default 0. nesterov: needs momentum > 0 and dampening 0.
        maximize: ascend instead of descend.
    """

    def __init__(
        self,
        params: Iterable[tuple[Tensor, Tensor]],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        momentum = _number("momentum value", "momentum", momentum)
        dampening = _number("dampening value", "dampening", dampening)
        weight_decay = _number("weight_decay value", "weight_decay", weight_decay)
        nesterov, maximize = _flag("nesterov", nesterov), _flag("maximize", maximize)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening "
                f"(nesterov=True, momentum={momentum:g}, dampening={dampening:g})"
            )
        super().__init__(
            params,
            lr,
            {
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
                "maximize": maximize,
            },
        )
        self.momentum, self.dampening, self.weight_decay = momentum, dampening, weight_decay
        self.nesterov, self.maximize = nesterov, maximize

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any]) -> None:
        grad = -g if self.maximize else g
        if self.weight_decay != 0:
            grad = grad.add(p, alpha=self.weight_decay)
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.clone()
            else:
                buf.mul_(self.momentum).add_(grad, alpha=1 - self.dampening)
            grad = grad.add(buf, alpha=self.momentum) if self.nesterov else buf
        p.add_(grad, alpha=-self.lr)


class Adam(Optimizer):
    r"""Adam with torch.optim.Adam's exact update (L2 ``weight_decay`` added to the gradient).

    .. math::
        m \leftarrow \beta_1 m + (1-\beta_1) g,\quad v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon}

    with ``v`` replaced by its running maximum when ``amsgrad``.

    Args:
        params: ``module.param()``. lr: default 1e-3. betas: default (0.9, 0.999).
        eps: default 1e-8. weight_decay: default 0. amsgrad, maximize: default False.
    """

    def __init__(
        self,
        params: Iterable[tuple[Tensor, Tensor]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        eps = _number("epsilon value", "eps", eps)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Invalid betas: expected a pair (beta1, beta2), got {betas!r}")
        beta1, beta2 = (_number(f"beta parameter at index {i}", f"betas[{i}]", b, 0, 1) for i, b in enumerate(betas))
        weight_decay = _number("weight_decay value", "weight_decay", weight_decay)
        amsgrad, maximize = _flag("amsgrad", amsgrad), _flag("maximize", maximize)
        super().__init__(
            params,
            lr,
            {
                "betas": (beta1, beta2),
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": amsgrad,
                "maximize": maximize,
            },
        )
        self.betas, self.eps, self.weight_decay = (beta1, beta2), eps, weight_decay
        self.amsgrad, self.maximize = amsgrad, maximize

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any]) -> None:
        if not state:
            state["step"] = torch.empty((), dtype=torch.float32).fill_(0)
            state["exp_avg"] = p.new_zeros(p.shape)
            state["exp_avg_sq"] = p.new_zeros(p.shape)
            if self.amsgrad:
                state["max_exp_avg_sq"] = p.new_zeros(p.shape)
        beta1, beta2 = self.betas
        grad = -g if self.maximize else g
        state["step"] += 1
        if self.weight_decay != 0:
            grad = grad.add(p, alpha=self.weight_decay)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = state["step"].item()
        step_size = self.lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        if self.amsgrad:
            max_sq = state["max_exp_avg_sq"]
            max_sq.copy_(max_sq.maximum(exp_avg_sq))
            exp_avg_sq = max_sq
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        p.addcdiv_(exp_avg, denom, value=-step_size)


__all__ = ["Optimizer", "SGD", "Adam"]
