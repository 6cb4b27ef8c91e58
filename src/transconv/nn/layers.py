"""Parameter-light layers: activations, pixel (un)shuffle and fixed up-sampling, each backward beside its forward."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from ..errors import TransconvError
from ..spec import checked_int, checked_real
from .module import Module, layer_dtype, layer_input, register_layer

__all__ = ["ReLU", "LeakyReLU", "PReLU", "Tanh", "Sigmoid", "PixelShuffle", "PixelUnshuffle", "Upsample"]


class _Elementwise(Module):
    """An activation: ``backward`` multiplies by the derivative computed in ``forward``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = layer_input(self._name(), x)
        y, slope = self._apply(x)
        self._cache = slope
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        slope = self._cached()
        return (self._checked_grad(grad_out, slope.shape) * slope).astype(slope.dtype, copy=False)


@register_layer
class ReLU(_Elementwise):
    """``max(x, 0)``; gradient 1 where ``x > 0`` (0 at 0, as PyTorch)."""

    def _apply(self, x):
        positive = x > 0
        return np.where(positive, x, 0).astype(x.dtype), positive.astype(x.dtype)


@register_layer
class LeakyReLU(_Elementwise):
    """``x`` where ``x > 0``, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = checked_real("LeakyReLU", "negative_slope", negative_slope)

    def _apply(self, x):
        slope = np.where(x > 0, 1.0, self.negative_slope).astype(x.dtype)
        return x * slope, slope

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


@register_layer
class Tanh(_Elementwise):
    """``tanh(x)``; gradient ``1 - tanh(x)**2``."""

    def _apply(self, x):
        y = np.tanh(x)
        return y, 1 - y * y


@register_layer
class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``; gradient ``y (1 - y)``."""

    def _apply(self, x):
        with np.errstate(over="ignore"):
            y = (0.5 * (1 + np.tanh(0.5 * x))).astype(x.dtype)
        return y, y * (1 - y)


@register_layer
class PReLU(Module):
    """Leaky ReLU with a learned slope ``weight`` (one, or one per channel on axis 1), as ``torch.nn.PReLU``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, *, dtype: Any = np.float32) -> None:
        super().__init__()
        self.dtype = layer_dtype("PReLU", dtype)
        if not isinstance(init, numbers.Real) or isinstance(init, bool):
            raise TransconvError(f"PReLU: init must be a number, got {init!r}")
        self.num_parameters, self.init = checked_int("PReLU", "num_parameters", num_parameters, 1), float(init)
        self._set_param("weight", np.full(self.num_parameters, init, dtype=self.dtype))

    @property
    def weight(self) -> np.ndarray:
        return self.params["weight"]

    def _slopes(self, ndim: int) -> np.ndarray:
        if self.num_parameters == 1:
            return self.weight.reshape(())
        return self.weight.reshape((-1,) + (1,) * (ndim - 2))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = layer_input("PReLU", x).astype(self.dtype, copy=False)
        if self.num_parameters > 1 and (x.ndim < 2 or x.shape[1] != self.num_parameters):
            raise TransconvError(f"PReLU: num_parameters={self.num_parameters} needs {self.num_parameters} channels on axis 1, got shape {x.shape}")
        positive = x > 0
        self._cache = (x, positive)
        return np.where(positive, x, self._slopes(x.ndim) * x)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x, positive = self._cached()
        g = self._grad_out(grad_out, x.shape)
        negative_part = np.where(positive, 0, g * x)
        if self.num_parameters == 1:
            self._accumulate("weight", np.asarray(negative_part.sum()).reshape(1))
        else:
            self._accumulate("weight", negative_part.sum(axis=(0,) + tuple(range(2, x.ndim))))
        return np.where(positive, g, self._slopes(x.ndim) * g)

    def config(self) -> dict[str, Any]:
        return {"num_parameters": self.num_parameters, "init": self.init, "dtype": self.dtype.name}


class _Rearrange(Module):
    """A pixel (un)shuffle: a permutation of the entries, so the backward is the inverse permutation."""

    def _permute(self, x: np.ndarray, inverse: bool) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self._permute(layer_input(self._name(), x, 3), inverse=False)
        self._cache = y.shape
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return self._permute(self._checked_grad(grad_out, self._cached()), inverse=True)


@register_layer
class PixelShuffle(_Rearrange):
    """``(N, C r^d, *s) -> (N, C, *(s r))``, PyTorch's channel order (``c r^d + offset``, offsets row-major).

    Also N-d (PyTorch's is 2-d).  The backward is the inverse permutation, :class:`PixelUnshuffle`.

    >>> import numpy as np, transconv as tc
    >>> tc.nn.PixelShuffle(2)(np.arange(4.0).reshape(1, 4, 1, 1))[0, 0]
    array([[0., 1.],
           [2., 3.]])
    """

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = checked_int("PixelShuffle", "upscale_factor", upscale_factor, 1)

    def _permute(self, x: np.ndarray, inverse: bool) -> np.ndarray:
        return (_unshuffle if inverse else _shuffle)(self._name(), x, self.upscale_factor)

    def config(self) -> dict[str, Any]:
        return {"upscale_factor": self.upscale_factor}


@register_layer
class PixelUnshuffle(_Rearrange):
    """``(N, C, *(s r)) -> (N, C r^d, *s)``, the inverse of :class:`PixelShuffle`."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = checked_int("PixelUnshuffle", "downscale_factor", downscale_factor, 1)

    def _permute(self, x: np.ndarray, inverse: bool) -> np.ndarray:
        return (_shuffle if inverse else _unshuffle)(self._name(), x, self.downscale_factor)

    def config(self) -> dict[str, Any]:
        return {"downscale_factor": self.downscale_factor}


def _shuffle(name: str, x: np.ndarray, r: int) -> np.ndarray:
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    d = len(spatial)
    if c % r**d:
        raise TransconvError(f"{name}: channels ({c}) must be divisible by factor**{d} = {r**d} for shape {x.shape}")
    v = x.reshape((n, c // r**d) + (r,) * d + spatial)
    # (n, c, r_1..r_d, s_1..s_d) -> (n, c, s_1, r_1, ..., s_d, r_d)
    order = (0, 1) + tuple(a for i in range(d) for a in (2 + d + i, 2 + i))
    return np.ascontiguousarray(v.transpose(order)).reshape((n, c // r**d) + tuple(s * r for s in spatial))


def _unshuffle(name: str, y: np.ndarray, r: int) -> np.ndarray:
    n, c = y.shape[:2]
    spatial = y.shape[2:]
    d = len(spatial)
    if any(s % r for s in spatial):
        raise TransconvError(f"{name}: every spatial length must be divisible by {r}, got shape {y.shape}")
    v = y.reshape((n, c) + tuple(a for s in spatial for a in (s // r, r)))
    # (n, c, s_1, r_1, ..., s_d, r_d) -> (n, c, r_1..r_d, s_1..s_d)
    order = (0, 1) + tuple(3 + 2 * i for i in range(d)) + tuple(2 + 2 * i for i in range(d))
    return np.ascontiguousarray(v.transpose(order)).reshape((n, c * r**d) + tuple(s // r for s in spatial))


def _linear_matrix(n: int, scale: int) -> np.ndarray:
    """``(n * scale, n)`` linear interpolation, PyTorch ``align_corners=False`` (edge samples clamped)."""
    out = np.arange(n * scale)
    src = np.maximum((out + 0.5) / scale - 0.5, 0.0)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    m = np.zeros((n * scale, n))
    np.add.at(m, (out, lo), 1 - frac)
    np.add.at(m, (out, hi), frac)
    return m


@register_layer
class Upsample(Module):
    """Up-sampling by integer factors: ``"nearest"`` (repeat) or ``"bilinear"`` (multilinear, ``align_corners=False``).

    ``scale_factor`` is an int (every spatial axis) or one int per axis.  Bilinear is
    separable: one small interpolation matrix per axis; the backward applies its transpose.

    >>> import numpy as np, transconv as tc
    >>> tc.nn.Upsample(2, mode="bilinear")(np.array([[[0.0, 4.0]]]))
    array([[[0., 1., 3., 4.]]])
    """

    MODES = ("nearest", "bilinear")

    def __init__(self, scale_factor: Any = 2, mode: str = "nearest") -> None:
        super().__init__()
        if mode not in self.MODES:
            raise TransconvError(f"Upsample: mode must be one of {self.MODES}, got {mode!r}")
        if isinstance(scale_factor, Sequence) and not isinstance(scale_factor, str):
            self.scale_factor: Any = [checked_int("Upsample", f"scale_factor[{a}]", v, 1) for a, v in enumerate(scale_factor)]
        else:
            self.scale_factor = checked_int("Upsample", "scale_factor", scale_factor, 1)
        self.mode = mode

    def scales(self, ndim: int) -> tuple[int, ...]:
        """The factor on each of ``ndim`` spatial axes (``tc.nn.Upsample(2).scales(3)`` is ``(2, 2, 2)``)."""
        if isinstance(self.scale_factor, list):
            if len(self.scale_factor) != ndim:
                raise TransconvError(f"Upsample: scale_factor {self.scale_factor} has {len(self.scale_factor)} entries, the input has {ndim} spatial axes")
            return tuple(self.scale_factor)
        return (self.scale_factor,) * ndim

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = layer_input("Upsample", x, 3)
        scales = self.scales(x.ndim - 2)
        y = x
        for axis, r in enumerate(scales, start=2):
            if self.mode == "nearest":
                y = np.repeat(y, r, axis=axis)
            else:
                m = _linear_matrix(x.shape[axis], r).astype(x.dtype)
                y = np.moveaxis(np.tensordot(y, m, axes=([axis], [1])), -1, axis)
        self._cache = (x.shape, y.shape, scales)
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x_shape, y_shape, scales = self._cached()
        g = self._checked_grad(grad_out, y_shape)
        for axis, r in enumerate(scales, start=2):
            if self.mode == "nearest":
                shape = g.shape[:axis] + (x_shape[axis], r) + g.shape[axis + 1 :]
                g = g.reshape(shape).sum(axis=axis + 1)
            else:
                m = _linear_matrix(x_shape[axis], r).astype(g.dtype)
                g = np.moveaxis(np.tensordot(g, m, axes=([axis], [0])), -1, axis)
        return g

    def config(self) -> dict[str, Any]:
        return {"scale_factor": self.scale_factor, "mode": self.mode}
