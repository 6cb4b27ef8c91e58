"""Compiled methods: one GEMM per block plus a compiled row scatter / gather, and a
direct compiled kernel for few channels.

All kernels read the connectivity split into *rows* (``RowPlan``): every spatial axis
but the last goes through a table (``outer[t, r]`` = the large-grid row that small-grid
row ``r`` meets through outer tap ``t``, ``-1`` where it meets padding), and the last
axis is an arithmetic run per tap (small position ``i`` in ``[lo, hi)`` meets large
position ``stride * (i + shift) + phase``).  Both are read off
:mod:`transconv.connectivity`, and the runs are checked against it when the plan is
built.  Padding modes other than zeros are the zero-padded problem with the padding
applied (conv) or folded back (conv_transpose, its adjoint) by ``direct.pad`` /
``direct.pad_adjoint``, so the kernels have one code path:

    conv            y[n, co, p]        = sum_{ci, t} w[co, ci, t] * x[n, ci, q(t, p)]
    conv_transpose  x[n, ci, q(t, p)] += sum_{co} w[co, ci, t] * y[n, co, p]

``"gemm"`` evaluates the channel contraction with BLAS (batch folded into the GEMM's
column dimension when planes are small, weights used in their own layout through a
transposed view, so no weight re-layout or cache) and moves data with numba:

    conv            cols[(ci, t), (n, p)] = x[n, ci, q(t, p)]       (a block of samples)
                    y[:, block]           = w.reshape(C_out, C_in * T) @ cols
    conv_transpose  Z[(co, t), (n, p)]    = w.reshape(C_in, C_out * T).T @ y[:, block]
                    x[n, co, q(t, p)]    += Z[(co, t), (n, p)]       (the fused col2im)

The transposed scatter is one design, phase planes (``PhasePlanes``): output position
``stride * J + rho`` (per axis) is position ``J`` of phase plane ``rho``, and each tap feeds
one plane at a constant offset (``connectivity.axis_phase_runs``).  So every tap adds runs
of its GEMM row to its plane, per output channel for all samples of a block, and the
planes are interleaved into the output rows once, cropped to the output's size.  Where
the planes can share the input's pitch (no axis but the first needs more than the input's
positions, the usual up-sampling), a tap's run is one masked unit-stride run over the
whole plane, all samples of the block at once; otherwise one run per input row.  Planes
past ``_PLANE_BYTES`` are built a block of grid rows at a time (the runs cut at the blocks'
edges when the table is built), so they stay in cache.  Tasks write disjoint memory (no
atomics).  On small grids with tens of channels the data moves channels-last instead
(``_scatters_channels_last``): the GEMM result ``z[(n, p), (t, co)]`` is added through the
connectivity's inverse (CSR) in runs of output channels.

The conv gather splits each input row into its stride phases once, into slots with zero
margins (``phase_margins``), so every tap is one unmasked unit-stride copy; outputs under
8 positions wide gather through the connectivity's forward table (``connectivity.forward_table``)
instead.

Each core takes a share of the samples (with fewer samples than cores: of the output
channels for conv_transpose, of the output rows for conv) and runs its GEMMs
(single-threaded BLAS) and its scatters back to back (see ``_split``).

Extra memory: the transposed convolution's GEMM result holds ``prod(k) / prod(s)``
times the output it produces (1x for kernel = stride, 4x for k4 s2); blocks over
samples and output channels keep all workers' results together under the output's
size (1 MB floor, 16 MB cap per worker), at least one plane's worth, and its phase planes
take at most ``_PLANE_BYTES`` per worker (blocks of ``_PLANE_BLOCK_BYTES`` past it).  The
convolution's gather buffer holds ``prod(k) * C_in`` values per output position; its blocks over
samples and output rows keep all workers' buffers under 1.5 times the output (1 MB
floor, 4 MB cap per worker), at least one output row's worth.  There is never a full
column buffer N x C*k^d x H x W.

Direct kernels whose last-axis kernel has 16 taps or more loop along the kernel row
instead (a span of the output per input value for conv_transpose, a dot product per
output for conv).

``"compiled_direct"`` skips BLAS for few channels (single-channel images, depthwise),
multiplying and accumulating rows straight from the input.

``"shift"`` (``shift_conv``) runs stride-1 layers as one GEMM over shifted contiguous runs
of the flat padded input (the transposed convolution as the convolution with the flipped
kernel), and 1x..x1 kernels at any stride as one stacked matmul with no gather.

Calls under ``_SERIAL_BELOW`` multiply-adds, or under ``_SPLIT_MACS`` on under
``_SPLIT_BYTES`` of data (:func:`splits`), run serial kernels in the calling thread.  The
internal choices (block size, scatter, gather, kernel loop order) can be fixed with
:func:`tuned`, for tests and the benchmark's GEMM-only column.
"""

from __future__ import annotations

import contextvars
import math
import os
import queue
import threading
import types
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache, wraps
from typing import NamedTuple

import numpy as np

from ..connectivity import axis_phase_runs, axis_tap_indices, forward_table, inverse_csr, transpose_axis_tap_indices
from ..spec import ConvSpec, transposed_as_direct_conv
from .direct import flipped_weight, pad, pad_adjoint

try:  # numba is a core dependency; a broken install makes the methods decline, not the package fail
    import numba
    from numba import njit, prange, uintp

    NUMBA_ERROR = None
except Exception as exc:  # pragma: no cover - exercised only without numba
    numba = None
    NUMBA_ERROR = f"numba is not importable ({exc})"

__all__ = ["NUMBA_ERROR", "RowPlan", "row_plan", "conv_row_plan", "transpose_row_plan", "phase_planes", "gemm_conv",
           "gemm_conv_transpose", "direct_conv", "direct_conv_transpose", "ColumnGather", "column_gather", "Tuning", "tuned", "shift_conv", "shift_conv_transpose", "shift_supports", "shift_waste"]


# --------------------------------------------------------------------------------------
# Row plans from the connectivity.
# --------------------------------------------------------------------------------------


TABLE_LIMIT = 256 * 2**20  # bytes of row plan a compiled method may build


@dataclass(frozen=True)
class RowPlan:
    """The connectivity of a zero-padded problem as rows (see the module docstring).

    ``small`` is the grid the taps are indexed from (the conv output, the transposed
    input), ``big`` the other one.  ``ptr, pair_tap, pair_row`` list, for each big row,
    the (outer tap, small row) pairs that reach it (CSR, for output-stationary
    scatters).  Per last-axis tap ``j``: small positions ``lo[j] <= i < hi[j]`` meet big
    position ``stride * (i + shift[j]) + phase[j]``.
    """

    small_rows: int
    small_width: int
    big_rows: int
    big_width: int
    outer: np.ndarray
    ptr: np.ndarray
    pair_tap: np.ndarray
    pair_row: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    phase: np.ndarray
    shift: np.ndarray
    stride: int
    offset: np.ndarray  # per last tap: stride * shift + phase, the big position of small 0
    first_tap: np.ndarray  # per small last-axis position: the taps that meet it are
    end_tap: np.ndarray  # first_tap <= j < end_tap (they are consecutive)

    @property
    def last_taps(self) -> int:
        return int(self.lo.shape[0])

    @property
    def phase_width(self) -> int:
        """Length of one phase accumulator: ceil(big_width / stride)."""
        return -(-self.big_width // self.stride)

    @cached_property
    def margins(self) -> tuple[int, int]:
        """:func:`phase_margins` of this plan, worked out once (the conv gather reads it on every call)."""
        return phase_margins(self)


def plan_bytes(spec: ConvSpec, small: tuple[int, ...]) -> int:
    """Size of the outer table (and its inverse) a compiled method builds."""
    outer_taps = math.prod(spec.kernel_size[:-1])
    return 3 * outer_taps * math.prod(small[:-1]) * 8


def row_plan(maps, big: tuple[int, ...], stride: int) -> RowPlan:
    """Split per-axis maps (``maps[a][i, t]``: big position met by small ``i`` via tap ``t``,
    ``-1`` = padding) into an outer-row table and last-axis runs."""
    small = tuple(m.shape[0] for m in maps)
    outer_maps, last = maps[:-1], np.asarray(maps[-1], dtype=np.int64)
    taps = tuple(m.shape[1] for m in outer_maps)
    flat = np.zeros(taps + small[:-1], dtype=np.int64)
    valid = np.ones(taps + small[:-1], dtype=bool)
    step, d = 1, len(outer_maps)
    for a in reversed(range(d)):
        view = [1] * (2 * d)
        view[a], view[d + a] = taps[a], small[a]
        m = outer_maps[a].T.reshape(view)
        flat = flat + np.where(m >= 0, m, 0) * step
        valid = valid & (m >= 0)
        step *= big[a]
    outer = np.where(valid, flat, -1).reshape(math.prod(taps), math.prod(small[:-1]))
    big_rows = math.prod(big[:-1])
    tap_of, row_of = np.nonzero(outer >= 0)
    target = outer[tap_of, row_of]
    order = np.argsort(target, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(np.bincount(target, minlength=big_rows))])
    lo, hi, phase, shift = axis_phase_runs(last, stride)
    offset = stride * shift + phase
    hits = (np.arange(small[-1])[:, None] >= lo[None, :]) & (np.arange(small[-1])[:, None] < hi[None, :])
    first_tap = np.where(hits.any(axis=1), hits.argmax(axis=1), 0)
    end_tap = first_tap + hits.sum(axis=1)
    if not np.array_equal(hits.sum(axis=1), [hits[i, a:b].sum() for i, (a, b) in enumerate(zip(first_tap, end_tap))]):
        raise AssertionError("row_plan: the taps meeting a position are not consecutive")
    arrays = (outer, ptr.astype(np.int64), tap_of[order].astype(np.int64), row_of[order].astype(np.int64),
              lo, hi, phase, shift)
    extra = (offset, first_tap.astype(np.int64), end_tap.astype(np.int64))
    for a in arrays + extra:
        a.setflags(write=False)
    return RowPlan(math.prod(small[:-1]), small[-1], big_rows, big[-1], *arrays, int(stride), *extra)


def phase_margins(plan: RowPlan) -> tuple[int, int]:
    """``(margin, pitch)`` of zero-margined phase slots: phase ``ph`` of a big row stored at
    ``ph * pitch + margin + m`` makes small position ``i`` of last-axis tap ``j`` (that
    meets any position) slot ``phase[j] * pitch + margin + shift[j] + i``, in range and
    zero exactly where the tap meets padding (outside ``lo[j] <= i < hi[j]``)."""
    hit = plan.hi > plan.lo
    if not hit.any():
        return 0, plan.phase_width
    margin = max(0, -int(plan.shift[hit].min()))
    reach = plan.small_width + int(plan.shift[hit].max())  # one past the last phase index read
    return margin, margin + max(plan.phase_width, reach)


def _zero_core(spec: ConvSpec) -> ConvSpec:
    """The same geometry with no padding at all: the zero-padding problem on the already padded grid."""
    return replace(spec, padding=((0, 0),) * spec.ndim, padding_mode="zeros")


def _folds(spec: ConvSpec) -> bool:
    return spec.padding_mode != "zeros" and any(lo or hi for lo, hi in spec.padding)


def zero_padded(transposed: bool):
    """Decorate a method that handles zero padding only so that it takes every mode: a
    convolution gathers from ``direct.pad(x)``, a transposed convolution (its adjoint)
    computes the zero-padded result and folds it back with ``direct.pad_adjoint``."""

    def wrap(method):
        @wraps(method)
        def run(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
            if not _folds(spec):
                return method(x, w, spec)
            core = _zero_core(spec)
            if transposed:
                full = method(x, w, core)
                return np.ascontiguousarray(pad_adjoint(full, spec, spec.transpose_output_shape(x.shape[2:])))
            return method(np.ascontiguousarray(pad(x, spec)), w, core)

        return run

    return wrap


@lru_cache(maxsize=32)
def transpose_row_plan(spec: ConvSpec, small: tuple[int, ...]) -> RowPlan:
    """The transposed convolution's :class:`RowPlan` on input ``small`` (cached), read off the connectivity.

    >>> from transconv.spec import conv_transpose_spec
    >>> transpose_row_plan(conv_transpose_spec("conv_transpose", (2, 2), 3), (2, 2)).outer.shape
    (3, 2)
    """
    return row_plan(transpose_axis_tap_indices(spec, small), spec.transpose_output_shape(small), spec.stride[-1])


@lru_cache(maxsize=32)
def conv_row_plan(spec: ConvSpec, big: tuple[int, ...]) -> RowPlan:
    """The convolution's :class:`RowPlan` on input ``big`` (cached), read off the connectivity.

    >>> from transconv.spec import conv_spec
    >>> conv_row_plan(conv_spec("conv", (4, 4), 3), (4, 4)).outer.shape
    (3, 2)
    """
    return row_plan(axis_tap_indices(spec, big), big, spec.stride[-1])


@lru_cache(maxsize=16)
def _conv_flat(spec: ConvSpec, big: tuple[int, ...]) -> np.ndarray:
    """``table[t, p]``: :func:`_conv_flat_by_position` tap-major, for the flat gather, which
    reads one tap's positions together."""
    table = np.ascontiguousarray(_conv_flat_by_position(spec, big).T)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=16)
def _conv_flat_by_position(spec: ConvSpec, big: tuple[int, ...]) -> np.ndarray:
    """``table[p, t]``: the flat input position output ``p`` reads through tap ``t`` (``-1`` =
    padding): the connectivity's forward table, as the channels-last gather reads it."""
    table = np.ascontiguousarray(forward_table(spec, spec.conv_output_shape(big), big), dtype=np.int32)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=16)
def _transpose_flat(spec: ConvSpec, small: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ptr, tap, position)``: the connectivity's inverse (CSR), the pairs ``ptr[o]:ptr[o + 1]``
    of small position and tap that reach output ``o``."""
    inverse = inverse_csr(spec, small)
    return inverse.indptr, inverse.tap_index, inverse.small_index


@dataclass(frozen=True)
class PhasePlanes:
    """The transposed convolution's scatter as phase planes: output position ``stride * J +
    rho`` (per axis) is position ``J`` of phase plane ``rho``, and tap ``t`` feeds one plane,
    ``phase_of[t]``, from input position ``i`` at plane position ``J = i + shift_t`` (per axis,
    :func:`connectivity.axis_phase_runs`).  So each tap adds *runs* of its GEMM row to its
    plane, and the planes are interleaved into the output rows once, cropped to the output.

    The planes have the shape ``grid``: ``ceil(big / stride)`` per axis, or the input's
    own shape on every axis but the first where that is no smaller (``merged``).  Then plane
    and input rows have one pitch, a tap's input positions sit at one flat offset from its
    plane positions, and each tap adds *one* run over the whole plane, ``mask[t]`` (by plane
    position) zeroing the positions that meet padding where ``masked[t]``.  Otherwise each
    tap adds one run per input row it reaches.

    The planes are built ``block_rows`` grid rows at a time (so they stay in cache), and the
    runs are cut at the blocks' edges: segment ``e`` of tap ``t`` in block ``b``
    (``seg_ptr[b * T + t] <= e < seg_ptr[b * T + t + 1]``) adds input positions ``src[e] +
    k`` to the block's plane positions ``dst[e] + k`` for ``0 <= k < length[e]``.  Output
    row ``o`` (flat over the outer axes) is row ``row_of[o]`` (flat over the grid's outer
    axes) of plane ``row_phase[o]`` (its last-axis phase 0) and the ``last_stride - 1``
    planes after it; it starts at ``row_start[o] = (row_of[o] % block_rows) * grid[-1]`` in its
    block, and ``row_order[row_ptr[b]:row_ptr[b + 1]]`` are block ``b``'s output rows, in order.
    """

    grid: tuple[int, ...]
    merged: bool
    block_rows: int
    blocks: int
    masked: np.ndarray  # (T,) uint8: the tap's run passes positions that meet padding
    phase_of: np.ndarray
    seg_ptr: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    length: np.ndarray
    mask: np.ndarray  # (T, prod(grid)) uint8 if merged, else (T, 0)
    row_phase: np.ndarray
    row_start: np.ndarray
    row_order: np.ndarray
    row_ptr: np.ndarray
    phases: int
    last_stride: int
    big_width: int


def _positions(shape: tuple[int, ...]) -> np.ndarray:
    """``(len(shape), prod(shape))``: every position of ``shape`` in C order (one, of no axes, for ``()``)."""
    return np.indices(shape).reshape(len(shape), -1) if shape else np.zeros((0, 1), dtype=np.int64)


def _flat_index(index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``np.ravel_multi_index`` that also takes no axes (every position is 0)."""
    return np.ravel_multi_index(tuple(index), shape) if shape else np.zeros(index.shape[1], dtype=np.int64)


def phase_planes(spec: ConvSpec, small: tuple[int, ...], merge: bool = True) -> PhasePlanes:
    """:class:`PhasePlanes` of the zero-padded transposed convolution ``spec`` on input
    ``small``, read off the connectivity.  ``merge=False`` keeps one run per input row even
    where a tap's whole plane could be one run (as it is also where its mask would pass
    ``_MASK_BYTES``).

    >>> from transconv.spec import conv_transpose_spec
    >>> planes = phase_planes(conv_transpose_spec("conv_transpose", (4, 4), 4, stride=2, padding=1), (4, 4))
    >>> planes.grid, planes.phases  # the edge taps of each row (0 and 3) pass the padding
    ((4, 4), 4)
    >>> planes.masked.reshape(4, 4).tolist()[0]
    [1, 0, 0, 1]
    """
    big = spec.transpose_output_shape(small)
    strides = spec.stride
    runs = [axis_phase_runs(m, s) for m, s in zip(transpose_axis_tap_indices(spec, small), strides)]
    lo, hi, rho, shift = (np.stack(np.meshgrid(*[r[i] for r in runs], indexing="ij"), axis=-1).reshape(-1, spec.ndim)
                          for i in range(4))  # (T, ndim): each flat tap's runs per axis
    T = lo.shape[0]
    whole = tuple(-(-b // s) for b, s in zip(big, strides))
    merged_grid = (whole[0],) + tuple(small[1:])
    merged = (merge and all(q <= n for q, n in zip(whole[1:], small[1:]))
              and T * math.prod(merged_grid) <= _MASK_BYTES)
    grid = merged_grid if merged else whole
    phase_of = np.ravel_multi_index(tuple(rho.T), strides)
    seg_ptr, src, dst, length = [0], [], [], []
    mask = np.zeros((T, math.prod(grid) if merged else 0), dtype=np.uint8)
    tap_masked = np.zeros(T, dtype=np.uint8)
    for t in range(T):
        if (hi[t] > lo[t]).all() and merged:  # one run from the first plane position the tap reaches to the last
            first, last = lo[t] + shift[t], hi[t] - 1 + shift[t]
            dst.append(int(np.ravel_multi_index(first, grid)))
            src.append(int(np.ravel_multi_index(lo[t], small)))
            length.append(int(np.ravel_multi_index(last, grid)) + 1 - dst[-1])
            mask[t].reshape(grid)[tuple(slice(a, b + 1) for a, b in zip(first, last))] = 1
            tap_masked[t] = not mask[t, dst[-1]:dst[-1] + length[-1]].all()
        elif (hi[t] > lo[t]).all():  # one run per input row the tap reaches
            rows = _positions(tuple(hi[t, :-1] - lo[t, :-1])) + lo[t, :-1, None]
            starts = np.vstack([rows, np.full(rows.shape[1], lo[t, -1])])  # (ndim, rows)
            src.extend(np.ravel_multi_index(tuple(starts), small).tolist())
            dst.extend(np.ravel_multi_index(tuple(starts + shift[t, :, None]), grid).tolist())
            length.extend([int(hi[t, -1] - lo[t, -1])] * rows.shape[1])
        seg_ptr.append(len(src))
    # blocks of grid rows past _PLANE_BYTES (counted at 8 bytes an element: float32 and float64 alike)
    grid_rows, width = math.prod(grid[:-1]), grid[-1]
    row_bytes = math.prod(strides) * width * 8
    block_rows = grid_rows if row_bytes * grid_rows <= _PLANE_BYTES else max(1, _PLANE_BLOCK_BYTES // row_bytes)
    blocks, block_len = -(-grid_rows // block_rows), block_rows * width
    # cut each run at the blocks' edges (one piece per block it crosses), then order the
    # pieces by (block, tap), ascending within a tap
    tap = np.repeat(np.arange(T), np.diff(seg_ptr))
    src, dst, length = (np.asarray(v, dtype=np.int64) for v in (src, dst, length))
    first = dst // block_len
    count = (dst + length - 1) // block_len - first + 1
    run = np.repeat(np.arange(len(dst)), count)  # the run each piece comes from
    block = first[run] + np.arange(len(run)) - np.repeat(np.cumsum(count) - count, count)
    start = np.maximum(dst[run], block * block_len)
    end = np.minimum(dst[run] + length[run], (block + 1) * block_len)
    order = np.lexsort((start, tap[run], block))
    seg_ptr = np.concatenate([[0], np.cumsum(np.bincount((block * T + tap[run])[order], minlength=blocks * T))])
    src = (src[run] + start - dst[run])[order]
    dst, length = (start - block * block_len)[order], (end - start)[order]
    outer = _positions(big[:-1])
    outer_stride = np.array(strides[:-1], dtype=np.int64)[:, None]
    row_phase = _flat_index(outer % outer_stride, strides[:-1]) * strides[-1]
    row_of = _flat_index(outer // outer_stride, grid[:-1])
    row_start = row_of % block_rows * width
    row_order = np.argsort(row_of // block_rows, kind="stable")  # output rows by block, in output order within
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(row_of // block_rows, minlength=blocks))])
    arrays = [tap_masked] + [np.asarray(a, dtype=np.int64).reshape(-1) for a in (phase_of, seg_ptr, src, dst, length)]
    rows = (row_phase, row_start, row_order, row_ptr)
    arrays += [mask] + [np.asarray(a, dtype=np.int64).reshape(-1) for a in rows]
    for a in arrays:
        a.setflags(write=False)
    return PhasePlanes(grid, merged, int(block_rows), int(blocks), *arrays, math.prod(strides), int(strides[-1]),
                       int(big[-1]))


@lru_cache(maxsize=16)
def _transpose_planes(spec: ConvSpec, small: tuple[int, ...], merge: bool) -> PhasePlanes:
    return phase_planes(spec, small, merge)


# --------------------------------------------------------------------------------------
# Kernels (compiled lazily on first call; cache=True keeps them across processes).
# Indices are cast to uintp: numba then drops its negative-index wraparound, which
# otherwise keeps LLVM from vectorising the row loops (docs/performance.md).
# --------------------------------------------------------------------------------------

if numba is not None:
    _serial = dict(cache=True, nogil=True, boundscheck=False)
    _parallel = dict(_serial, parallel=True)

    @njit(**_serial, inline="always")
    def _add_runs(acc, src, base, step, wv, lo, hi, phase, shift, width):  # pragma: no cover - compiled
        # acc[phase[j] * width + i + shift[j]] += wv[j] * src[base + j * step + i] for i in [lo[j], hi[j]):
        # one input row for every tap (step 0), or one row per tap (the GEMM result, step = its row length)
        for j in range(lo.shape[0]):
            a = phase[j] * width + shift[j]
            b = base + j * step
            w = wv[j]
            for i in range(lo[j], hi[j]):
                acc[uintp(a + i)] += w * src[uintp(b + i)]

    @njit(**_serial, inline="always")
    def _interleave(acc, dst, base, big_width, stride, width):  # pragma: no cover - compiled
        # dst[base + stride * i + ph] = acc[ph * width + i]: the phases back into one row
        # (one exit, as _deinterleave)
        if stride == 1:
            for i in range(big_width):
                dst[uintp(base + i)] = acc[uintp(i)]
        elif stride == 2:  # pairs in one pass: faster than a pass per phase
            half = big_width // 2
            for i in range(half):
                dst[uintp(base + 2 * i)] = acc[uintp(i)]
                dst[uintp(base + 2 * i + 1)] = acc[uintp(width + i)]
            if big_width % 2:
                dst[uintp(base + big_width - 1)] = acc[uintp(half)]
        else:
            for ph in range(stride):
                count = (big_width - ph + stride - 1) // stride
                for i in range(count):
                    dst[uintp(base + ph + stride * i)] = acc[uintp(ph * width + i)]

    @njit(**_serial, inline="always")
    def _deinterleave(src, base, big_width, stride, pitch, start, phases):  # pragma: no cover - compiled
        # phases[start + ph * pitch + m] = src[base + stride * m + ph]: a row split into its phases.
        # One exit, no early returns: inlined with those, LLVM leaves the loops scalar.
        if stride == 1:
            for m in range(big_width):
                phases[uintp(start + m)] = src[uintp(base + m)]
        elif stride == 2:  # both phases in one pass: LLVM vectorises the pair of loads
            half = big_width // 2
            for m in range(half):
                phases[uintp(start + m)] = src[uintp(base + 2 * m)]
                phases[uintp(start + pitch + m)] = src[uintp(base + 2 * m + 1)]
            if big_width % 2:
                phases[uintp(start + half)] = src[uintp(base + big_width - 1)]
        else:
            for ph in range(stride):
                count = (big_width - ph + stride - 1) // stride
                for m in range(count):
                    phases[uintp(start + ph * pitch + m)] = src[uintp(base + ph + stride * m)]

    def _scatter_channels_last_py(z, out, ptr, tap, pos, P, cb):  # pragma: no cover - compiled
        # out[n, o, c] = sum over the pairs e of o of z[n * P + pos[e], tap[e] * cb + c] (CSR, see
        # connectivity.inverse_csr): z is the GEMM result with rows (sample, small position) and
        # columns (tap, output channel), out channels-last, so every pair adds one run of cb channels
        big = ptr.shape[0] - 1
        nb = out.shape[0] // big
        T = z.shape[1] // cb
        src = z.reshape(-1)
        dst = out.reshape(-1)
        for task in prange(nb * big):
            n = task // big
            o = task - n * big
            d = task * cb
            for c in range(cb):
                dst[uintp(d + c)] = 0
            for e in range(ptr[o], ptr[o + 1]):
                s0 = ((n * P + pos[e]) * T + tap[e]) * cb
                for c in range(cb):
                    dst[uintp(d + c)] += src[uintp(s0 + c)]

    def _scatter_planes_py(z, T, out, n0, co0, cb, nb, P, cols, phase_of, seg_ptr, seg_src, seg_dst, seg_len, mask,
                           masked, row_phase, row_start, row_order, row_ptr, phases, blocks, block_rows, grid_width,
                           last_stride, big_width, spans):  # pragma: no cover - compiled
        # out[n0 + n, co0 + co] from the block's GEMM result z, flat (cb * T, nb * P): per output
        # channel, every tap adds its runs (segments) to its phase plane (PhasePlanes) for each
        # of the nb samples, a block of grid rows at a time so the planes stay in cache, and the
        # block's output rows are interleaved from them.  With spans (one block of whole planes of
        # the input's grid) a tap's run covers all nb samples at once, the mask tiled by the
        # caller.  Each channel's planes are its own np.zeros (a buffer passed in was no faster).
        zero = z.dtype.type(0)
        plane = block_rows * grid_width  # one phase's block for one sample
        pitch = nb * plane  # ... for all samples: phase ph, sample n at (ph * nb + n) * plane
        full = big_width // last_stride  # output positions per phase before the cropped tail
        for co in prange(cb):
            acc = np.zeros(phases * pitch, dtype=z.dtype)
            for b in range(blocks):
                p0 = b * block_rows * grid_width
                if b > 0:
                    acc[:] = zero
                for t in range(T):
                    row = co * T * cols + t * cols
                    mt = mask[t]
                    for e in range(seg_ptr[b * T + t], seg_ptr[b * T + t + 1]):
                        length = seg_len[e]
                        a0 = phase_of[t] * pitch + seg_dst[e]
                        s0 = row + seg_src[e]
                        if spans:  # all samples in one run; the positions between them are masked
                            if masked[t] or length < P:
                                m0 = seg_dst[e]
                                for k in range(length + (nb - 1) * P):
                                    acc[uintp(a0 + k)] += z[uintp(s0 + k)] if mt[uintp(m0 + k)] else zero
                            else:
                                for k in range(nb * P):
                                    acc[uintp(a0 + k)] += z[uintp(s0 + k)]
                        elif masked[t]:
                            m0 = p0 + seg_dst[e]
                            for n in range(nb):
                                for k in range(length):
                                    v = z[uintp(s0 + n * P + k)]
                                    acc[uintp(a0 + n * plane + k)] += v if mt[uintp(m0 + k)] else zero
                        else:
                            for n in range(nb):
                                for k in range(length):
                                    acc[uintp(a0 + n * plane + k)] += z[uintp(s0 + n * P + k)]
                for n in range(nb):  # the block's output rows, in output order
                    dst = out[n0 + n, co0 + co]
                    for q in range(row_ptr[b], row_ptr[b + 1]):
                        o = q if blocks == 1 else row_order[q]
                        r = row_phase[o] * pitch + n * plane + row_start[o]
                        d0 = o * big_width
                        if last_stride == 1:
                            for i in range(big_width):
                                dst[uintp(d0 + i)] = acc[uintp(r + i)]
                        elif last_stride == 2:  # pairs in one pass
                            half = big_width // 2
                            for i in range(half):
                                dst[uintp(d0 + 2 * i)] = acc[uintp(r + i)]
                                dst[uintp(d0 + 2 * i + 1)] = acc[uintp(r + pitch + i)]
                            if big_width % 2:
                                dst[uintp(d0 + big_width - 1)] = acc[uintp(r + half)]
                        else:  # a pass per phase over the whole groups of last_stride, then the cropped tail
                            for k in range(last_stride):
                                for i in range(full):
                                    dst[uintp(d0 + last_stride * i + k)] = acc[uintp(r + k * pitch + i)]
                            for k in range(big_width - full * last_stride):
                                dst[uintp(d0 + last_stride * full + k)] = acc[uintp(r + k * pitch + full)]

    def _direct_transpose_py(y, w, out, groups, ptr, pair_tap, pair_row, lo, hi, phase, shift,
                             small_width, big_rows, big_width, stride, chunks, along_kernel, offset, first_tap,
                             end_tap, tap_step):  # pragma: no cover - compiled
        # out[n, g*co_g + co, row o] = sum over ci of group g and taps reaching o of w[ci, co, t] * y[n, ci, p]
        N, C_in, P = y.shape
        co_g = w.shape[1]
        kl = lo.shape[0]
        ci_g = C_in // groups
        C_out = co_g * groups
        width = (big_width + stride - 1) // stride
        rows_per_chunk = (big_rows + chunks - 1) // chunks
        for task in prange(N * C_out * chunks):
            chunk = task % chunks
            plane = task // chunks
            co_all = plane % C_out
            n = plane // C_out
            g = co_all // co_g
            co = co_all % co_g
            dst = out[n, co_all]
            acc = np.empty(stride * width, dtype=y.dtype)
            for o in range(chunk * rows_per_chunk, min(big_rows, (chunk + 1) * rows_per_chunk)):
                if along_kernel:
                    # long kernels: each input value adds the kernel row to a contiguous span
                    # of the output row (unit-stride when dilation is 1)
                    ob = o * big_width
                    for i in range(big_width):
                        dst[uintp(ob + i)] = 0
                    for ci in range(g * ci_g, (g + 1) * ci_g):
                        src = y[n, ci]
                        wrow = w[ci, co]
                        for e in range(ptr[o], ptr[o + 1]):
                            t0 = pair_tap[e] * kl
                            sb = pair_row[e] * small_width
                            for i in range(small_width):
                                v = src[uintp(sb + i)]
                                j0 = first_tap[i]
                                b = ob + stride * i + offset[j0] - j0 * tap_step
                                if tap_step == 1:  # the common case, unit stride both sides
                                    for j in range(j0, end_tap[i]):
                                        dst[uintp(b + j)] += v * wrow[uintp(t0 + j)]
                                else:
                                    for j in range(j0, end_tap[i]):
                                        dst[uintp(b + j * tap_step)] += v * wrow[uintp(t0 + j)]
                    continue
                acc[:] = 0
                for ci in range(g * ci_g, (g + 1) * ci_g):
                    src = y[n, ci]
                    for e in range(ptr[o], ptr[o + 1]):
                        t0 = pair_tap[e] * kl
                        _add_runs(acc, src, pair_row[e] * small_width, 0, w[ci, co, t0:t0 + kl], lo, hi, phase,
                                  shift, width)
                _interleave(acc, dst, o * big_width, big_width, stride, width)

    def _gather_py(x, cols, ci0, ci_g, n0, nb, r0, r1, outer, lo, hi, phase, shift, small_width, big_width,
                   stride, margin, pitch):  # pragma: no cover - compiled
        # cols[(ci, t), (n, r, i)] = x[n0 + n, ci0 + ci, q(t, (r, i))] for small rows r0 <= r < r1.
        # One task per (channel, outer tap): each big row it reads is split into its stride
        # phases once, into slots of `pitch` with `margin` zeros before the phase (and zeros
        # after it): every last-axis tap is then one unmasked unit-stride copy of the row.
        kl = lo.shape[0]
        T_outer = outer.shape[0]
        span = (r1 - r0) * small_width
        cols_width = cols.shape[1]
        flat = cols.reshape(-1)  # flat offsets: a row view per (row, tap) costs more than its copy
        for task in prange(ci_g * T_outer):
            ci = task // T_outer
            to = task % T_outer
            phases = np.zeros(stride * pitch, dtype=x.dtype)  # margins stay zero: rows only fill the phases
            first = (ci * T_outer + to) * kl * cols_width
            for n in range(nb):
                src = x[n0 + n, ci0 + ci]
                for r in range(r0, r1):
                    base = first + n * span + (r - r0) * small_width
                    big_row = outer[to, r]
                    if big_row < 0:
                        for j in range(kl):
                            for i in range(small_width):
                                flat[uintp(base + j * cols_width + i)] = 0
                        continue
                    _deinterleave(src, big_row * big_width, big_width, stride, pitch, margin, phases)
                    for j in range(kl):
                        d0 = base + j * cols_width
                        if hi[j] <= lo[j]:  # a tap that meets no position of the row
                            for i in range(small_width):
                                flat[uintp(d0 + i)] = 0
                            continue
                        s0 = phase[j] * pitch + margin + shift[j]
                        for i in range(small_width):
                            flat[uintp(d0 + i)] = phases[uintp(s0 + i)]

    def _gather_flat_py(x, cols, ci0, ci_g, n0, nb, p0, p1, table):  # pragma: no cover - compiled
        # cols[(ci, t), (n, p - p0)] = x[n0 + n, ci0 + ci, table[t, p]] (0 where -1), p0 <= p < p1.
        # For narrow outputs (rows of a few positions) a masked load per element beats row
        # runs (docs/performance.md gives the crossover).
        T = table.shape[0]
        span = p1 - p0
        zero = x.dtype.type(0)  # a literal 0 would make the select float64
        for task in prange(ci_g * T):
            ci = task // T
            t = task % T
            dst = cols[task]
            for n in range(nb):
                src = x[n0 + n, ci0 + ci]
                base = n * span - p0
                for p in range(p0, p1):
                    q = table[t, p]
                    v = src[uintp(max(q, 0))]
                    dst[uintp(base + p)] = v if q >= 0 else zero

    def _gather_channels_last_py(x, cols, table, positions, r0, r1):  # pragma: no cover - compiled
        # cols[r - r0, (t, c)] = x[n * positions + table[p, t], c] (0 where the table says -1,
        # padding) for rows r = (n, p) of the output, r0 <= r < r1: x is one group's input
        # channels-last (samples x input positions, channels), so every (row, tap) is one
        # unit-stride run of the channels, and taps reading consecutive positions (a kernel
        # row without dilation, away from the padding) one run together
        P, T = table.shape
        c_g = x.shape[1]
        src = x.reshape(-1)
        dst = cols.reshape(-1)
        for r in prange(r0, r1):
            n = r // P
            p = r - n * P
            d0 = (r - r0) * T * c_g
            t = 0
            while t < T:
                q = table[p, t]
                d = d0 + t * c_g
                if q < 0:
                    for c in range(c_g):
                        dst[uintp(d + c)] = 0
                    t += 1
                    continue
                e = t + 1
                while e < T and table[p, e] == q + e - t:
                    e += 1
                s0 = (n * positions + q) * c_g
                for c in range((e - t) * c_g):
                    dst[uintp(d + c)] = src[uintp(s0 + c)]
                t = e

    def _gather_shift_py(x, cols, ci0, ci_g, n0, nb, q0, span, length, offsets):  # pragma: no cover - compiled
        # cols[(ci, t), (n, q)] = x[n0 + n, ci0 + ci, q0 + q + offsets[t]] for q < length, 0 up to span:
        # with stride 1 every tap's window of the flat padded input is one contiguous run
        T = offsets.shape[0]
        zero = x.dtype.type(0)
        for task in prange(ci_g * T):
            ci = task // T
            t = task % T
            dst = cols[task]
            s0 = q0 + offsets[t]
            for n in range(nb):
                src = x[n0 + n, ci0 + ci]
                d0 = n * span
                for q in range(length):
                    dst[uintp(d0 + q)] = src[uintp(s0 + q)]
                for q in range(length, span):
                    dst[uintp(d0 + q)] = zero

    @njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc"})
    def _all_finite(a):  # pragma: no cover - compiled
        # v - v is 0 for a finite v and NaN for a NaN or an infinity; reassoc lets the sum
        # vectorise, and without nnan / ninf nothing may fold v - v to 0
        total = a.dtype.type(0)
        for i in range(a.shape[0]):
            total += a[uintp(i)] - a[uintp(i)]
        return total == 0

    @njit(cache=True, nogil=True, boundscheck=False, fastmath={"reassoc", "contract"})
    def _dot(a, ai, b, bi, n):  # pragma: no cover - compiled
        # sum_j a[ai + j] * b[bi + j]; reassociation lets LLVM vectorise the reduction
        total = a.dtype.type(0)
        for j in range(n):
            total += a[uintp(ai + j)] * b[uintp(bi + j)]
        return total

    def _direct_conv_py(x, w, out, groups, outer, lo, hi, phase, shift, small_width, big_width, stride,
                        chunks, along_kernel, offset, first_tap, end_tap, tap_step):  # pragma: no cover - compiled
        # out[n, co, (r, i)] = sum_{ci, t} w[co, ci, t] * x[n, g*ci_g + ci, q(t, (r, i))]
        N, C_out, P = out.shape
        kl = lo.shape[0]
        ci_g = w.shape[1]
        co_g = C_out // groups
        rows = outer.shape[1]
        rows_per_chunk = (rows + chunks - 1) // chunks
        width = (big_width + stride - 1) // stride
        for task in prange(N * C_out * chunks):
            chunk = task % chunks
            plane = task // chunks
            co = plane % C_out
            n = plane // C_out
            g = co // co_g
            dst = out[n, co]
            phases = np.empty(stride * width, dtype=x.dtype)
            for r in range(chunk * rows_per_chunk, min(rows, (chunk + 1) * rows_per_chunk)):
                base = r * small_width
                for i in range(small_width):
                    dst[uintp(base + i)] = 0
                for ci in range(ci_g):
                    src = x[n, g * ci_g + ci]
                    wrow = w[co, ci]
                    for to in range(outer.shape[0]):
                        big_row = outer[to, r]
                        if big_row < 0:
                            continue
                        rb = big_row * big_width
                        if along_kernel and tap_step == 1:
                            # long kernels: one dot product along the kernel row per output
                            for i in range(small_width):
                                j0 = first_tap[i]
                                dst[uintp(base + i)] += _dot(wrow, to * kl + j0, src, rb + stride * i + offset[j0],
                                                             end_tap[i] - j0)
                            continue
                        if stride == 1:
                            for j in range(kl):
                                wv = wrow[to * kl + j]
                                s0 = rb + offset[j]
                                for i in range(lo[j], hi[j]):
                                    dst[uintp(base + i)] += wv * src[uintp(s0 + i)]
                            continue
                        # split the big row into its stride phases once, then every tap
                        # reads one phase with unit stride
                        _deinterleave(src, rb, big_width, stride, width, 0, phases)
                        for j in range(kl):
                            wv = wrow[to * kl + j]
                            s0 = phase[j] * width + shift[j]
                            for i in range(lo[j], hi[j]):
                                dst[uintp(base + i)] += wv * phases[uintp(s0 + i)]

    def _shifted_runs_weight_grad_py(xph, g, parts, co_g, terms, keep, p_start, block, valid):  # pragma: no cover
        # parts[c, n, k] = sum_p g[n, c, p] * xph[n, gi * ci_g * S * L + terms[k] + keep[p]] (c in group gi):
        # the convolution's terms read backwards, a dot product per (output channel, term) over
        # each block of the flat phase grid, the gradient spread on that block (zeros off keep).
        # One task per (sample, output channel): every task writes its own row of parts.
        N = xph.shape[0]
        C_out = g.shape[1]
        K = terms.shape[0]
        G = C_out // co_g
        plane = xph.shape[1] // G
        nblocks = p_start.shape[0] - 1
        zero = g.dtype.type(0)
        for task in prange(N * C_out):
            c = task % C_out
            n = task // C_out
            base0 = (c // co_g) * plane
            src = xph[n]
            row = g[n, c]
            out = parts[c, n]
            for k in range(K):
                out[k] = zero
            spread = np.zeros(block, dtype=g.dtype)
            for b in range(nblocks):
                q0 = b * block
                width = min(valid, q0 + block) - q0
                for q in range(width):
                    spread[q] = zero
                for p in range(p_start[b], p_start[b + 1]):
                    spread[uintp(keep[p] - q0)] = row[p]
                base = base0 + q0
                for k in range(K):
                    o = base + terms[k]
                    total = zero
                    for q in range(width):
                        total += spread[uintp(q)] * src[uintp(o + q)]
                    out[k] += total

    def _shifted_runs_py(ypad, wt, out, co_g, blk_phase, blk_q0, blk_width, blk_k0, blk_k1, phase_ptr, term_off,
                         term_w, keep_src, keep_dst, keep_run):  # pragma: no cover - compiled
        # out[n, c, keep_dst[p]] = sum over the terms k of the block's phase of
        # wt[c, term_w[k]] * ypad[n, group base + term_off[k] + keep_src[p]]: the phase method's
        # shifted runs (transconv.ops.phase: a convolution is one phase over its input's stride
        # phases, a transposed one a stride-1 correlation per output phase).  One task per
        # (sample, group, block of a phase's grid); four terms per pass over the accumulator and
        # output channels in pairs, so each accumulator load and store serves four multiply-adds
        # and each input load two output channels.
        N = ypad.shape[0]
        C_out = wt.shape[0]
        G = C_out // co_g
        plane = ypad.shape[1] // G
        nblocks = blk_phase.shape[0]
        for task in prange(N * G * nblocks):
            b = task % nblocks
            ng = task // nblocks
            g = ng % G
            n = ng // G
            width = blk_width[b]
            src = ypad[n]
            base = g * plane + blk_q0[b]
            k0 = phase_ptr[blk_phase[b]]
            k1 = phase_ptr[blk_phase[b] + 1]
            acc = np.zeros(co_g * width, dtype=out.dtype)
            for co in range(0, co_g - 1, 2):  # pairs of output channels share the input's loads
                wa = wt[g * co_g + co]
                wb = wt[g * co_g + co + 1]
                a0 = co * width
                b0 = a0 + width
                k = k0
                while k + 4 <= k1:
                    o0, o1 = base + term_off[k], base + term_off[k + 1]
                    o2, o3 = base + term_off[k + 2], base + term_off[k + 3]
                    x0, x1, x2, x3 = wa[term_w[k]], wa[term_w[k + 1]], wa[term_w[k + 2]], wa[term_w[k + 3]]
                    y0, y1, y2, y3 = wb[term_w[k]], wb[term_w[k + 1]], wb[term_w[k + 2]], wb[term_w[k + 3]]
                    for q in range(width):
                        s0, s1 = src[uintp(o0 + q)], src[uintp(o1 + q)]
                        s2, s3 = src[uintp(o2 + q)], src[uintp(o3 + q)]
                        acc[uintp(a0 + q)] += x0 * s0 + x1 * s1 + x2 * s2 + x3 * s3
                        acc[uintp(b0 + q)] += y0 * s0 + y1 * s1 + y2 * s2 + y3 * s3
                    k += 4
                while k < k1:
                    o = base + term_off[k]
                    x0, y0 = wa[term_w[k]], wb[term_w[k]]
                    for q in range(width):
                        s0 = src[uintp(o + q)]
                        acc[uintp(a0 + q)] += x0 * s0
                        acc[uintp(b0 + q)] += y0 * s0
                    k += 1
            if co_g % 2:  # the last, unpaired output channel
                co = co_g - 1
                wrow = wt[g * co_g + co]
                a0 = co * width
                k = k0
                while k + 4 <= k1:
                    w0, w1, w2, w3 = wrow[term_w[k]], wrow[term_w[k + 1]], wrow[term_w[k + 2]], wrow[term_w[k + 3]]
                    o0, o1 = base + term_off[k], base + term_off[k + 1]
                    o2, o3 = base + term_off[k + 2], base + term_off[k + 3]
                    for q in range(width):
                        acc[uintp(a0 + q)] += (w0 * src[uintp(o0 + q)] + w1 * src[uintp(o1 + q)]
                                               + w2 * src[uintp(o2 + q)] + w3 * src[uintp(o3 + q)])
                    k += 4
                while k < k1:
                    wv = wrow[term_w[k]]
                    o = base + term_off[k]
                    for q in range(width):
                        acc[uintp(a0 + q)] += wv * src[uintp(o + q)]
                    k += 1
            q0 = blk_q0[b]
            for co in range(co_g):
                dst = out[n, g * co_g + co]
                a0 = co * width - q0
                p = blk_k0[b]
                while p < blk_k1[b]:  # runs consecutive in the grid and the output (phase.runs_ahead)
                    run = min(keep_run[p], blk_k1[b] - p)
                    d0, s0 = keep_dst[p], a0 + keep_src[p]
                    for j in range(run):
                        dst[uintp(d0 + j)] = acc[uintp(s0 + j)]
                    p += run

    def _twins(py_func, **options):
        """A parallel and a serial kernel from one function.  parallel=True spreads a call
        over numba's threads; the serial twin (prange runs as range) is for the worker
        threads of _split, each with single-threaded BLAS.  The serial one compiles from a
        renamed copy: numba's cache keys an entry by file, name, line, signature and
        bytecode but not by its options, so twins of one name overwrite each other's
        cache entry and a later process can load the parallel code as the serial kernel
        (numba's threads then launched inside each worker; docs/performance.md)."""
        name = py_func.__name__.replace("_py", "_serial_py")
        serial = types.FunctionType(py_func.__code__.replace(co_name=name), py_func.__globals__, name,
                                    py_func.__defaults__, py_func.__closure__)
        serial.__qualname__ = name
        return njit(**_parallel, **options)(py_func), njit(**_serial, **options)(serial)

    _scatter_planes, _scatter_planes_serial = _twins(_scatter_planes_py)
    _scatter_channels_last, _scatter_channels_last_serial = _twins(_scatter_channels_last_py)
    _gather, _gather_serial = _twins(_gather_py)
    _gather_flat, _gather_flat_serial = _twins(_gather_flat_py)
    _gather_channels_last, _gather_channels_last_serial = _twins(_gather_channels_last_py)
    _gather_shift, _gather_shift_serial = _twins(_gather_shift_py)
    # contract: fused multiply-adds (one rounding per tap, as PyTorch's kernels)
    _shifted_runs, _shifted_runs_serial = _twins(_shifted_runs_py, fastmath={"contract"})
    # reassoc: the dot products vectorise
    _shifted_runs_weight_grad, _shifted_runs_weight_grad_serial = _twins(_shifted_runs_weight_grad_py,
                                                                         fastmath={"contract", "reassoc"})
    _direct_transpose, _direct_transpose_serial = _twins(_direct_transpose_py)
    _direct_conv, _direct_conv_serial = _twins(_direct_conv_py)
    _DIRECT_CONV, _DIRECT_TRANSPOSE = (_direct_conv, _direct_conv_serial), (_direct_transpose, _direct_transpose_serial)


# --------------------------------------------------------------------------------------
# Methods.  Arrays arrive batched (N, C, *spatial), C-contiguous, in the compute dtype.
# --------------------------------------------------------------------------------------

_WORKER_FLOOR = 2**20  # a worker may always hold this much, so tiny layers are not cut into crumbs
_PARALLEL_FLOOR = 8 * 2**20  # the same without the split (see _worker_budget)
_GATHER_CAP = 4 * 2**20  # bytes of conv gather buffer per worker
_RESULT_CAP = 16 * 2**20  # bytes of conv_transpose GEMM result per worker: the scatter re-reads it from cache
_RUN_BYTES = 64  # the channels-last scatter's shortest run of channels ... (_channel_block)
_RUN_BLOCK_CAP = 4 * 2**20  # ... while its block per worker stays under this many bytes
_MASK_BYTES = 2**20  # bytes of plane masks beyond which the scatter adds a run per row (PhasePlanes)
_PLANE_BYTES = 4 * 2**20  # the scatter's phase planes per task: past this, in blocks of grid rows
_PLANE_BLOCK_BYTES = 64 * 2**10  # ... of about this size (the runs of a block then add in L1 / L2)
_FLAT_GATHER_BELOW = 8  # conv outputs narrower than this gather through a flat table
_CHANNELS_LAST_FROM = 8  # channels per group from which gemm may move data channels-last (_moves_channels_last)
_CHANNELS_LAST_WIDTH = 16  # ... on small grids narrower than this
_CHANNELS_LAST_WEIGHTS = 2**20  # ... with weights up to this many bytes
_CHANNELS_LAST_SCATTER_WEIGHTS = 2 * 2**20  # ... the scatter's, where its phase planes add a run per row
_FLAT_TABLE_BYTES = 2**20  # flat tables beyond this fall out of cache (re-read per channel plane)
_FOLD_BELOW = 256  # planes with fewer positions fold samples into the GEMM columns (a copy of the input block)


@dataclass(frozen=True)
class Tuning:
    """The compiled methods' internal choices, fixed for tests and benchmarks with :func:`tuned`.

    ``block_bytes`` caps one call's work buffer; ``scatter`` is the conv_transpose GEMM's
    data mover (``"auto"``: channels-last on small grids, :func:`_scatters_channels_last`, else
    the phase planes; ``"channels_last"`` forces the first, ``"rows"`` the planes with one run
    per input row even where one run per tap would do; ``"none"`` skips it, leaving the output
    unset: the GEMM-only floor); ``gather`` the conv's (``"auto"``: channels-last,
    the flat table or the row runs by the same rules, or forced); last-axis kernels of
    ``along_kernel`` taps or more loop along the kernel in the direct kernels.
    """

    block_bytes: int = 512 * 2**20
    scatter: str = "auto"
    gather: str = "auto"
    along_kernel: int = 16


_TUNING = Tuning()


@contextmanager
def tuned(**changes):
    """Run the enclosed calls with :class:`Tuning` fields changed (process-wide, not thread-safe).

    >>> with tuned(scatter="rows") as tuning:
    ...     tuning.scatter
    'rows'
    """
    global _TUNING
    saved = _TUNING
    _TUNING = replace(saved, **changes)
    try:
        yield _TUNING
    finally:
        _TUNING = saved


def thread_count() -> int:
    """numba's threads (1 without numba, or in a forked child that runs serially)."""
    return 1 if numba is None or SERIAL_ONLY else max(1, numba.get_num_threads())


def _worker_budget(reference_bytes: int, serial: bool = True) -> int:
    """Work-buffer bytes per block: all workers of :func:`_split` together hold at most
    ``reference_bytes`` (the output for conv_transpose, 1.5 times it for conv), each at
    least ``_WORKER_FLOOR``.  Without the split (one sample) a single buffer gets the whole
    reference, at least ``_PARALLEL_FLOOR``: every block there hands the cores from BLAS's
    threads to numba's and back, which costs more than a cache miss."""
    if not serial:
        return int(min(_TUNING.block_bytes, max(reference_bytes, _PARALLEL_FLOOR)))
    return int(min(_TUNING.block_bytes, max(reference_bytes // thread_count(), _WORKER_FLOOR)))


def _chunks(planes: int, rows: int) -> int:
    """Row blocks per plane so that a parallel kernel has a few tasks per thread."""
    tasks = 4 * thread_count()
    return int(max(1, min(rows, -(-tasks // max(planes, 1)))))


_WORKERS: dict = {}
_SPLIT_LOCK = threading.Lock()  # one split call at a time: the BLAS thread limit is process-wide
SERIAL_ONLY = False  # set in a forked child of a process that ran GNU OpenMP: every kernel runs serially


def _after_fork_in_child() -> None:
    """A forked child inherits the parent's thread pool and lock but not their threads, and
    GNU OpenMP aborts the child on its first parallel region: start afresh, serially."""
    global SERIAL_ONLY, _SPLIT_LOCK
    _WORKERS.clear()
    _SPLIT_LOCK = threading.Lock()
    if numba is not None:
        try:
            SERIAL_ONLY = SERIAL_ONLY or numba.threading_layer() == "omp"
        except ValueError:  # no parallel region ran yet: the child may start its own threads
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


_SERIAL_BELOW = 2_000_000  # multiply-adds under which a call runs serial kernels in the caller's thread
_SPLIT_MACS = 12_000_000  # ... and under which it does so too (handing ranges to threads costs ~75 us) ...
_SPLIT_BYTES = 8 * 2**20  # ... on input and output under this many bytes (docs/performance.md)
_EVEN_ENOUGH = 0.9  # share of the cores busy from which _split cuts samples, whatever the second axis
# True: this thread's calls run as one range in the caller's thread with serial kernels while
# BLAS keeps its threads, as small calls do; autotune measures it against the split (dispatch.Trials)
ONE_RANGE: contextvars.ContextVar[bool] = contextvars.ContextVar("transconv_one_range", default=False)


def splits(macs: int, data_bytes: int) -> bool:
    """Whether :func:`_split` hands a call of ``macs`` multiply-adds on ``data_bytes`` of input
    and output to worker threads (with two or more numba threads), rather than running it as
    one range in the caller's thread with serial kernels.

    >>> splits(1_000_000, 2**30), splits(8_000_000, 2**20), splits(8_000_000, 2**30)
    (False, False, True)
    """
    return not (_in_callers_thread(macs) or _one_core(macs, data_bytes))


def _in_callers_thread(macs: int) -> bool:
    """Whether a call runs as it comes in the caller's thread: serial kernels, BLAS untouched."""
    return SERIAL_ONLY or macs < _SERIAL_BELOW or ONE_RANGE.get()


def _one_core(macs: int, data_bytes: int) -> bool:
    """Whether a call is too small to pay for handing a range to another thread (about 55 us here)."""
    return macs < _SPLIT_MACS and data_bytes < _SPLIT_BYTES


def _split(n: int, units: int, work, macs: int, data_bytes: int) -> None:
    """Run ``work(n0, n1, u0, u1, serial)`` over ranges of samples ``[n0, n1)`` and of a
    second axis ``[u0, u1)`` of ``units`` (output channels or output rows).

    Each range (:func:`_ranges`: of samples, or of the second axis where samples would leave a
    core idle) runs in its own Python thread with single-threaded BLAS and serial kernels,
    the caller's thread taking the first.  The GEMM and the scatter of one range follow each other on
    one core, and no thread pool hands the cores over to another (OpenBLAS's and
    OpenMP's threads both spin after their parallel regions).  BLAS is limited to one thread for
    the duration of the call, process-wide.  Otherwise one range, parallel kernels.

    Calls that :func:`splits` keeps together run as one range on one core, single-threaded
    BLAS included: a multi-threaded GEMM leaves OpenBLAS's threads spinning for about 0.1 s,
    which slows the next split call by up to 2x.  Calls under ``_SERIAL_BELOW`` (and with
    ``ONE_RANGE`` set) run in the caller's thread as they come, BLAS untouched.
    """
    if _in_callers_thread(macs):
        work(0, n, 0, units, True)
        return
    workers = numba.get_num_threads()
    if _one_core(macs, data_bytes):  # handing ranges to threads costs more than the call saves
        ranges = [(0, n, 0, units)]
    elif workers < 2 or (n < workers and units < workers):
        work(0, n, 0, units, False)
        return
    else:
        ranges = _ranges(n, units, workers)
    with _SPLIT_LOCK:
        if "blas" not in _WORKERS:
            from threadpoolctl import ThreadpoolController

            _WORKERS["blas"] = ThreadpoolController().select(user_api="blas").lib_controllers
            _WORKERS["pool"] = []
        pool, blas = _WORKERS["pool"], _WORKERS["blas"]
        while len(pool) < len(ranges) - 1:
            pool.append(_Worker(len(pool)))
        # the BLAS libraries' own calls, not threadpoolctl's limit(): 2.6 against 7.5 us a call
        saved = [lib.get_num_threads() for lib in blas]
        for lib in blas:
            lib.set_num_threads(1)
        try:
            for worker, r in zip(pool, ranges[1:]):
                worker.tasks.put((work, r + (True,)))
            try:  # the caller takes the first range itself: one hand-over to another thread fewer
                work(*ranges[0], True)
            finally:
                errors = [worker.done.get() for worker, _ in zip(pool, ranges[1:])]
        finally:
            for lib, count in zip(blas, saved):
                lib.set_num_threads(count)
        for error in errors:
            if error is not None:
                raise error


class _Worker:
    """A persistent thread running the ranges :func:`_split` hands it, through a queue each
    way: on sub-millisecond calls an executor's futures and conditions cost tens of us."""

    def __init__(self, index: int) -> None:
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name=f"transconv_{index}", daemon=True).start()

    def _run(self) -> None:
        while True:
            work, args = self.tasks.get()
            try:
                work(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which raises it
                self.done.put(exc)
            else:
                self.done.put(None)


def _ranges(n: int, units: int, workers: int) -> list[tuple[int, int, int, int]]:
    """``_split``'s ranges ``(n0, n1, u0, u1)``: over samples, unless they leave a core idle over
    a tenth of the time and the second axis shares out more evenly (3 samples on 2 cores leave
    one idle a third of the time; 62 channels do not).  Short of that, samples: cut along the
    second axis, every core's GEMMs are narrower (docs/performance.md).

    >>> _ranges(4, 62, 2), _ranges(3, 62, 2), _ranges(3, 1, 2)
    ([(0, 2, 0, 62), (2, 4, 0, 62)], [(0, 3, 0, 31), (0, 3, 31, 62)], [(0, 1, 0, 1), (1, 3, 0, 1)])
    """
    evenness = _evenness(n, workers)
    if n >= workers and (evenness > _EVEN_ENOUGH or evenness >= _evenness(units, workers)):
        return [(a, b, 0, units) for a, b in _bounds(n, workers)]
    return [(0, n, a, b) for a, b in _bounds(units, workers)]


def _evenness(count: int, parts: int) -> float:
    """The busy share of ``parts`` cores splitting ``count`` equal items: count / (parts * the largest share)."""
    return count / (parts * -(-count // parts))


def _bounds(count: int, parts: int) -> list[tuple[int, int]]:
    edges = [count * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _runs(plan: RowPlan) -> tuple:
    return (plan.lo, plan.hi, plan.phase, plan.shift)


def _moves_channels_last(mode: str, channels: int, small: tuple[int, ...], big: tuple[int, ...], taps: int,
                         weight_bytes: int, weight_cap: int = _CHANNELS_LAST_WEIGHTS) -> bool:
    """Whether gemm moves data channels-last (runs of a group's ``channels``) rather than along
    rows: forced by the tuning ``mode``, or where taps overlap (fewer ``big`` positions than taps
    times ``small`` ones: the transposed copy of the big side is then paid back) on small grids
    (rows of ``small`` shorter than the run and than ``_CHANNELS_LAST_WIDTH``) with small
    weights; on the suite's large layers the copies cost more than the runs save."""
    return mode == "channels_last" or (
        mode == "auto" and _CHANNELS_LAST_FROM <= channels and small[-1] < min(channels, _CHANNELS_LAST_WIDTH)
        and weight_bytes <= weight_cap and math.prod(big) < taps * math.prod(small))


def _scatters_channels_last(mode: str, channels: int, small: tuple[int, ...], big: tuple[int, ...], taps: int,
                            weight_bytes: int, merged: bool) -> bool:
    """Whether the conv_transpose GEMM scatters channels-last: forced by ``mode``, or by the
    gather's rule (:func:`_moves_channels_last`) with runs of channels at least twice the input's
    rows, and weights up to ``_CHANNELS_LAST_SCATTER_WEIGHTS`` where the phase planes add a run
    per input row (not ``merged``): there channel runs pay for larger weights' copies."""
    if mode != "auto":
        return mode == "channels_last"
    cap = _CHANNELS_LAST_WEIGHTS if merged else _CHANNELS_LAST_SCATTER_WEIGHTS
    return 2 * small[-1] <= channels and _moves_channels_last(mode, channels, small, big, taps, weight_bytes, cap)


@dataclass(frozen=True)
class ColumnGather:
    """A convolution's im2col: ``cols[(ci, t), (n, r, i)] = x[n, ci, q(t, (r, i))]`` for a block
    of samples and output rows, zero where a tap meets padding.  Through the row plan (each
    input row split once into its stride phases, every last-axis tap one unit-stride copy), or
    for outputs under ``_FLAT_GATHER_BELOW`` wide through a flat per-tap table while it stays
    cache-sized (it is re-read per channel: not FCN's 4096 taps).  Or transposed,
    ``cols[(n, p), (t, ci)]``, channels-last (:meth:`channels_last_blocks`).  ``gemm_conv``
    and the ``gemm`` weight gradient fill their column buffers with it."""

    plan: RowPlan
    table: np.ndarray | None
    spec: ConvSpec
    big: tuple[int, ...]

    @property
    def taps(self) -> int:
        return math.prod(self.spec.kernel_size)

    def channels_last(self, channels: int, weight_bytes: int) -> bool:
        """Whether to gather channels-last (:meth:`channels_last_blocks`), for ``channels`` input
        channels per group and weights of ``weight_bytes``."""
        plan = self.plan
        return _moves_channels_last(_TUNING.gather, channels, (plan.small_rows, plan.small_width),
                                    (plan.big_rows, plan.big_width), self.taps, weight_bytes)

    def channels_last_blocks(self, xf: np.ndarray, groups: int, ci_g: int, samples: tuple[int, int],
                             span: tuple[int, int], rows: int, serial: bool):
        """Per block of up to ``rows`` of the ``samples``' output positions in ``span`` (whole
        samples while they fit, else positions of one) and group: ``(group, first sample,
        samples, first position, end position, columns)``, the columns
        ``cols[(n, p), (t, ci)]`` filled in one buffer reused.  Each block's samples are copied
        channels-last once, group by group, so every (position, tap) is one run of the group's
        channels (and a kernel row's taps one run together), where the row runs and the flat
        table move a few elements per step on tiny grids."""
        table = _conv_flat_by_position(self.spec, self.big)
        P, T = table.shape
        positions = xf.shape[2]
        length = span[1] - span[0]
        nb = max(1, min(samples[1] - samples[0], rows // length)) if length == P else 1
        pb = length if nb > 1 else min(length, rows)
        cols = np.empty(nb * pb * T * ci_g, dtype=xf.dtype)
        gather = _gather_channels_last_serial if serial else _gather_channels_last
        for n0 in range(samples[0], samples[1], nb):
            m = min(nb, samples[1] - n0)
            # channels-last per group, (group, samples x positions, channels of the group): a
            # group's channels fill each position, so the gather merges a kernel row's taps
            xl = np.ascontiguousarray(xf[n0:n0 + m].reshape(m, groups, ci_g, positions).transpose(1, 0, 3, 2))
            xl = xl.reshape(groups, m * positions, ci_g)
            for gi in range(groups):
                for q0 in range(span[0], span[1], pb):
                    q1 = min(span[1], q0 + pb)
                    c = cols[:m * (q1 - q0) * T * ci_g].reshape(-1, T * ci_g)
                    gather(xl[gi], c, table, positions, q0, q0 + m * (q1 - q0))
                    yield gi, n0, m, q0, q1, c

    def fill(self, xf: np.ndarray, cols: np.ndarray, ci0: int, ci_g: int, n0: int, nb: int, r0: int, r1: int,
             serial: bool) -> None:
        """Columns of channels ``ci0 .. ci0 + ci_g`` of samples ``n0 .. n0 + nb`` (``xf`` is
        ``(N, C, prod(big))``), output rows ``r0 <= r < r1``, into ``cols`` ``(ci_g * T, nb * span)``."""
        width = self.plan.small_width
        if self.table is not None:
            (_gather_flat_serial if serial else _gather_flat)(xf, cols, ci0, ci_g, n0, nb, r0 * width, r1 * width,
                                                              self.table)
        else:  # the row plan: each big row split into its stride phases once
            plan = self.plan
            (_gather_serial if serial else _gather)(xf, cols, ci0, ci_g, n0, nb, r0, r1, plan.outer, *_runs(plan),
                                                    width, plan.big_width, plan.stride, *plan.margins)

    def blocks(self, xf: np.ndarray, groups: int, ci_g: int, samples: tuple[int, int], nb: int,
               rows: tuple[int, int], rb: int, serial: bool):
        """Per group, block of up to ``nb`` of the ``samples`` and block of up to ``rb`` of the
        output ``rows``: ``(group, first sample, samples, first row, end row, columns)``, the
        block's columns ``(ci_g * T, samples * rows * width)`` filled, in one buffer reused."""
        width = self.plan.small_width
        cols = np.empty(ci_g * self.taps * nb * rb * width, dtype=xf.dtype)
        for gi in range(groups):
            for n0 in range(samples[0], samples[1], nb):
                m = min(nb, samples[1] - n0)
                for r0 in range(rows[0], rows[1], rb):
                    r1 = min(rows[1], r0 + rb)
                    c = cols[:ci_g * self.taps * m * (r1 - r0) * width].reshape(ci_g * self.taps, -1)
                    self.fill(xf, c, gi * ci_g, ci_g, n0, m, r0, r1, serial)
                    yield gi, n0, m, r0, r1, c


def column_gather(spec: ConvSpec, big: tuple[int, ...]) -> ColumnGather:
    """The :class:`ColumnGather` of a zero-padded convolution of input ``big`` (plan and table cached)."""
    plan = conv_row_plan(spec, big)
    taps, positions = math.prod(spec.kernel_size), math.prod(spec.conv_output_shape(big))
    flat = _TUNING.gather == "flat" or (
        _TUNING.gather == "auto" and plan.small_width < _FLAT_GATHER_BELOW and taps * positions * 4 <= _FLAT_TABLE_BYTES)
    return ColumnGather(plan, _conv_flat(spec, big) if flat else None, spec, big)


def gathers_channels_last(spec: ConvSpec, big: tuple[int, ...], channels: int, weight_bytes: int) -> bool:
    """Whether ``gemm_conv`` (and the ``gemm`` weight gradient) of input ``big`` gathers
    channels-last (:meth:`ColumnGather.channels_last`), padding modes folded in as they run."""
    if _folds(spec):
        big, spec = spec.padded_shape(big), _zero_core(spec)
    return column_gather(spec, big).channels_last(channels, weight_bytes)


@zero_padded(transposed=True)
def gemm_conv_transpose(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    small = y.shape[2:]
    n, c_in = y.shape[:2]
    big = spec.transpose_output_shape(small)
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[1]
    T, P = math.prod(spec.kernel_size), math.prod(small)
    mode = _TUNING.scatter
    planes = _transpose_planes(spec, small, mode != "rows")
    if _scatters_channels_last(mode, co_g, small, big, T, w.nbytes, planes.merged):
        return _gemm_conv_transpose_channels_last(y, w, spec)
    out = np.empty((n, co_g * g, math.prod(big)), dtype=y.dtype)
    yf = y.reshape(n, c_in, P)
    # w as (C_in, C_out/g * T): its transpose is the (co, t)-by-ci matrix, a free view
    wf = w.reshape(c_in, co_g * T)
    plane_bytes = T * P * y.itemsize  # GEMM result per (sample, output channel)
    fold = P < _FOLD_BELOW
    plane = planes.block_rows * planes.grid[-1]
    # whole planes of the input's grid in one block: one run per tap over all samples, the mask tiled
    spans = planes.merged and planes.blocks == 1 and plane == P

    def scatter(zbuf, n0: int, co0: int, cb: int, m: int, serial: bool, mask) -> None:
        """out[n0:n0+m, co0:co0+cb] from the block's GEMM result ``zbuf``."""
        if mode != "none":
            (_scatter_planes_serial if serial else _scatter_planes)(
                zbuf, T, out, n0, co0, cb, m, P, m * P, planes.phase_of, planes.seg_ptr, planes.src, planes.dst,
                planes.length, mask, planes.masked, planes.row_phase, planes.row_start, planes.row_order, planes.row_ptr,
                planes.phases, planes.blocks,
                planes.block_rows, planes.grid[-1], planes.last_stride, planes.big_width, spans)

    def work(start: int, stop: int, c_lo: int, c_hi: int, serial: bool) -> None:
        budget = _worker_budget(out.nbytes, serial)
        if serial:  # the scatter reads the block back: past this, from memory, not cache
            budget = min(budget, _RESULT_CAP)
        if fold:
            # GEMM blocks about as wide (samples x positions) as tall (channels x taps):
            # BLAS packs both operands on every call, and a tall thin block re-packs the
            # whole weight for few columns
            side = math.isqrt(max(1, budget // y.itemsize))
            nb = int(max(1, min(stop - start, round(side / P))))
            cb = int(max(1, min(c_hi - c_lo, budget // (nb * plane_bytes))))
            nb = int(max(1, min(stop - start, budget // (cb * plane_bytes))))
        else:  # one sample's columns per GEMM: as many channels as the budget holds
            cb, nb = int(max(1, min(c_hi - c_lo, budget // plane_bytes))), 1
        zbuf = np.empty(cb * T * nb * P, dtype=y.dtype)
        mask = np.tile(planes.mask, (1, nb)) if spans and nb > 1 else planes.mask  # per sample of a run
        for gi in range(g):
            w_t = wf[gi * ci_g:(gi + 1) * ci_g].T
            for n0 in range(start, stop, nb):
                m = min(nb, stop - n0)
                if nb > 1:
                    block = np.ascontiguousarray(yf[n0:n0 + m, gi * ci_g:(gi + 1) * ci_g].transpose(1, 0, 2))
                    block = block.reshape(ci_g, m * P)
                else:
                    block = yf[n0, gi * ci_g:(gi + 1) * ci_g]
                for c0 in range(c_lo, c_hi, cb):
                    c1 = min(c_hi, c0 + cb)
                    np.matmul(w_t[c0 * T:c1 * T], block, out=zbuf[:(c1 - c0) * T * m * P].reshape(-1, m * P))
                    scatter(zbuf, n0, gi * co_g + c0, c1 - c0, m, serial, mask)

    _split(n, co_g, work, n * P * T * c_in * co_g, y.nbytes + out.nbytes)
    return out.reshape((n, co_g * g) + big)


def _gemm_conv_transpose_channels_last(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The adjoint of :func:`_gemm_conv_channels_last`: ``z[(n, p), (t, co)]``, a channels-last
    copy of each block of samples times ``w`` as ``(ci, (t, co))``, and each output position
    adds its (position, tap) pairs' runs of channels (the connectivity's inverse, CSR)."""
    small = y.shape[2:]
    n, c_in = y.shape[:2]
    big = spec.transpose_output_shape(small)
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[1]
    ptr, tap, pos = _transpose_flat(spec, small)
    T, P, O = math.prod(spec.kernel_size), math.prod(small), math.prod(big)
    yf = y.reshape(n, c_in, P)
    wl = w.reshape(g, ci_g, co_g, T).transpose(0, 1, 3, 2)  # (group, ci, t, co), a view
    out = np.empty((n, g * co_g, O), dtype=y.dtype)

    def work(start: int, stop: int, c_lo: int, c_hi: int, serial: bool) -> None:
        budget = _worker_budget(out.nbytes, serial)
        if serial:
            budget = min(budget, _RESULT_CAP)
        per_channel = (P * T + O) * y.itemsize  # a sample's GEMM result and output block per channel
        # samples per block while all the range's channels fit, else channel blocks of one sample
        cb = _channel_block(c_hi - c_lo, budget, per_channel, y.itemsize)
        nb = int(max(1, min(stop - start, budget // (per_channel * cb + P * c_in * y.itemsize)))) if (
            cb == c_hi - c_lo) else 1
        w_blocks = {(gi, c0): np.ascontiguousarray(wl[gi, :, :, c0:min(c_hi, c0 + cb)]).reshape(ci_g, -1)
                    for gi in range(g) for c0 in range(c_lo, c_hi, cb)}
        z = np.empty(nb * P * T * cb, dtype=y.dtype)
        block = np.empty(nb * O * cb, dtype=y.dtype)
        scatter = _scatter_channels_last_serial if serial else _scatter_channels_last
        for n0 in range(start, stop, nb):
            m = min(nb, stop - n0)
            yl = np.ascontiguousarray(yf[n0:n0 + m].transpose(0, 2, 1)).reshape(m * P, c_in)
            for (gi, c0), w_block in w_blocks.items():
                c1 = min(c_hi, c0 + cb)
                zb = np.matmul(yl[:, gi * ci_g:(gi + 1) * ci_g], w_block, out=z[:m * P * T * (c1 - c0)].reshape(m * P, -1))
                ob = block[:m * O * (c1 - c0)].reshape(m * O, c1 - c0)
                scatter(zb, ob, ptr, tap, pos, P, c1 - c0)
                out[n0:n0 + m, gi * co_g + c0:gi * co_g + c1] = ob.reshape(m, O, c1 - c0).transpose(0, 2, 1)

    _split(n, co_g, work, n * P * T * c_in * co_g, y.nbytes + out.nbytes)
    return out.reshape((n, co_g * g) + big)


def _channel_block(channels: int, budget: int, per_channel: int, itemsize: int) -> int:
    """Output channels per block of the channels-last scatter: as many of ``channels`` as
    ``budget`` bytes hold at ``per_channel`` each, but at least a cache line's run
    (``_RUN_BYTES``) while the block stays under ``_RUN_BLOCK_CAP`` (and the tuning's
    ``block_bytes``): every (position, tap) pair adds one run of the block's channels, and runs
    of a few channels cost their loop, not their adds.

    >>> [_channel_block(channels, 2**20, per_channel, 4) for channels, per_channel in [(36, 200_000), (36, 300_000),
    ...                                                                                (8, 200_000), (36, 20_000)]]
    [16, 13, 8, 36]
    """
    least = min(_RUN_BYTES // itemsize, min(_RUN_BLOCK_CAP, _TUNING.block_bytes) // per_channel)
    return int(max(1, min(channels, max(budget // per_channel, least))))


@zero_padded(transposed=False)
def gemm_conv(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    n, c_in = x.shape[:2]
    big = x.shape[2:]
    small = spec.conv_output_shape(big)
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[0] // g
    gather = column_gather(spec, big)
    plan = gather.plan
    if gather.channels_last(ci_g, w.nbytes):
        return _gemm_conv_channels_last(x, w, gather)
    T, P = math.prod(spec.kernel_size), math.prod(small)
    xf = x.reshape(n, c_in, -1)
    wf = w.reshape(w.shape[0], ci_g * T)
    out = np.empty((n, co_g * g, P), dtype=x.dtype)
    width = plan.small_width
    row_bytes = ci_g * T * width * x.itemsize  # gather buffer per output row of a sample

    def work(start: int, stop: int, r_lo: int, r_hi: int, serial: bool) -> None:
        # cache-sized gather blocks: the GEMM then reads its columns from L2
        budget = _worker_budget(3 * out.nbytes // 2, serial)
        if serial:
            budget = min(budget, _GATHER_CAP)
        rb = int(max(1, min(r_hi - r_lo, budget // row_bytes)))
        nb = int(max(1, min(stop - start, budget // (row_bytes * plan.small_rows)))) if rb == plan.small_rows else 1
        for gi, n0, m, r0, r1, c in gather.blocks(xf, g, ci_g, (start, stop), nb, (r_lo, r_hi), rb, serial):
            wg = wf[gi * co_g:(gi + 1) * co_g]
            # GEMMs write the output in place (BLAS takes its row stride) unless
            # planes are small enough that one GEMM over the block pays for a copy
            if m == 1:
                np.matmul(wg, c, out=out[n0, gi * co_g:(gi + 1) * co_g, r0 * width:r1 * width])
            elif P >= _FOLD_BELOW:
                for k in range(m):
                    np.matmul(wg, c[:, k * P:(k + 1) * P], out=out[n0 + k, gi * co_g:(gi + 1) * co_g])
            else:
                part = (wg @ c).reshape(co_g, m, (r1 - r0) * width).transpose(1, 0, 2)
                out[n0:n0 + m, gi * co_g:(gi + 1) * co_g, r0 * width:r1 * width] = part

    _split(n, plan.small_rows, work, n * P * T * ci_g * co_g * g, x.nbytes + out.nbytes)
    return out.reshape((n, co_g * g) + small)


def _gemm_conv_channels_last(x: np.ndarray, w: np.ndarray, gather: ColumnGather) -> np.ndarray:
    """``gemm_conv`` with the columns transposed: ``cols[(n, p), (t, ci)]``
    (:meth:`ColumnGather.channels_last_blocks`) times ``w`` as ``((t, ci), co)``."""
    n, c_in = x.shape[:2]
    spec = gather.spec
    small = spec.conv_output_shape(gather.big)
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[0] // g
    T, P = gather.taps, math.prod(small)
    xf = x.reshape(n, c_in, -1)
    # w per group as ((t, ci), co): a copy of the weights, small next to the columns
    wl = np.ascontiguousarray(w.reshape(g, co_g, ci_g, T).transpose(0, 3, 2, 1)).reshape(g, T * ci_g, co_g)
    out = np.empty((n, g * co_g, P), dtype=x.dtype)
    row_bytes = (T * ci_g + co_g) * x.itemsize  # a row of columns and its GEMM result

    def work(start: int, stop: int, p_lo: int, p_hi: int, serial: bool) -> None:
        budget = _worker_budget(3 * out.nbytes // 2, serial)
        if serial:
            budget = min(budget, _GATHER_CAP)
        rows = max(1, budget // row_bytes)
        result = np.empty(rows * co_g, dtype=x.dtype)
        for gi, n0, m, q0, q1, c in gather.channels_last_blocks(xf, g, ci_g, (start, stop), (p_lo, p_hi), rows, serial):
            z = np.matmul(c, wl[gi], out=result[:c.shape[0] * co_g].reshape(-1, co_g))
            out[n0:n0 + m, gi * co_g:(gi + 1) * co_g, q0:q1] = z.reshape(m, q1 - q0, co_g).transpose(0, 2, 1)

    _split(n, P, work, n * P * T * ci_g * co_g * g, x.nbytes + out.nbytes)
    return out.reshape((n, co_g * g) + small)


def all_finite(a: np.ndarray) -> bool:
    """``np.isfinite(a).all()`` for a C-contiguous array, without NumPy's per-call overhead
    (a tenth of its time on a small kernel) when ``a`` is float32 or float64.

    >>> all_finite(np.array([1.0, np.inf])), all_finite(np.ones(3, np.float32))
    (False, True)
    """
    if numba is None or a.dtype.char not in "fd":
        return bool(np.isfinite(a).all())
    return bool(_all_finite(a.reshape(-1)))


class _DirectCall(NamedTuple):
    """One geometry's call of a direct kernel, worked out once: the arrays' flat shapes, the
    plan's arguments before and after the chunking, and whether it is small enough to run serially."""

    x_flat: tuple[int, ...]
    w_flat: tuple[int, ...]
    out_flat: tuple[int, ...]
    out_shape: tuple[int, ...]
    leading: tuple
    trailing: tuple
    small: bool  # under _SERIAL_BELOW multiply-adds
    planes: int  # (sample, output channel) planes and rows, for _chunks
    rows: int
    last_taps: int


@lru_cache(maxsize=64)
def _direct_transpose_call(spec: ConvSpec, y_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> _DirectCall:
    (n, c_in), small = y_shape[:2], y_shape[2:]
    big = spec.transpose_output_shape(small)
    plan = transpose_row_plan(spec, small)
    T, P, co_g = math.prod(w_shape[2:]), math.prod(small), w_shape[1]
    c_out = co_g * spec.groups
    leading = (spec.groups, plan.ptr, plan.pair_tap, plan.pair_row, *_runs(plan), plan.small_width, plan.big_rows,
               plan.big_width, plan.stride)
    return _DirectCall((n, c_in, P), (c_in, co_g, T), (n, c_out, math.prod(big)), (n, c_out) + big, leading,
                       (plan.offset, plan.first_tap, plan.end_tap, spec.dilation[-1]),
                       n * P * T * c_in * co_g < _SERIAL_BELOW, n * c_out, plan.big_rows, plan.last_taps)


@lru_cache(maxsize=64)
def _direct_conv_call(spec: ConvSpec, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> _DirectCall:
    (n, c_in), big = x_shape[:2], x_shape[2:]
    small = spec.conv_output_shape(big)
    plan = conv_row_plan(spec, big)
    T, P, c_out = math.prod(w_shape[2:]), math.prod(small), w_shape[0]
    leading = (spec.groups, plan.outer, *_runs(plan), plan.small_width, plan.big_width, plan.stride)
    return _DirectCall((n, c_in, math.prod(big)), (c_out, w_shape[1], T), (n, c_out, P), (n, c_out) + small, leading,
                       (plan.offset, plan.first_tap, plan.end_tap, spec.dilation[-1]),
                       n * c_out * P * T * w_shape[1] < _SERIAL_BELOW, n * c_out, plan.small_rows, plan.last_taps)


def _run_direct(kernels: tuple, call: _DirectCall, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Run a (parallel, serial) pair of direct kernels on one call worked out by ``_direct_*_call``."""
    out = np.empty(call.out_flat, dtype=x.dtype)
    serial = SERIAL_ONLY or call.small
    kernels[serial](x.reshape(call.x_flat), w.reshape(call.w_flat), out, *call.leading,
                    1 if serial else _chunks(call.planes, call.rows), call.last_taps >= _TUNING.along_kernel,
                    *call.trailing)
    return out.reshape(call.out_shape)


@zero_padded(transposed=True)
def direct_conv_transpose(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return _run_direct(_DIRECT_TRANSPOSE, _direct_transpose_call(spec, y.shape, w.shape), y, w)


@zero_padded(transposed=False)
def direct_conv(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return _run_direct(_DIRECT_CONV, _direct_conv_call(spec, x.shape, w.shape), x, w)


# --------------------------------------------------------------------------------------
# "shift": stride-1 convolution as one GEMM over shifted runs of the flat padded input.
# --------------------------------------------------------------------------------------


def shift_waste(spec: ConvSpec, big: tuple[int, ...]) -> float:
    """Columns the shifted GEMM computes per output position: the padded grid's rows are
    computed whole and the positions past the output cropped (1.0 for 1-d and k1)."""
    padded = spec.padded_shape(big)
    out = spec.conv_output_shape(big)
    return float(np.prod(padded[1:]) / max(1, np.prod(out[1:])))


def _shift_offsets(spec: ConvSpec, padded: tuple[int, ...]) -> np.ndarray:
    """Flat offset, in the padded grid, of every tap (C order, as the weight's taps)."""
    pitch = np.cumprod((tuple(padded[1:]) + (1,))[::-1])[::-1]
    taps = np.indices(spec.kernel_size).reshape(spec.ndim, -1)
    return np.ascontiguousarray((taps * (np.array(spec.dilation) * pitch)[:, None]).sum(axis=0), dtype=np.int64)


def _k1_slices(n_big: int, n_small: int, stride: int, lo: int) -> tuple[slice, slice]:
    """Per axis of a 1-tap kernel: small positions ``o`` meet big ``o * stride - lo``; the
    (small, big) slices of the pairs inside both grids."""
    o0 = -(-lo // stride)
    o1 = min(n_small, (n_big - 1 + lo) // stride + 1)
    o1 = max(o0, o1)
    return slice(o0, o1), slice(o0 * stride - lo, (o1 - 1) * stride - lo + 1 if o1 > o0 else o0 * stride - lo, stride)


def _k1_gemm(w: np.ndarray, x: np.ndarray, out: np.ndarray, groups: int) -> None:
    """``out[n, (g, co), p] = w[g, co, ci] @ x[n, (g, ci), p]``: stacked matmuls, each core
    on its share of the samples (or of the positions) with single-threaded BLAS (see
    :func:`_split`: a multi-threaded BLAS per small GEMM suffers most on a busy machine)."""
    n, c_in = x.shape[:2]
    wg = w.reshape(groups, -1, c_in // groups)
    xs = x.reshape(n, groups, c_in // groups, -1)
    outs = out.reshape(n, groups, wg.shape[1], -1)

    def work(start: int, stop: int, p0: int, p1: int, serial: bool) -> None:
        np.matmul(wg, xs[start:stop, :, :, p0:p1], out=outs[start:stop, :, :, p0:p1])

    _split(n, xs.shape[-1], work, n * xs.shape[-1] * c_in * wg.shape[1], x.nbytes + out.nbytes)


@lru_cache(maxsize=64)
def _k1_geometry(spec: ConvSpec, big: tuple[int, ...], small: tuple[int, ...] | None = None) -> tuple:
    """``(small, small slices, big slices, small covered, big covered)`` of a 1-tap kernel between
    the grids ``big`` and ``small`` (the conv's input and output; by default the conv's output
    shape), worked out once per geometry."""
    if small is None:
        small = spec.conv_output_shape(big)
    pairs = [_k1_slices(b, o, s, lo) for b, o, s, (lo, _) in zip(big, small, spec.stride, spec.padding)]
    inside, reached = tuple(s for s, _ in pairs), tuple(b for _, b in pairs)
    small_covered = all(sl.start == 0 and sl.stop == o for sl, o in zip(inside, small))
    big_covered = all(s == 1 for s in spec.stride) and all(b.start == 0 and b.stop == n for b, n in zip(reached, big))
    everything = (slice(None), slice(None))
    return small, everything + inside, everything + reached, small_covered, big_covered


def _k1_conv(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """A 1x..x1 kernel: a GEMM over the input (a strided view of it with stride)."""
    n = x.shape[0]
    small, inside, reached, full, _ = _k1_geometry(spec, x.shape[2:])
    out = np.empty((n, w.shape[0]) + small, dtype=x.dtype) if full else np.zeros((n, w.shape[0]) + small, dtype=x.dtype)
    window = x[reached]
    if full:
        _k1_gemm(w, np.ascontiguousarray(window), out, spec.groups)
    else:
        part = np.empty((n, w.shape[0]) + window.shape[2:], dtype=x.dtype)
        _k1_gemm(w, np.ascontiguousarray(window), part, spec.groups)
        out[inside] = part
    return out


def _k1_conv_transpose(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The adjoint of :func:`_k1_conv`: the GEMM's result written into the strided positions."""
    n, c_in, *small = y.shape
    big = spec.transpose_output_shape(tuple(small))
    g = spec.groups
    co_g = w.shape[1]
    _, inside, reached, whole, dense = _k1_geometry(spec, big, tuple(small))
    wt = np.ascontiguousarray(w.reshape(g, c_in // g, co_g).swapaxes(1, 2)).reshape(g * co_g, c_in // g)
    out = np.empty((n, g * co_g) + big, dtype=y.dtype) if dense else np.zeros((n, g * co_g) + big, dtype=y.dtype)
    source = y if whole else np.ascontiguousarray(y[inside])
    if dense:
        _k1_gemm(wt, source, out, g)
    else:
        part = np.empty((n, g * co_g) + source.shape[2:], dtype=y.dtype)
        _k1_gemm(wt, source, part, g)
        out[reached] = part
    return out


@zero_padded(transposed=False)
def shift_conv(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Stride-1 convolution: with stride 1, tap ``t`` reads the flat padded input shifted by
    a constant ``offset[t]``, so the column buffer is ``C_in * T`` contiguous copies (none
    for k1 without padding) and one GEMM; output rows are computed at the padded width
    and cropped.  A 1-tap kernel, any stride, is a GEMM over (a strided view of) the input."""
    if all(k == 1 for k in spec.kernel_size):
        return _k1_conv(x, w, spec)
    n, c_in = x.shape[:2]
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[0] // g
    small = spec.conv_output_shape(x.shape[2:])
    xp = x if not any(lo or hi for lo, hi in spec.padding) else np.pad(x, [(0, 0), (0, 0)] + list(spec.padding))
    padded = xp.shape[2:]
    T = math.prod(spec.kernel_size)
    offsets = _shift_offsets(spec, padded)
    pitch = math.prod(padded[1:])  # one row of the first axis
    rows = small[0]
    inner = tuple(small[1:])
    wide = tuple(padded[1:]) != inner  # rows computed at the padded width, then cropped
    valid = (rows - 1) * pitch + sum((o - 1) * math.prod(padded[a + 2:]) for a, o in enumerate(inner)) + 1
    P = math.prod(small)
    xf = xp.reshape(n, c_in, -1)
    wf = w.reshape(w.shape[0], ci_g * T)
    out = np.empty((n, co_g * g, P), dtype=x.dtype)
    direct = T == 1 and not wide  # k1 without padding: the input is the column buffer
    row_bytes = ci_g * T * pitch * x.itemsize

    def work(start: int, stop: int, r_lo: int, r_hi: int, serial: bool) -> None:
        budget = _worker_budget(out.nbytes, serial)
        if serial:
            budget = min(budget, _GATHER_CAP)
        rb = int(max(1, min(r_hi - r_lo, budget // row_bytes)))
        nb = 1
        if rb == rows and rows * pitch < _FOLD_BELOW:  # small planes: fold samples into the columns
            nb = int(max(1, min(stop - start, budget // (row_bytes * rows))))
        cols = None if direct else np.empty(ci_g * T * nb * rb * pitch, dtype=x.dtype)
        for gi in range(g):
            wg = wf[gi * co_g:(gi + 1) * co_g]
            cs = slice(gi * co_g, (gi + 1) * co_g)
            for n0 in range(start, stop, nb):
                m = min(nb, stop - n0)
                for r0 in range(r_lo, r_hi, rb):
                    r1 = min(r_hi, r0 + rb)
                    span = (r1 - r0) * pitch
                    if direct:
                        c = xf[n0, gi * ci_g:(gi + 1) * ci_g, r0 * pitch:r1 * pitch] if m == 1 else \
                            xf[n0:n0 + m, gi * ci_g:(gi + 1) * ci_g].transpose(1, 0, 2).reshape(ci_g, m * P)
                    else:
                        c = cols[:ci_g * T * m * span].reshape(ci_g * T, m * span)
                        (_gather_shift_serial if serial else _gather_shift)(
                            xf, c, gi * ci_g, ci_g, n0, m, r0 * pitch, span, min(span, valid - r0 * pitch), offsets)
                    if not wide and m == 1:
                        np.matmul(wg, c, out=out[n0, cs, r0 * pitch:r1 * pitch])
                        continue
                    part = (wg @ c).reshape((co_g, m, r1 - r0) + tuple(padded[1:]))
                    if wide:
                        part = part[(Ellipsis,) + tuple(slice(0, o) for o in inner)]
                    target = out[n0:n0 + m, cs].reshape((m, co_g, rows) + inner)[:, :, r0:r1]
                    target[...] = part.transpose((1, 0) + tuple(range(2, part.ndim)))

    _split(n, rows, work, n * P * T * ci_g * co_g * g, x.nbytes + out.nbytes)
    return out.reshape((n, co_g * g) + small)


def flipped_conv_spec(spec: ConvSpec) -> ConvSpec:
    """The stride-1 convolution a stride-1 transposed convolution equals (kernel flipped,
    channels swapped): the padding of :func:`transconv.spec.transposed_as_direct_conv`."""
    padding = transposed_as_direct_conv(spec).padding
    return replace(spec, padding=padding, output_padding=(0,) * spec.ndim, padding_mode="zeros")


@zero_padded(transposed=True)
def shift_conv_transpose(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Stride-1 transposed convolution as the convolution with the flipped kernel (see
    :func:`shift_conv`); needs ``pad <= dilation * (kernel - 1)`` on every side."""
    if all(k == 1 for k in spec.kernel_size):
        return _k1_conv_transpose(y, w, spec)
    return shift_conv(y, flipped_weight(w, spec.groups), flipped_conv_spec(spec))


def shift_supports(spec: ConvSpec, transposed: bool) -> str | None:
    """Why the shifted GEMM cannot run a call (``None`` when it can)."""
    if all(k == 1 for k in spec.kernel_size):
        return None
    if any(s != 1 for s in spec.stride):
        return f"it needs stride 1 or a 1-tap kernel, got stride {spec.stride}"
    if transposed and any(lo > d * (k - 1) or hi > d * (k - 1) + a for k, d, (lo, hi), a in
                          zip(spec.kernel_size, spec.dilation, spec.padding, spec.output_padding)):
        return "padding larger than dilation * (kernel - 1) crops the transposed output"
    return None
