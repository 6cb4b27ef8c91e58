"""Compiled methods: one GEMM per block of samples plus a compiled gather/scatter, and a
direct compiled kernel for few channels.

Both read the connectivity as flat tables, ``table[t, p]`` = the flat position (on the
large grid) that small-grid position ``p`` meets through tap ``t``, or ``-1`` where it
meets padding.  Reflect/replicate/circular padding is already folded into the table,
so no padded copy is ever made and no mode needs a second code path:

    conv            y[n, co, p]        = sum_{ci, t} w[co, ci, t] * x[n, ci, table[t, p]]
    conv_transpose  x[n, ci, table[t, p]] += sum_{co} w[co, ci, t] * y[n, co, p]

``"gemm"`` evaluates the channel contraction with BLAS (batch folded into the GEMM's
column dimension, weights used in their own layout through a transposed view, so no
weight re-layout or cache) and moves data with a parallel numba kernel:

    conv            cols[(ci, t), (n, p)] = x[n, ci, table[t, p]]      (one block of samples)
                    y[:, block]           = w.reshape(C_out, C_in * T) @ cols
    conv_transpose  Z[(co, t), (n, p)]    = w.reshape(C_in, C_out * T).T @ y[:, block]
                    x[n, co, table[t, p]] += Z[(co, t), (n, p)]        (the fused col2im)

With at least as many samples as cores, each core takes a share of the samples and
runs its GEMM (single-threaded BLAS) and its scatter back to back (see ``_split``).

Extra memory: per sample, the transposed convolution's GEMM result holds
``prod(k) / prod(s)`` times its output (1x for kernel = stride, 4x for k4 s2) and the
convolution's gather buffer ``prod(k) * C_in`` values per output position; blocks of
samples keep all workers' buffers together under half the output (the input, for conv)
or 4 MB, whichever is larger, and at least one sample.  There is never a full column
buffer N x C*k^d x H x W.  Scatters run in
parallel over (channel plane, output phase): taps whose offsets differ modulo the
stride write disjoint output positions, so with zero padding the phases of one plane
run on different cores without atomics (sub-pixel decomposition); with folding padding
modes the plane is one task.

``"compiled_direct"`` skips BLAS for few channels (single-channel images, depthwise),
multiplying and accumulating straight from the tables.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from ..connectivity import axis_tap_indices, transpose_axis_tap_indices
from ..spec import ConvSpec

try:  # numba is a core dependency; a broken install makes the methods decline, not the package fail
    import numba
    from numba import njit, prange

    NUMBA_ERROR = None
except Exception as exc:  # pragma: no cover - exercised only without numba
    numba = None
    NUMBA_ERROR = f"numba is not importable ({exc})"

__all__ = ["NUMBA_ERROR", "gemm_conv", "gemm_conv_transpose", "direct_conv", "direct_conv_transpose", "flat_table"]


# --------------------------------------------------------------------------------------
# Tables from the connectivity.
# --------------------------------------------------------------------------------------


TABLE_LIMIT = 256 * 2**20  # bytes of connectivity table a compiled method may build


def table_bytes(spec: ConvSpec, small: tuple[int, ...]) -> int:
    """Size of the (taps, small positions) table a compiled method needs."""
    return int(np.prod(spec.kernel_size)) * int(np.prod(small)) * 4


@lru_cache(maxsize=16)
def _table(maps_key, grid: tuple[int, ...], spec: ConvSpec, transposed: bool):
    maps = transpose_axis_tap_indices(spec, maps_key) if transposed else axis_tap_indices(spec, maps_key)
    return flat_table(maps, grid, spec)


def flat_table(maps, grid: tuple[int, ...], spec: ConvSpec):
    """``(table[T, P], tap_order[T], phase_start[n_phases + 1])`` from per-axis maps.

    ``maps[a]`` is ``(P_a, k_a)``: the position on axis ``a`` of ``grid`` met by small
    position ``p_a`` through tap ``t_a``.  Taps are grouped by output phase, the residue
    of ``t * dilation - pad_lo`` modulo the stride on every axis.
    """
    d = len(maps)
    small = tuple(m.shape[0] for m in maps)
    taps = tuple(m.shape[1] for m in maps)
    index_dtype = np.int32 if int(np.prod(grid)) < 2**31 - 1 else np.int64
    flat = np.zeros(taps + small, dtype=np.int64)
    valid = np.ones(taps + small, dtype=bool)
    step = 1
    for a in reversed(range(d)):
        view = [1] * (2 * d)
        view[a], view[d + a] = taps[a], small[a]
        m = maps[a].T.reshape(view)
        flat = flat + np.where(m >= 0, m, 0) * step
        valid = valid & (m >= 0)
        step *= grid[a]
    table = np.where(valid, flat, -1).reshape(int(np.prod(taps)), int(np.prod(small))).astype(index_dtype)
    if spec.padding_mode == "zeros":
        residues = np.zeros(taps, dtype=np.int64)
        for a in range(d):
            r = (np.arange(taps[a]) * spec.dilation[a] - spec.padding[a][0]) % spec.stride[a]
            view = [1] * d
            view[a] = taps[a]
            residues = residues * spec.stride[a] + r.reshape(view)
        residues = residues.ravel()
        order = np.argsort(residues, kind="stable").astype(np.int64)
        _, counts = np.unique(residues, return_counts=True)
    else:  # folded taps may land anywhere: one task per plane
        order = np.arange(table.shape[0], dtype=np.int64)
        counts = np.array([table.shape[0]])
    phase_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for a in (table, order, phase_start):
        a.setflags(write=False)
    return table, order, phase_start


def _transpose_table(spec: ConvSpec, small: tuple[int, ...]):
    return _table(tuple(small), spec.transpose_output_shape(small), spec, True)


def _conv_table(spec: ConvSpec, big: tuple[int, ...]):
    return _table(tuple(big), tuple(big), spec, False)


# --------------------------------------------------------------------------------------
# Kernels (compiled lazily on first call; cache=True keeps them across processes).
# --------------------------------------------------------------------------------------

if numba is not None:

    def _scatter_py(z, table, order, phase_start, out, n0, co0, c_g, nb, P):  # pragma: no cover - compiled
        # z[(co, t), (n, p)] -> out[n0 + n, co0 + co, table[t, p]]
        T = table.shape[0]
        phases = phase_start.shape[0] - 1
        for task in prange(nb * c_g * phases):
            ph = task % phases
            plane = task // phases
            co = plane % c_g
            n = plane // c_g
            dst = out[n0 + n, co0 + co]
            for k in range(phase_start[ph], phase_start[ph + 1]):
                t = order[k]
                row = z[co * T + t]
                base = n * P
                for p in range(P):
                    q = table[t, p]
                    if q >= 0:
                        dst[q] += row[base + p]

    def _gather_py(x, table, ci0, ci_g, n0, nb, cols):  # pragma: no cover - compiled
        # cols[(ci, t), (n, p)] = x[n0 + n, ci0 + ci, table[t, p]]
        T, P = table.shape
        for row in prange(ci_g * T):
            ci = row // T
            t = row % T
            dst = cols[row]
            for n in range(nb):
                src = x[n0 + n, ci0 + ci]
                base = n * P
                for p in range(P):
                    q = table[t, p]
                    dst[base + p] = src[q] if q >= 0 else 0.0

    # parallel=True spreads a call over numba's threads; the serial twins (prange runs as
    # range) are for the worker threads of _split, each with single-threaded BLAS
    _scatter = njit(parallel=True, cache=True, nogil=True)(_scatter_py)
    _scatter_serial = njit(cache=True, nogil=True)(_scatter_py)
    _gather = njit(parallel=True, cache=True, nogil=True)(_gather_py)
    _gather_serial = njit(cache=True, nogil=True)(_gather_py)

    @njit(parallel=True, cache=True, nogil=True)
    def _direct_transpose(y, w, table, order, phase_start, out, groups):  # pragma: no cover - compiled
        # out[n, g*co_g + co, table[t, p]] += w[g*ci_g + ci, co, t] * y[n, g*ci_g + ci, p]
        N, C_in, P = y.shape
        co_g = w.shape[1]
        ci_g = C_in // groups
        C_out = co_g * groups
        phases = phase_start.shape[0] - 1
        for task in prange(N * C_out * phases):
            ph = task % phases
            plane = task // phases
            co_all = plane % C_out
            n = plane // C_out
            g = co_all // co_g
            co = co_all % co_g
            dst = out[n, co_all]
            for ci in range(g * ci_g, (g + 1) * ci_g):
                src = y[n, ci]
                for k in range(phase_start[ph], phase_start[ph + 1]):
                    t = order[k]
                    wv = w[ci, co, t]
                    for p in range(P):
                        q = table[t, p]
                        if q >= 0:
                            dst[q] += wv * src[p]

    @njit(parallel=True, cache=True, nogil=True)
    def _direct_conv(x, w, table, out, groups, block):  # pragma: no cover - compiled
        # out[n, co, p] = sum w[co, ci, t] * x[n, g*ci_g + ci, table[t, p]]; blocks of p in parallel
        N, C_out, P = out.shape
        T = table.shape[0]
        ci_g = w.shape[1]
        co_g = C_out // groups
        n_blocks = (P + block - 1) // block
        for task in prange(N * C_out * n_blocks):
            b = task % n_blocks
            plane = task // n_blocks
            co = plane % C_out
            n = plane // C_out
            g = co // co_g
            p0 = b * block
            p1 = min(P, p0 + block)
            dst = out[n, co]
            for ci in range(ci_g):
                src = x[n, g * ci_g + ci]
                for t in range(T):
                    wv = w[co, ci, t]
                    for p in range(p0, p1):
                        q = table[t, p]
                        if q >= 0:
                            dst[p] += wv * src[q]


# --------------------------------------------------------------------------------------
# Methods.  Arrays arrive batched (N, C, *spatial), C-contiguous, in the compute dtype.
# --------------------------------------------------------------------------------------

_BLOCK_BYTES = 512 * 2**20  # upper bound of the per-block work buffer


def _samples_per_block(n: int, per_sample_bytes: int, budget: int = _BLOCK_BYTES) -> int:
    """Samples per GEMM block: as many as fit ``budget`` bytes of work buffer (at least one)."""
    return int(max(1, min(n, budget // max(per_sample_bytes, 1))))


def _worker_budget(reference_bytes: int) -> int:
    """Work-buffer bytes per block for a worker of :func:`_split`.

    All workers together hold at most half of ``reference_bytes`` (the output, for the
    transposed convolution), with a 4 MB floor so tiny layers are not cut into crumbs.
    Inside a worker, small blocks cost nothing (one core runs GEMM and scatter back to
    back, and cache-sized blocks are even faster: DCGAN 64x128x16x16 23 ms in blocks of
    4 samples, 30 ms in one block of 32).  Without the split, every block hands the cores
    from OpenBLAS's threads to numba's OpenMP threads and back, and both spin after their
    parallel regions (DCGAN 64->3: 25 ms in 4 blocks, 7 ms in one), so that path takes
    blocks up to the absolute cap.
    """
    workers = max(1, numba.get_num_threads())
    return int(min(_BLOCK_BYTES, max(reference_bytes // (2 * workers), 4 * 2**20)))


_WORKERS: dict = {}
_SPLIT_LOCK = threading.Lock()  # one split call at a time: the BLAS thread limit is process-wide


def _split(n: int, work) -> None:
    """Run ``work(n0, n1, serial)`` over sample ranges.

    With as many samples as numba threads, each range runs in its own Python thread
    with single-threaded BLAS and serial kernels: the GEMM and the scatter of one range
    follow each other on one core, and no thread pool hands the cores over to another
    (OpenBLAS's and OpenMP's threads both spin after their parallel regions; measured on
    DCGAN 64x256x8x8: 29.5 ms handing over, 18 ms split).  BLAS is limited to one thread
    for the duration of the call, process-wide.  Otherwise one range, parallel kernels.
    """
    workers = numba.get_num_threads()
    if workers < 2 or n < workers:
        work(0, n, False)
        return
    bounds = np.linspace(0, n, workers + 1).astype(int)
    with _SPLIT_LOCK:
        if "pool" not in _WORKERS:
            from concurrent.futures import ThreadPoolExecutor

            from threadpoolctl import ThreadpoolController

            _WORKERS["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="transconv")
            _WORKERS["blas"] = ThreadpoolController()
        with _WORKERS["blas"].limit(limits=1, user_api="blas"):
            futures = [_WORKERS["pool"].submit(work, int(a), int(b), True)
                       for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
            for f in futures:
                f.result()


def gemm_conv_transpose(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    n, c_in = y.shape[:2]
    small = y.shape[2:]
    big = spec.transpose_output_shape(small)
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[1]
    table, order, phase_start = _transpose_table(spec, small)
    T, P = table.shape
    out = np.zeros((n, co_g * g, int(np.prod(big))), dtype=y.dtype)
    yf = y.reshape(n, c_in, P)
    # w as (C_in, C_out/g * T): its transpose is the (co, t)-by-ci matrix, a free view
    wf = w.reshape(c_in, co_g * T)
    per_sample = co_g * T * P * y.itemsize

    def work(start: int, stop: int, serial: bool) -> None:
        scatter = _scatter_serial if serial else _scatter
        nb = _samples_per_block(stop - start, per_sample, _worker_budget(out.nbytes) if serial else _BLOCK_BYTES)
        for gi in range(g):
            w_t = wf[gi * ci_g:(gi + 1) * ci_g].T
            for n0 in range(start, stop, nb):
                n1 = min(stop, n0 + nb)
                block = np.ascontiguousarray(yf[n0:n1, gi * ci_g:(gi + 1) * ci_g].transpose(1, 0, 2)).reshape(ci_g, -1)
                z = w_t @ block  # (co_g * T, nb * P)
                scatter(z, table, order, phase_start, out, n0, gi * co_g, co_g, n1 - n0, P)
                del z, block  # free before the next block's GEMM allocates its own

    _split(n, work)
    return out.reshape((n, co_g * g) + big)


def gemm_conv(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    n, c_in = x.shape[:2]
    big = x.shape[2:]
    small = spec.conv_output_shape(big)
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[0] // g
    table, _, _ = _conv_table(spec, big)
    T, P = table.shape
    xf = x.reshape(n, c_in, -1)
    wf = w.reshape(w.shape[0], ci_g * T)
    out = np.empty((n, co_g * g, P), dtype=x.dtype)
    per_sample = ci_g * T * P * x.itemsize

    def work(start: int, stop: int, serial: bool) -> None:
        gather = _gather_serial if serial else _gather
        # the gather buffer is measured against the input, which it re-reads prod(k) times
        nb = _samples_per_block(stop - start, per_sample, _worker_budget(x.nbytes) if serial else _BLOCK_BYTES)
        cols = np.empty((ci_g * T, min(nb, stop - start) * P), dtype=x.dtype)
        for gi in range(g):
            for n0 in range(start, stop, nb):
                n1 = min(stop, n0 + nb)
                c = cols[:, : (n1 - n0) * P]
                gather(xf, table, gi * ci_g, ci_g, n0, n1 - n0, c)
                y = wf[gi * co_g:(gi + 1) * co_g] @ c  # (co_g, nb * P)
                out[n0:n1, gi * co_g:(gi + 1) * co_g] = y.reshape(co_g, n1 - n0, P).transpose(1, 0, 2)

    _split(n, work)
    return out.reshape((n, co_g * g) + small)


def direct_conv_transpose(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    n, c_in = y.shape[:2]
    small = y.shape[2:]
    big = spec.transpose_output_shape(small)
    table, order, phase_start = _transpose_table(spec, small)
    T, P = table.shape
    out = np.zeros((n, w.shape[1] * spec.groups, int(np.prod(big))), dtype=y.dtype)
    _direct_transpose(y.reshape(n, c_in, P), w.reshape(c_in, w.shape[1], T), table, order, phase_start, out,
                      spec.groups)
    return out.reshape(out.shape[:2] + big)


def direct_conv(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    n, c_in = x.shape[:2]
    big = x.shape[2:]
    small = spec.conv_output_shape(big)
    table, _, _ = _conv_table(spec, big)
    T, P = table.shape
    out = np.zeros((n, w.shape[0], P), dtype=x.dtype)
    _direct_conv(x.reshape(n, c_in, -1), w.reshape(w.shape[0], w.shape[1], T), table, out, spec.groups, 4096)
    return out.reshape(out.shape[:2] + small)
