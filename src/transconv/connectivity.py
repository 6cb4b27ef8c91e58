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

Every consumer reads one of two tables, named after the two grids: the *small* grid
(the convolution's output, the transposed convolution's input) and the *big* grid (the
convolution's input, the transposed convolution's output).

``forward_table(spec, small, big)``
    ``(prod(small), prod(kernel))``: the flat big position each small position meets
    through each flat tap (``-1``: padding).  One row per output of the convolution, so
    it is the sparsity pattern of the matrix ``C``; per axis: ``axis_forward_tables``.
``inverse_csr(spec, small, big)``
    The same pairs grouped by big position, as CSR ``(indptr, small_index, tap_index)``:
    the pairs that reach big position ``b`` (the transposed convolution's output ``b``)
    are ``indptr[b]:indptr[b + 1]``, ordered by tap, then small position.  Per axis:
    ``axis_inverse_csr`` (what the fast kernels combine row by row).

``big`` defaults to the transposed convolution's output shape; a convolution on a grid
``big`` passes ``small = spec.conv_output_shape(big)``.  All four are cached and return
read-only arrays.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np

from .spec import ConvSpec, conv_output_length

__all__ = [
    "pad_index",
    "tap_index",
    "axis_tap_indices",
    "transpose_axis_tap_indices",
    "axis_phase_runs",
    "InverseCSR",
    "axis_forward_tables",
    "axis_inverse_csr",
    "forward_table",
    "inverse_csr",
]


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


def axis_phase_runs(table: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(lo, hi, phase, shift)`` per tap of one axis's zero-padded map ``table[i, t]`` (the
    big position small position ``i`` meets through tap ``t``, ``-1``: padding).

    Small positions ``lo[t] <= i < hi[t]`` meet big position ``stride * (i + shift[t]) +
    phase[t]``; the others meet padding (a tap that meets none has ``lo == hi == 0``).  This
    is the polyphase view the fast kernels read: each tap feeds one output phase at a
    constant offset.  Only zero padding has it; other modes are folded in first.

    >>> from transconv.spec import conv_transpose_spec
    >>> spec = conv_transpose_spec("conv_transpose", (3,), 3, stride=2, padding=1)
    >>> [a.tolist() for a in axis_phase_runs(transpose_axis_tap_indices(spec, (3,))[0], 2)]
    [[1, 0, 0], [3, 3, 2], [1, 0, 1], [-1, 0, 0]]
    """
    table = np.asarray(table, dtype=np.int64)
    k = table.shape[1]
    lo, hi, phase, shift = (np.zeros(k, dtype=np.int64) for _ in range(4))
    for t in range(k):
        hit = np.nonzero(table[:, t] >= 0)[0]
        if hit.size == 0:
            continue
        lo[t], hi[t] = hit[0], hit[-1] + 1
        offset = table[lo[t], t] - stride * lo[t]
        if not np.array_equal(table[lo[t]:hi[t], t], offset + stride * np.arange(lo[t], hi[t])):
            raise AssertionError("axis_phase_runs needs zero padding: a tap's positions are not an arithmetic run")
        phase[t] = offset % stride
        shift[t] = (offset - phase[t]) // stride
    for a in (lo, hi, phase, shift):
        a.setflags(write=False)
    return lo, hi, phase, shift


class InverseCSR(NamedTuple):
    """For each big position ``b``: the ``(small_index, tap_index)`` pairs ``indptr[b]:indptr[b + 1]``."""

    indptr: np.ndarray
    small_index: np.ndarray
    tap_index: np.ndarray

    def pairs(self, b: int) -> list[tuple[int, int]]:
        """The ``(small, tap)`` pairs that reach big position ``b``, as Python ints."""
        lo, hi = int(self.indptr[b]), int(self.indptr[b + 1])
        return list(zip(self.small_index[lo:hi].tolist(), self.tap_index[lo:hi].tolist()))


def _grids(spec: ConvSpec, small: Sequence[int], big: Sequence[int] | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    small = tuple(int(n) for n in small)
    big = spec.transpose_output_shape(small) if big is None else tuple(int(n) for n in big)
    return small, big


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.setflags(write=False)


@lru_cache(maxsize=512)
def _axis_table(n_small: int, n_big: int, kernel: int, stride: int, lo: int, hi: int, dilation: int, mode: str) -> np.ndarray:
    table = tap_index(n_big, kernel, stride, lo, hi, dilation, mode)
    if table.shape[0] < n_small:  # the big grid is too short for this many small positions
        raise AssertionError(f"connectivity: {n_big} big positions give {table.shape[0]} small ones, not {n_small}")
    # rows past n_small exist when output_padding >= stride (allowed if dilation is larger):
    # the convolution on the big grid has outputs the transposed input does not feed
    return table[:n_small]


@lru_cache(maxsize=512)
def _axis_inverse(n_small: int, n_big: int, kernel: int, stride: int, lo: int, hi: int, dilation: int, mode: str) -> InverseCSR:
    return _invert(_axis_table(n_small, n_big, kernel, stride, lo, hi, dilation, mode), n_big)


def _invert(table: np.ndarray, n_big: int) -> InverseCSR:
    """Group the valid entries of a ``(small, tap) -> big`` table by big position (then tap, then small)."""
    small, tap = np.nonzero(table >= 0)
    big = table[small, tap].astype(np.int64)
    order = np.lexsort((small, tap, big))
    indptr = np.zeros(n_big + 1, dtype=np.int64)
    np.cumsum(np.bincount(big, minlength=n_big), out=indptr[1:])
    result = InverseCSR(indptr, small[order].astype(np.int64), tap[order].astype(np.int64))
    _read_only(*result)
    return result


def _axis_keys(spec: ConvSpec, small: tuple[int, ...], big: tuple[int, ...]):
    return [
        (i, b, k, s, lo, hi, d, spec.padding_mode)
        for i, b, k, s, (lo, hi), d in zip(small, big, spec.kernel_size, spec.stride, spec.padding, spec.dilation)
    ]


def axis_forward_tables(spec: ConvSpec, small: Sequence[int], big: Sequence[int] | None = None) -> tuple[np.ndarray, ...]:
    """Per axis, the ``(small, kernel)`` table of the big position each small position meets through each tap.

    ``-1`` marks padding.  ``big`` defaults to ``spec.transpose_output_shape(small)``.

    >>> spec = ConvSpec(kernel_size=(3,), stride=(2,), dilation=(1,), padding=((1, 1),), output_padding=(0,))
    >>> axis_forward_tables(spec, (2,))[0].tolist()   # input 0 reaches outputs 0 and 1
    [[-1, 0, 1], [1, 2, -1]]
    """
    small, big = _grids(spec, small, big)
    return tuple(_axis_table(*key) for key in _axis_keys(spec, small, big))


def axis_inverse_csr(spec: ConvSpec, small: Sequence[int], big: Sequence[int] | None = None) -> tuple[InverseCSR, ...]:
    """Per axis, the inverse of :func:`axis_forward_tables`: the (small, tap) pairs reaching each big position.

    >>> spec = ConvSpec(kernel_size=(3,), stride=(2,), dilation=(1,), padding=((1, 1),), output_padding=(0,))
    >>> inverse = axis_inverse_csr(spec, (2,))[0]
    >>> [inverse.pairs(b) for b in range(3)]   # output 1 is reached by input 0 (tap 2) and 1 (tap 0)
    [[(0, 1)], [(1, 0), (0, 2)], [(1, 1)]]
    """
    small, big = _grids(spec, small, big)
    return tuple(_axis_inverse(*key) for key in _axis_keys(spec, small, big))


@lru_cache(maxsize=32)
def _forward_table(spec: ConvSpec, small: tuple[int, ...], big: tuple[int, ...]) -> np.ndarray:
    tables = axis_forward_tables(spec, small, big)
    d = len(tables)
    flat = np.zeros((1,) * (2 * d), dtype=np.int64)
    valid = np.ones((1,) * (2 * d), dtype=bool)
    step = 1
    for a in reversed(range(d)):  # C order: the last axis steps by 1
        view = [1] * (2 * d)
        view[a], view[d + a] = tables[a].shape
        m = tables[a].reshape(view)
        flat = flat + np.where(m >= 0, m, 0) * step
        valid = valid & (m >= 0)
        step *= big[a]
    table = np.where(valid, flat, -1).reshape(math.prod(small), math.prod(spec.kernel_size))
    _read_only(table)
    return table


def forward_table(spec: ConvSpec, small: Sequence[int], big: Sequence[int] | None = None) -> np.ndarray:
    """``(prod(small), prod(kernel))``: the flat big position each flat small position meets through each flat tap.

    ``-1`` marks padding; positions and taps are flattened in C order.  Row ``p`` is row
    ``p`` of the matrix ``C``'s sparsity pattern (the convolution's output ``p`` reads big
    positions ``table[p, t]`` with weight tap ``t``).

    The worked example (4x4 input, 3x3 kernel): output 0 reads the top-left window.

    >>> spec = ConvSpec((3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0),) * 2, output_padding=(0, 0))
    >>> forward_table(spec, spec.conv_output_shape((4, 4)), (4, 4))[0].tolist()
    [0, 1, 2, 4, 5, 6, 8, 9, 10]
    """
    return _forward_table(spec, *_grids(spec, small, big))


@lru_cache(maxsize=32)
def _inverse_csr(spec: ConvSpec, small: tuple[int, ...], big: tuple[int, ...]) -> InverseCSR:
    return _invert(_forward_table(spec, small, big), math.prod(big))


def inverse_csr(spec: ConvSpec, small: Sequence[int], big: Sequence[int] | None = None) -> InverseCSR:
    """For each flat big position (the transposed convolution's output), the (small position, tap) pairs that reach it.

    Returns ``InverseCSR(indptr, small_index, tap_index)``, flat C-order indices, pairs
    ordered by tap then small position.  ``numpy.diff(indptr)`` is the overlap map.

    The worked example: output (1, 1) of the 2x2 -> 4x4 transposed convolution is
    reached by input 0 through tap (1, 1), input 1 through (1, 0), input 2 through
    (0, 1) and input 3 through (0, 0).

    >>> spec = ConvSpec((3, 3), stride=(1, 1), dilation=(1, 1), padding=((0, 0),) * 2, output_padding=(0, 0))
    >>> inverse_csr(spec, (2, 2)).pairs(5)
    [(3, 0), (2, 1), (1, 3), (0, 4)]
    """
    return _inverse_csr(spec, *_grids(spec, small, big))
