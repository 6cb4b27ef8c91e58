"""Losses with their gradients: ``loss(pred, target) -> (value, grad)``, mean reduction as PyTorch's default."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..errors import TransconvError
from ..spec import as_numeric

__all__ = ["mse_loss", "l1_loss", "charbonnier_loss"]


def _pair(name: str, pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = as_numeric(name, "pred", pred), as_numeric(name, "target", target)
    if p.shape != t.shape:
        raise TransconvError(f"{name}: pred and target must have the same shape, got {p.shape} and {t.shape}")
    if p.size == 0:
        raise TransconvError(f"{name}: pred is empty (shape {p.shape}); the mean of nothing is undefined")
    if p.dtype.kind != "f":
        p = p.astype(np.float64)
    return p, t.astype(p.dtype, copy=False)


def mse_loss(pred: Any, target: Any) -> tuple[float, np.ndarray]:
    """Mean squared error ``mean((pred - target)**2)`` and its gradient ``2 (pred - target) / size``.

    >>> mse_loss([1.0, 3.0], [0.0, 0.0])
    (5.0, array([1., 3.]))
    """
    p, t = _pair("mse_loss", pred, target)
    diff = p - t
    return float(np.mean(diff * diff)), (2.0 / p.size) * diff


def l1_loss(pred: Any, target: Any) -> tuple[float, np.ndarray]:
    """Mean absolute error and its gradient ``sign(pred - target) / size`` (0 where equal, as PyTorch).

    >>> l1_loss([1.0, -3.0], [0.0, 0.0])
    (2.0, array([ 0.5, -0.5]))
    """
    p, t = _pair("l1_loss", pred, target)
    diff = p - t
    return float(np.mean(np.abs(diff))), (np.sign(diff) / p.size).astype(p.dtype)


def charbonnier_loss(pred: Any, target: Any, eps: float = 1e-3) -> tuple[float, np.ndarray]:
    """Charbonnier (smooth L1) ``mean(sqrt((pred - target)**2 + eps**2))`` and its gradient.

    >>> value, grad = charbonnier_loss([3.0], [0.0], eps=4.0)
    >>> value, grad
    (5.0, array([0.6]))
    """
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps > 0:
        raise TransconvError(f"charbonnier_loss: eps must be a number > 0, got {eps!r}")
    p, t = _pair("charbonnier_loss", pred, target)
    diff = p - t
    root = np.sqrt(diff * diff + p.dtype.type(eps) ** 2)
    return float(np.mean(root)), (diff / root / p.size).astype(p.dtype)
