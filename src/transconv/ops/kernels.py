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



NUMBA_ERROR: str | None = None
try:  # pragma: no cover - exercised by the import itself
    import numba
    from numba import njit, prange
except Exception as exc:  # pragma: no cover
    NUMBA_ERROR = f"numba is not available ({type(exc).__name__}: {exc}); install numba>=0.59"
    numba = None

__all__ = ["NUMBA_ERROR", "available", "col2im_kernel", "im2col_kernel", "threads"]


def available() -> bool:
    return NUMBA_ERROR is None


def threads() -> int:
    """Threads the compiled kernels use."""
    return numba.get_num_threads() if numba is not None else 1


if numba is not None:
    _opts = dict(cache=True, parallel=True, nogil=True, fastmath=False, error_model="numpy", boundscheck=False)

    @njit(**_opts)
    def col2im_kernel(Z, out, dims, zero_rows, z0s, cnt0, tt0, mm0, z1s, cnt1, tt1, mm1, runs):  # pragma: no cover
        """Fused col2im / pixel shuffle on flat arrays: out[n0+nn, g, co, z] (+)= sum_taps Z[co, t, col(nn, m(z,t))].

        dims = (n0, g, nb, Cog, Tc, G, O0, O1, O2, M0, M1, M2, T1, T2).  Z is the GEMM
        result (Cog, Tc, nb*M0*M1*M2) for ``nb`` samples and ``Tc`` taps; out is
        (N, G, Cog, O0, O1, O2).  Rows ``(z0s[i], z1s[j])`` are produced: zeroed first
        when ``zero_rows`` (all their taps are in Z), else accumulated.
        """
        n0, g, nb, Cog, Tc, G, O0, O1, O2, M0, M1, M2, T1, T2 = (
            dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7], dims[8], dims[9], dims[10], dims[11],
            dims[12], dims[13])
        cols = nb * M0 * M1 * M2
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
            obase = (((n0 + nn) * G + g) * Cog + co) * O0 * O1 * O2
            for i1 in range(R1):
                z1 = z1s[i1]
                doff = obase + (z0 * O1 + z1) * O2
                if zero_rows:
                    for q in range(O2):
                        out[doff + q] = 0
                for j0 in range(cnt0[i0]):
                    t0 = tt0[i0, j0]
                    m0 = mm0[i0, j0]
                    for j1 in range(cnt1[i1]):
                        t1 = tt1[i1, j1]
                        m1 = mm1[i1, j1]
                        tb = co * Tc + (t0 * T1 + t1) * T2
                        cb = ((nn * M0 + m0) * M1 + m1) * M2
                        for r in range(R):
                            zs = doff + runs[r, 1]
                            zst = runs[r, 2]
                            ms = (tb + runs[r, 0]) * cols + cb + runs[r, 3]
                            mst = runs[r, 4]
                            ln = runs[r, 5]
                            if mst == 1 and zst == 1:
                                for q in range(ln):
                                    out[zs + q] += Z[ms + q]
                            elif mst == 1:
                                for q in range(ln):
                                    out[zs + zst * q] += Z[ms + q]
                            else:
                                for q in range(ln):
                                    out[zs + zst * q] += Z[ms + mst * q]

    @njit(**_opts)
    def im2col_kernel(X, col, dims, taps0, idx0, idx1, idx2):  # pragma: no cover
        """col[ci, t, nn, o] = X[n0+nn, g, ci, idx(o, t)] (0 where the index is -1), flat arrays.

        dims = (n0, g, nb, G, Cig, M0, M1, M2); col is (Cig, Tc0*T1*T2, nb, O0, O1, O2);
        idx_a: (O_a, T_a) input positions (taps of axis 0 restricted to ``taps0``).
        """
        n0, g, nb, G, Cig, M0, M1, M2 = dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7]
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
            xb = (((n0 + nn) * G + g) * Cig + ci) * M0
            # contiguous stretch of the last axis: o2 in [lo2, hi2) reads m2 = idx2[lo2, t2] + step*(o2-lo2)
            lo2 = 0
            while lo2 < O2 and idx2[lo2, t2] < 0:
                lo2 += 1
            hi2 = O2
            while hi2 > lo2 and idx2[hi2 - 1, t2] < 0:
                hi2 -= 1
            regular = True
            if hi2 - lo2 >= 2:
                step = idx2[lo2 + 1, t2] - idx2[lo2, t2]
                for o2 in range(lo2, hi2):
                    if idx2[o2, t2] != idx2[lo2, t2] + step * (o2 - lo2):
                        regular = False
                        break
            else:
                step = 1
            for o0 in range(O0):
                m0 = idx0[o0, t0]
                for o1 in range(O1):
                    doff = ((((ci * Tc0 * T1 * T2) + tflat) * nb + nn) * O0 + o0) * O1 * O2 + o1 * O2
                    m1 = idx1[o1, t1]
                    if m0 < 0 or m1 < 0:
                        for o2 in range(O2):
                            col[doff + o2] = 0
                        continue
                    soff = ((xb + m0) * M1 + m1) * M2
                    if regular:
                        for o2 in range(lo2):
                            col[doff + o2] = 0
                        s0 = soff + idx2[lo2, t2] - lo2 * step if hi2 > lo2 else soff
                        if step == 1:
                            for o2 in range(lo2, hi2):
                                col[doff + o2] = X[s0 + o2]
                        else:
                            for o2 in range(lo2, hi2):
                                col[doff + o2] = X[s0 + step * o2]
                        for o2 in range(hi2, O2):
                            col[doff + o2] = 0
                    else:
                        for o2 in range(O2):
                            m2 = idx2[o2, t2]
                            col[doff + o2] = X[soff + m2] if m2 >= 0 else 0

else:  # pragma: no cover
    col2im_kernel = im2col_kernel = None
