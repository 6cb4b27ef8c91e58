"""Compiled inner loops (numba): data movement around BLAS, and a direct kernel for few channels.

All kernels work on three spatial axes (1-d and 2-d problems get leading singleton
axes) and on the index tables of :mod:`transconv.ops.tables`, so each kernel is
compiled once per dtype (float32, float64) and cached on disk.  Parallel loops run over
output channels x batch x outer output rows: different iterations write disjoint
output rows, so there are no races.

If numba cannot be imported, :data:`NUMBA_ERROR` says why and the methods that need
these kernels decline with that reason.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

NUMBA_ERROR: str | None = None
try:  # pragma: no cover - exercised by the import itself
    import numba
    from numba import njit, prange
except Exception as exc:  # pragma: no cover
    NUMBA_ERROR = f"numba is not available ({type(exc).__name__}: {exc}); install numba>=0.59"
    numba = None

__all__ = ["NUMBA_ERROR", "available", "direct_kernel", "col2im_kernel", "im2col_kernel", "threads"]


def available() -> bool:
    return NUMBA_ERROR is None


def threads() -> int:
    """Threads the compiled kernels use."""
    return numba.get_num_threads() if numba is not None else 1


if numba is not None:
    _opts = dict(cache=True, parallel=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)

    @njit(**_opts)
    def direct_kernel(X, W, out, cnt0, tt0, mm0, cnt1, tt1, mm1, runs):  # pragma: no cover - compiled
        """out[n,g,co,z] = sum_ci sum_taps W[g,co,ci,t] X[n,g,ci,m(z,t)].

        X: (N, G, Cig, M0, M1, M2); W: (G, Cog, Cig, T0, T1, T2); out: (N, G, Cog, O0, O1, O2).
        """
        N, G, Cog, O0, O1, O2 = out.shape
        Cig = X.shape[2]
        R = runs.shape[0]
        total = N * G * Cog * O0
        for idx in prange(total):
            z0 = idx % O0
            rest = idx // O0
            co = rest % Cog
            rest //= Cog
            g = rest % G
            n = rest // G
            for z1 in range(O1):
                row = out[n, g, co, z0, z1]
                row[:] = 0
                for ci in range(Cig):
                    for j0 in range(cnt0[z0]):
                        t0 = tt0[z0, j0]
                        m0 = mm0[z0, j0]
                        for j1 in range(cnt1[z1]):
                            t1 = tt1[z1, j1]
                            m1 = mm1[z1, j1]
                            xrow = X[n, g, ci, m0, m1]
                            wk = W[g, co, ci, t0, t1]
                            for r in range(R):
                                wv = wk[runs[r, 0]]
                                zs = runs[r, 1]
                                zst = runs[r, 2]
                                ms = runs[r, 3]
                                mst = runs[r, 4]
                                for q in range(runs[r, 5]):
                                    row[zs + zst * q] += wv * xrow[ms + mst * q]

    @njit(**_opts)
    def col2im_kernel(Z, out, n0, g, nb, zero_rows, z0s, cnt0, tt0, mm0, z1s, cnt1, tt1, mm1, runs, T1, T2, M0, M1, M2):  # pragma: no cover
        """Fused col2im / pixel shuffle: out[n0+nn, g, co, z] (+)= sum_taps Z[co, t, col(nn, m(z,t))].

        Z: (Cog, Tc, nb*M0*M1*M2), the GEMM result for ``nb`` samples and ``Tc`` taps;
        out: (N, G, Cog, O0, O1, O2).  Rows ``(z0s[i], z1s[j])`` are produced: zeroed
        first when ``zero_rows`` (all their taps are in Z), else accumulated.
        """
        Cog = Z.shape[0]
        R0 = z0s.shape[0]
        R1 = z1s.shape[0]
        R = runs.shape[0]
        total = nb * Cog * R0
        for idx in prange(total):
            i0 = idx % R0
            rest = idx // R0
            co = rest % Cog
            nn = rest // Cog
            z0 = z0s[i0]
            for i1 in range(R1):
                z1 = z1s[i1]
                row = out[n0 + nn, g, co, z0, z1]
                if zero_rows:
                    row[:] = 0
                for j0 in range(cnt0[i0]):
                    t0 = tt0[i0, j0]
                    m0 = mm0[i0, j0]
                    for j1 in range(cnt1[i1]):
                        t1 = tt1[i1, j1]
                        m1 = mm1[i1, j1]
                        tb = (t0 * T1 + t1) * T2
                        cb = ((nn * M0 + m0) * M1 + m1) * M2
                        for r in range(R):
                            zrow = Z[co, tb + runs[r, 0]]
                            zs = runs[r, 1]
                            zst = runs[r, 2]
                            ms = cb + runs[r, 3]
                            mst = runs[r, 4]
                            for q in range(runs[r, 5]):
                                row[zs + zst * q] += zrow[ms + mst * q]

    @njit(**_opts)
    def im2col_kernel(X, col, n0, g, nb, taps0, idx0, idx1, idx2):  # pragma: no cover
        """col[ci, t, nn, o] = X[n0+nn, g, ci, idx(o, t)] (0 where the index is -1).

        X: (N, G, Cig, M0, M1, M2); col: (Cig, Tc0*T1*T2, nb, O0, O1, O2);
        idx_a: (O_a, T_a) input positions (taps of axis 0 restricted to ``taps0``).
        """
        Cig = col.shape[0]
        Tc0 = taps0.shape[0]
        T1 = idx1.shape[1]
        T2 = idx2.shape[1]
        O0 = idx0.shape[0]
        O1 = idx1.shape[0]
        O2 = idx2.shape[0]
        total = Cig * Tc0 * T1 * T2 * nb
        for idx in prange(total):
            nn = idx % nb
            rest = idx // nb
            t2 = rest % T2
            rest //= T2
            t1 = rest % T1
            rest //= T1
            i0 = rest % Tc0
            ci = rest // Tc0
            t0 = taps0[i0]
            tflat = (i0 * T1 + t1) * T2 + t2
            for o0 in range(O0):
                m0 = idx0[o0, t0]
                for o1 in range(O1):
                    dst = col[ci, tflat, nn, o0, o1]
                    m1 = idx1[o1, t1]
                    if m0 < 0 or m1 < 0:
                        dst[:] = 0
                        continue
                    src = X[n0 + nn, g, ci, m0, m1]
                    for o2 in range(O2):
                        m2 = idx2[o2, t2]
                        dst[o2] = src[m2] if m2 >= 0 else 0

else:  # pragma: no cover
    direct_kernel = col2im_kernel = im2col_kernel = None
