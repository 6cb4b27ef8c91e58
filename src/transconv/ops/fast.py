"""The ``phase`` method (registered with ``auto=False``; ``ops/compiled.py`` holds ``gemm``).

``phase`` (transposed) sub-pixel / phase decomposition: for each output phase
          ``r`` (per axis ``r < stride``) only the taps with ``t*dilation = r (mod stride)``
          reach it; one GEMM with that exact sub-kernel, whose result is written straight
          into the phase's interleaved output positions.  No multiplication by inserted
          zeros.  (conv) the adjoint: polyphase im2col per phase, GEMMs accumulated.

Memory: besides the output, a call holds at most one GEMM result / column block,
chunked (over samples, then over taps) to stay within ``max(output bytes, 4 MiB)``
(a single sample's block is the smallest chunk), plus for the folded batch a copy of
the input (its size).  The weight re-layout is cached only for read-only weight arrays
(see :func:`weight_layout`).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from dataclasses import replace
from typing import Callable

import numpy as np

from ..spec import ConvSpec
from . import kernels
from .direct import pad_adjoint
from .tables import canonical3, outer_table, runs, spec_triples

__all__ = [
    "conv_transpose_phase", "conv_phase", "weight_layout", "clear_caches", "chunk_budget",
]

MIN_BUDGET = 4 << 20


def chunk_budget(out_bytes: int) -> int:
    """Bytes a call may hold in GEMM results / column blocks at once."""
    return max(int(out_bytes), MIN_BUDGET)


# ---------------------------------------------------------------------------- weight cache

_CACHE_LOCK = threading.Lock()
_WEIGHT_CACHE: dict[tuple, tuple[weakref.ref, np.ndarray]] = {}


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def weight_layout(w: np.ndarray, what: tuple, build: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``build(w)``, cached per weight array when that is safe.

    A cached re-layout goes stale if the weight is changed in place, so only weights
    that *cannot* be written (``w.flags.writeable`` is False, as is every array it is a
    view of) are cached, keyed on the identity of the owning array (held weakly) and the
    view's address, shape, strides and dtype.  Writable weights are re-laid out on every
    call (a weight-sized copy).  To get caching, freeze the weight:
    ``w.setflags(write=False)``.  Making a frozen array writable again and mutating it is
    not supported; call :func:`clear_caches` if you do.
    """
    root = _root(w)
    if w.flags.writeable or root.flags.writeable:
        return build(w)
    key = (id(root), w.__array_interface__["data"][0], w.shape, w.strides, w.dtype.str) + what
    with _CACHE_LOCK:
        hit = _WEIGHT_CACHE.get(key)
        if hit is not None and hit[0]() is root:
            return hit[1]
    value = build(w)
    value.setflags(write=False)

    def _drop(_ref, key=key):
        with _CACHE_LOCK:
            _WEIGHT_CACHE.pop(key, None)

    try:
        ref = weakref.ref(root, _drop)
    except TypeError:  # pragma: no cover - ndarray supports weakrefs
        return value
    with _CACHE_LOCK:
        _WEIGHT_CACHE[key] = (ref, value)
    return value


def clear_caches() -> None:
    """Forget every cached weight re-layout."""
    with _CACHE_LOCK:
        _WEIGHT_CACHE.clear()


# ---------------------------------------------------------------------------- helpers


def _zero_core(spec: ConvSpec) -> ConvSpec:
    """The same geometry with the padding not cropped (zeros): output = the padded grid."""
    nd = spec.ndim
    return replace(spec, padding=((0, 0),) * nd, padding_mode="zeros")


def _needs_fold(spec: ConvSpec) -> bool:
    return spec.padding_mode != "zeros" and any(lo or hi for lo, hi in spec.padding)


def _axis_phases(k: int, s: int, d: int, lo: int, out_len: int):
    """Per phase ``r < s``: the taps that reach it and its output positions."""
    phases = []
    for r in range(s):
        taps = tuple(t for t in range(k) if (t * d) % s == r)
        zs = np.arange(out_len, dtype=np.int64)
        zs = zs[(zs + lo) % s == r]
        phases.append((taps, zs))
    return phases


# ---------------------------------------------------------------------------- transposed


def _tap_rows(w: np.ndarray, g: int, flat: np.ndarray) -> np.ndarray:
    """(G*Cig, Cog, *k) -> (G, Cig, Cog*Tc) holding only taps ``flat``: rows stay contiguous."""
    ci, cog = w.shape[:2]
    return np.ascontiguousarray(w.reshape(g, ci // g, cog, -1)[..., flat]).reshape(g, ci // g, -1)


def _folded_input(y: np.ndarray, g: int) -> np.ndarray:
    """(N, G*Cig, *s) -> (G, Cig, N*P): the batch folded into the GEMM columns."""
    n, c = y.shape[:2]
    return np.ascontiguousarray(y.reshape(n, g, c // g, -1).transpose(1, 2, 0, 3)).reshape(g, c // g, -1)


def _ct_plan(spec, small, phase):
    """Chunks of taps: list of (flat tap indices, T1, T2, table0, table1, runs2, zero_rows)."""
    trs = spec_triples(spec, True, small)
    K = canonical3(spec.kernel_size)
    full = (1,) * (3 - spec.ndim)
    S = full + tuple(spec.stride)
    D = full + tuple(spec.dilation)
    LO = full + tuple(lo for lo, _ in spec.padding)
    if not phase:
        t0 = outer_table(trs[0])
        t1 = outer_table(trs[1])
        flat = np.arange(int(np.prod(K)), dtype=np.int64)
        return [(flat, K[1], K[2], t0, t1, runs(trs[2]).table, True)]
    per_axis = [_axis_phases(K[a], S[a], D[a], LO[a], trs[a].out_len) for a in range(3)]
    plan = []
    for (taps0, zs0), (taps1, zs1), (taps2, _) in itertools.product(*per_axis):
        if not (taps0 and taps1 and taps2) or not (len(zs0) and len(zs1)):
            continue  # positions no tap reaches stay zero
        flat = (
            (np.array(taps0)[:, None, None] * K[1] + np.array(taps1)[None, :, None]) * K[2] + np.array(taps2)[None, None, :]
        ).reshape(-1)
        t0 = outer_table(trs[0], taps0, zs0)
        t1 = outer_table(trs[1], taps1, zs1)
        plan.append((flat.astype(np.int64), len(taps1), len(taps2), t0, t1, runs(trs[2], taps2).table, False))
    return plan


def _conv_transpose_blas(y: np.ndarray, w: np.ndarray, spec: ConvSpec, phase: bool) -> np.ndarray:
    if _needs_fold(spec):
        small = y.shape[2:]
        xp = _conv_transpose_blas(y, w, _zero_core(spec), phase)
        return np.ascontiguousarray(pad_adjoint(xp, spec, spec.transpose_output_shape(small)))
    n, ci = y.shape[:2]
    g = spec.groups
    cig, cog = ci // g, w.shape[1]
    small = y.shape[2:]
    big = spec.transpose_output_shape(small)
    M = canonical3(small)
    O = canonical3(big)
    P = int(np.prod(M))
    item = y.dtype.itemsize
    plan = _ct_plan(spec, small, phase)
    out = (np.zeros if phase else np.empty)((n, g, cog) + O, dtype=y.dtype)
    budget = chunk_budget(out.nbytes)
    max_tc = max(len(p[0]) for p in plan) if plan else 1
    nb = int(max(1, min(n, budget // max(1, cog * max_tc * P * item))))
    xf = _folded_input(y, g) if nb > 1 else None
    yg = y.reshape(n, g, cig, P)
    zbuf = np.empty(cog * max_tc * nb * P, dtype=y.dtype)
    flat_out = out.reshape(-1)
    T = int(np.prod(spec.kernel_size))
    for pi, (flat, T1, T2, t0, t1, r2, zero_rows) in enumerate(plan):
        tc = len(flat)
        if tc == T:  # all taps: the weight as it is, (G, Cig, Cog*T), used transposed by BLAS
            wsel = w.reshape(g, cig, cog * T)
        else:
            wsel = weight_layout(w, ("ct-taps", g, flat.tobytes()), lambda a, flat=flat: _tap_rows(a, g, flat))
        for gi in range(g):
            wg = wsel[gi].T  # (Cog*Tc, Cig)
            for n0 in range(0, n, nb):
                m = min(nb, n - n0)
                cols = xf[gi][:, n0 * P : (n0 + m) * P] if xf is not None else yg[n0, gi]
                z = zbuf[: cog * tc * m * P].reshape(cog * tc, m * P)
                np.matmul(wg, cols, out=z)
                dims = np.array([n0, gi, m, cog, tc, g, O[0], O[1], O[2], M[0], M[1], M[2], T1, T2], dtype=np.int64)
                kernels.col2im_kernel(
                    zbuf, flat_out, dims, zero_rows,
                    t0.zs, t0.cnt, t0.tt, t0.mm, t1.zs, t1.cnt, t1.tt, t1.mm, r2,
                )
    return out.reshape((n, g * cog) + tuple(big))


def conv_transpose_phase(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    return _conv_transpose_blas(y, w, spec, phase=True)


# ---------------------------------------------------------------------------- conv via im2col


def _conv_index(spec: ConvSpec, in_spatial):
    from ..connectivity import axis_tap_indices

    maps = list(axis_tap_indices(spec, in_spatial))
    unit = np.zeros((1, 1), dtype=np.int64)
    return [unit] * (3 - len(maps)) + [np.ascontiguousarray(m, dtype=np.int64) for m in maps]


def _conv_blas(x: np.ndarray, w: np.ndarray, spec: ConvSpec, phase: bool) -> np.ndarray:
    n, ci = x.shape[:2]
    g = spec.groups
    cig, co = ci // g, w.shape[0]
    cog = co // g
    K = canonical3(spec.kernel_size)
    idx = _conv_index(spec, x.shape[2:])
    O = tuple(m.shape[0] for m in idx)
    Po = int(np.prod(O))
    item = x.dtype.itemsize
    M = canonical3(x.shape[2:])
    out = np.empty((n, g, cog, Po), dtype=x.dtype)
    budget = chunk_budget(out.nbytes)
    # tap blocks along axis 0: phases (polyphase components) or as few blocks as fit
    if phase:
        s0, d0 = (spec.stride[0], spec.dilation[0]) if spec.ndim == 3 else (1, 1)
        blocks = [tuple(t for t in range(K[0]) if (t * d0) % s0 == r) for r in range(s0)]
        blocks = [b for b in blocks if b]
    else:
        per_tap0 = cig * K[1] * K[2] * Po * item
        size = int(max(1, min(K[0], budget // max(1, per_tap0))))
        blocks = [tuple(range(a, min(K[0], a + size))) for a in range(0, K[0], size)]
    wk = w.reshape((g, cog, cig) + K)
    max_tc = max(len(b) for b in blocks) * K[1] * K[2]
    nb = int(max(1, min(n, budget // max(1, cig * max_tc * Po * item))))
    colbuf = np.empty(cig * max_tc * nb * Po, dtype=x.dtype)
    tmp = np.empty((cog, nb * Po), dtype=x.dtype) if (nb > 1 or len(blocks) > 1) else None
    for gi in range(g):
        for n0 in range(0, n, nb):
            m = min(nb, n - n0)
            for bi, block in enumerate(blocks):
                tc = len(block) * K[1] * K[2]
                col = colbuf[: cig * tc * m * Po].reshape((cig, tc, m) + O)
                dims = np.array((n0, gi, m, g, cig) + M, dtype=np.int64)
                kernels.im2col_kernel(x.reshape(-1), colbuf, dims, np.array(block, dtype=np.int64), idx[0], idx[1], idx[2])
                wsel = wk[gi][:, :, list(block)].reshape(cog, cig * tc)
                col2 = col.reshape(cig * tc, m * Po)
                if m == 1:
                    if bi == 0:
                        np.matmul(wsel, col2, out=out[n0, gi])
                    else:
                        np.matmul(wsel, col2, out=tmp[:, :Po])
                        out[n0, gi] += tmp[:, :Po]
                else:
                    t = tmp[:, : m * Po]
                    np.matmul(wsel, col2, out=t)
                    view = t.reshape(cog, m, Po).transpose(1, 0, 2)
                    if bi == 0:
                        out[n0 : n0 + m, gi] = view
                    else:
                        out[n0 : n0 + m, gi] += view
    return out.reshape((n, co) + spec.conv_output_shape(x.shape[2:]))


def conv_phase(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Polyphase blocks of the first spatial axis of a 3-d conv (used only when asked for)."""
    return _conv_blas(x, w, spec, phase=True)
