"""Two geometry layers the equivalence converters need: ``Crop`` and ``ZeroInsert``.

Both are linear and parameter-free; each backward is the adjoint of its forward
(a crop's adjoint pads with zeros, zero insertion's adjoint takes every ``stride``-th sample).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import TransconvError
from ..spec import checked_int, int_pairs, per_axis_items
from .module import Module, layer_input, register_layer

__all__ = ["Crop", "ZeroInsert"]


def _input(name: str, x: Any, ndim: int) -> np.ndarray:
    array = layer_input(name, x)
    if array.ndim != ndim + 2:
        raise TransconvError(f"{name}: input must be (N, C, *spatial) with {ndim} spatial axes, got shape {array.shape}")
    return array


@register_layer
class Crop(Module):
    """Remove ``crop[a] = (lo, hi)`` samples from both ends of each spatial axis ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> Crop([[1, 0], [0, 2]])(np.arange(12.0).reshape(1, 1, 3, 4))[0, 0]
    array([[4., 5.],
           [8., 9.]])
    """

    def __init__(self, crop: Any) -> None:
        super().__init__()
        self.crop = [list(p) for p in int_pairs("Crop", "crop", crop, 0)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _input("Crop", x, len(self.crop))
        for a, (lo, hi) in enumerate(self.crop):
            if lo + hi >= x.shape[2 + a]:
                raise TransconvError(f"Crop: cropping {lo} + {hi} leaves nothing of spatial axis {a} (length {x.shape[2 + a]})")
        index = (slice(None), slice(None)) + tuple(slice(lo, n - hi) for (lo, hi), n in zip(self.crop, x.shape[2:]))
        y = x[index]
        self._cache = (x.shape, x.dtype, index, y.shape)
        return np.ascontiguousarray(y)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        shape, dtype, index, y_shape = self._cached()
        grad_x = np.zeros(shape, dtype)
        grad_x[index] = self._checked_grad(grad_out, y_shape)
        return grad_x

    def config(self) -> dict[str, Any]:
        return {"crop": [list(p) for p in self.crop]}


@register_layer
class ZeroInsert(Module):
    """Insert ``stride - 1`` zeros between samples, then pad (or, if negative, crop) each end.

    ``padding[a] = (lo, hi)``: zeros added before / after spatial axis ``a`` of the
    zero-inserted signal (negative values remove samples).  Followed by a stride-1
    convolution with the flipped, channel-swapped kernel this is a transposed convolution
    (see :func:`transconv.nn.convert.convtranspose_as_conv`).

    Examples
    --------
    >>> import numpy as np
    >>> ZeroInsert([2], [[1, 0]])(np.array([[[1.0, 2.0, 3.0]]]))
    array([[[0., 1., 0., 2., 0., 3.]]])
    """

    def __init__(self, stride: Any, padding: Any) -> None:
        super().__init__()
        items = per_axis_items("ZeroInsert", "stride", stride)
        if not items:
            raise TransconvError(f"ZeroInsert: stride must be one int per spatial axis, got {stride!r}")
        self.stride = [checked_int("ZeroInsert", f"stride[{a}]", s, 1) for a, s in enumerate(items)]
        self.padding = [list(p) for p in int_pairs("ZeroInsert", "padding", padding, None)]
        if len(self.padding) != len(self.stride):
            raise TransconvError(f"ZeroInsert: stride {stride!r} and padding {padding!r} must have one entry per spatial axis each")

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _input("ZeroInsert", x, len(self.stride))
        inserted = tuple((n - 1) * s + 1 for n, s in zip(x.shape[2:], self.stride))
        out = tuple(m + lo + hi for m, (lo, hi) in zip(inserted, self.padding))
        if any(n < 1 for n in out):
            raise TransconvError(f"ZeroInsert: padding {self.padding} leaves an empty output for input shape {x.shape}")
        # positions of the input samples in the output (those cropped away drop out)
        src, dst = [slice(None), slice(None)], [slice(None), slice(None)]
        for n, s, (lo, _), m in zip(x.shape[2:], self.stride, self.padding, out):
            positions = np.arange(n) * s + lo
            keep = np.flatnonzero((positions >= 0) & (positions < m))
            first, count = (int(keep[0]), len(keep)) if len(keep) else (0, 0)
            src.append(slice(first, first + count))
            start = int(positions[first]) if count else 0
            dst.append(slice(start, start + (count - 1) * s + 1 if count else 0, s))
        y = np.zeros(x.shape[:2] + out, x.dtype)
        y[tuple(dst)] = x[tuple(src)]
        self._cache = (x.shape, tuple(src), tuple(dst), y.shape)
        return y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        shape, src, dst, y_shape = self._cached()
        g = self._checked_grad(grad_out, y_shape)
        grad_x = np.zeros(shape, g.dtype if g.dtype.kind == "f" else np.float64)
        grad_x[src] = g[dst]
        return grad_x

    def config(self) -> dict[str, Any]:
        return {"stride": list(self.stride), "padding": [list(p) for p in self.padding]}
