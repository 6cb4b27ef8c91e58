"""Connectivity: which input position meets which kernel tap at which output position.

This is the one source of truth that the reference operator, the fast operators'
padding, the sparse matrix builder and the pictures all read.  A convolution is
separable in its *geometry* even when its weights are not, so everything is built per
spatial axis from two small integer maps and combined by broadcasting:

``pad_index(n, lo, hi, mode)``
    For each position of the padded axis (length ``lo + n + hi``), the input position
    whose value it holds, or ``-1`` where it holds a zero.  ``reflect`` mirrors about
    the edge samples (``[2, 1 | 0, 1, 2, 3 | 2, 1]``), ``replicate`` repeats them,
    ``circular`` wraps around; ``zeros`` is ``-1``.  All match
    ``torch.nn.functional.pad`` / ``numpy.pad`` (``reflect``, ``edge``, ``wrap``).

``tap_index(n, kernel, stride, padding, dilation, mode)``
    An ``(out, kernel)`` array: output position ``o`` meets tap ``t`` at input position
    ``pad_index[o * stride + t * dilation]`` (``-1``: it meets a zero).

The transposed convolution has no connectivity of its own: it is the adjoint, so it
reads the same ``tap_index`` of the convolution on its (larger) output grid and
scatters where the convolution gathers.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from .spec import ConvSpec, conv_output_length

__all__ = ["pad_index", "tap_index", "axis_tap_indices", "transpose_axis_tap_indices"]


@lru_cache(maxsize=512)
def pad_index(n: int, lo: int, hi: int, mode: str = "zeros") -> np.ndarray:
    """Source index of every position of an axis of length ``n`` padded by ``(lo, hi)``.

    >>> pad_index(4, 2, 2, "reflect").tolist()
    [2, 1, 0, 1, 2, 3, 2, 1]
    >>> pad_index(3, 1, 2, "zeros").tolist()
    [-1, 0, 1, 2, -1, -1]
    """
    q = np.arange(-lo, n + hi, dtype=np.int64)
    if mode == "zeros":
        index = np.where((q >= 0) & (q < n), q, -1)
    elif mode == "replicate":
        index = np.clip(q, 0, n - 1)
    elif mode == "circular":
        index = np.mod(q, n)
    elif mode == "reflect":
        if n == 1:
            index = np.zeros_like(q)
        else:
            period = 2 * (n - 1)
            r = np.mod(q, period)
            index = np.where(r < n, r, period - r)
    else:  # validated at the boundary; a new mode must be added here
        raise AssertionError(mode)
    index.setflags(write=False)
    return index


@lru_cache(maxsize=512)
def tap_index(n: int, kernel: int, stride: int, lo: int, hi: int, dilation: int, mode: str = "zeros") -> np.ndarray:
    """``(out, kernel)`` input positions read by each output position and tap (``-1`` = zero).

    The worked example's first axis (4 inputs, kernel 3): output 0 reads inputs 0,1,2.

    >>> tap_index(4, 3, 1, 0, 0, 1).tolist()
    [[0, 1, 2], [1, 2, 3]]
    >>> tap_index(3, 3, 2, 1, 1, 1).tolist()
    [[-1, 0, 1], [1, 2, -1]]
    """
    out = conv_output_length(n, kernel, stride, (lo, hi), dilation)
    padded = pad_index(n, lo, hi, mode)
    positions = np.arange(out)[:, None] * stride + np.arange(kernel)[None, :] * dilation
    index = padded[positions]
    index.setflags(write=False)
    return index


def axis_tap_indices(spec: ConvSpec, input_shape: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Per-axis ``tap_index`` of the convolution ``spec`` on spatial ``input_shape``."""
    return tuple(
        tap_index(int(n), k, s, lo, hi, d, spec.padding_mode)
        for n, k, s, (lo, hi), d in zip(input_shape, spec.kernel_size, spec.stride, spec.padding, spec.dilation)
    )


def transpose_axis_tap_indices(spec: ConvSpec, input_shape: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Per-axis maps of the transposed convolution on spatial ``input_shape`` (its small side).

    Row ``o`` of axis ``a`` lists where input ``o`` of the transposed convolution is
    scattered to, tap by tap.  These are the convolution's maps on the output grid;
    when ``output_padding >= stride`` (allowed if dilation is larger) that convolution
    has extra output rows that the transposed input does not feed, so they are dropped.
    """
    big = spec.transpose_output_shape(input_shape)
    return tuple(m[:i] for m, i in zip(axis_tap_indices(spec, big), input_shape))
