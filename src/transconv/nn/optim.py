"""Optimisers updating a model's parameters in place, step for step as ``torch.optim``."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..errors import TransconvError
from ..spec import checked_real
from .module import Module

__all__ = ["SGD", "Adam"]


class _Optimizer:
    def __init__(self, model: Module) -> None:
        if not isinstance(model, Module):
            raise TransconvError(f"{type(self).__name__}: model must be a transconv.nn.Module, got {type(model).__name__}")
        self.model = model
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def zero_grad(self) -> None:
        """Zero the model's gradients."""
        self.model.zero_grad()

    def _pairs(self):
        grads = self.model.grads
        for name, param in self.model.parameters():
            yield name, param, grads[name]

    def state_dict(self) -> dict[str, Any]:
        """Optimiser state for a checkpoint: ``{"steps": int, "<param>.<buffer>": array}``."""
        flat: dict[str, Any] = {"steps": self.steps}
        for name, buffers in self.state.items():
            for key, value in buffers.items():
                flat[f"{name}.{key}"] = value.copy()
        return flat

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; buffers must match the model's parameter shapes."""
        params = dict(self.model.parameters())
        restored: dict[str, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            if key == "steps":
                continue
            name, _, buffer = key.rpartition(".")
            if name not in params or np.shape(value) != params[name].shape:
                raise TransconvError(f"{type(self).__name__}: load_state_dict key {key!r} does not match a parameter of this model")
            restored.setdefault(name, {})[buffer] = np.array(value, dtype=params[name].dtype)
        self.steps = int(state.get("steps", 0))
        self.state = restored


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay, as ``torch.optim.SGD`` (no dampening).

    ``d = grad + weight_decay * p``; ``buf = d`` on the first step, then ``momentum * buf + d``;
    ``p -= lr * buf`` (``p -= lr * d`` without momentum).
    """

    def __init__(self, model: Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(model)
        self.lr = checked_real("SGD", "lr", lr, 0.0)
        self.momentum = checked_real("SGD", "momentum", momentum, 0.0)
        self.weight_decay = checked_real("SGD", "weight_decay", weight_decay, 0.0)

    def step(self) -> None:
        for name, p, g in self._pairs():
            d = g + self.weight_decay * p if self.weight_decay else g
            if self.momentum:
                buffers = self.state.setdefault(name, {})
                if "momentum" not in buffers:
                    buffers["momentum"] = np.array(d, dtype=p.dtype)
                else:
                    buffers["momentum"] *= p.dtype.type(self.momentum)
                    buffers["momentum"] += d
                d = buffers["momentum"]
            p -= p.dtype.type(self.lr) * d
        self.steps += 1


class Adam(_Optimizer):
    """Adam with L2 weight decay added to the gradient, as ``torch.optim.Adam`` (not AdamW).

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g**2``,
    ``p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``.
    """

    def __init__(self, model: Module, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(model)
        self.lr = checked_real("Adam", "lr", lr, 0.0)
        try:
            b1, b2 = betas
        except (TypeError, ValueError):
            raise TransconvError(f"Adam: betas must be a pair of numbers in [0, 1), got {betas!r}") from None
        self.betas = (checked_real("Adam", "betas[0]", b1, 0.0, 1.0, True), checked_real("Adam", "betas[1]", b2, 0.0, 1.0, True))
        self.eps = checked_real("Adam", "eps", eps, 0.0)
        self.weight_decay = checked_real("Adam", "weight_decay", weight_decay, 0.0)

    def step(self) -> None:
        self.steps += 1
        b1, b2 = self.betas
        correction1 = 1 - b1**self.steps
        correction2 = math.sqrt(1 - b2**self.steps)
        for name, p, g in self._pairs():
            t = p.dtype.type
            if self.weight_decay:
                g = g + t(self.weight_decay) * p
            buffers = self.state.setdefault(name, {})
            m = buffers.setdefault("exp_avg", np.zeros_like(p))
            v = buffers.setdefault("exp_avg_sq", np.zeros_like(p))
            m *= t(b1)
            m += t(1 - b1) * g
            v *= t(b2)
            v += t(1 - b2) * g * g
            denom = np.sqrt(v) / t(correction2) + t(self.eps)
            p -= t(self.lr / correction1) * (m / denom)
