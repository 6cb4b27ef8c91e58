"""The ``phase`` method: sub-pixel decomposition of the transposed convolution.

Output position ``o`` on an axis with stride ``s`` is reached only by the taps ``t`` with
``t * dilation - pad_lo = o (mod s)``: the output splits into ``prod(s)`` phases
(``o = s * J + rho``), and each phase is an ordinary stride-1 convolution of the input
with its exact sub-kernel, the taps of that residue.  No multiplication by inserted
zeros happens anywhere:

    for every phase rho:
        cols[(ci, t), (n, J)] = y[n, ci, i(t, J)]            (i = (s*J + rho + pad - t*d) / s)
        out[n, co, s*J + rho] = W_rho.reshape(C_out, C_in * T_rho) @ cols

The input positions ``i(t, J)`` are the transposed connectivity read backwards (for
each tap, the input whose target is ``s*J + rho``: the connectivity's inverse), gathered by
the compiled row gather of :mod:`transconv.ops.compiled`; each phase's GEMM result is written straight
into its interleaved output positions.  ``"gemm"`` does the same sum the other way round
(one GEMM over all taps, then the phases are accumulated per output row), which moves
less data when C_in > C_out and is what ``auto`` picks; this method is kept for
comparison (``transconv bench --method phase``) and as an independent implementation
the tests check against the reference.

The convolution's phase decomposition is the polyphase sum ``y = sum_rho W_rho @
gather_rho(x)``, which is exactly the single GEMM over all taps of ``"gemm"``; the
method's ``conv`` is that.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from ..connectivity import InverseCSR, axis_inverse_csr
from ..spec import ConvSpec
from . import compiled

__all__ = ["conv_transpose_phase", "conv_phase", "phase_plans"]


def _axis_phases(inverse: InverseCSR, stride: int, big: int):
    """Per residue ``rho`` of one axis, from the connectivity's inverse (the (input, tap)
    pairs reaching each output): (taps reaching the phase, table ``(J, taps)`` -> input or -1)."""
    owner = np.repeat(np.arange(big), np.diff(inverse.indptr))  # the output each pair reaches
    phases = []
    for rho in range(min(stride, big)):
        sel = owner % stride == rho
        mine = sorted(set(inverse.tap_index[sel].tolist()))
        column = np.searchsorted(mine, inverse.tap_index[sel])
        table = np.full((len(range(rho, big, stride)), len(mine)), -1, dtype=np.int64)
        table[(owner[sel] - rho) // stride, column] = inverse.small_index[sel]
        phases.append((rho, mine, table))
    return phases


@lru_cache(maxsize=16)
def phase_plans(spec: ConvSpec, small: tuple[int, ...]):
    """``[(rho, flat taps, RowPlan of the gather)]`` for every output phase some tap reaches."""
    big = spec.transpose_output_shape(small)
    per_axis = [_axis_phases(inv, s, b) for inv, s, b in zip(axis_inverse_csr(spec, small), spec.stride, big)]
    plans = []
    for combo in itertools.product(*per_axis):
        if any(not taps for _, taps, _ in combo):
            continue  # positions no tap reaches stay zero
        rho = tuple(r for r, _, _ in combo)
        flat = np.ravel_multi_index(np.meshgrid(*[taps for _, taps, _ in combo], indexing="ij"),
                                    spec.kernel_size).reshape(-1)
        plan = compiled.row_plan(tuple(inv for _, _, inv in combo), tuple(small), 1)
        plans.append((rho, flat, plan))
    return plans


@compiled.zero_padded(transposed=True)
def conv_transpose_phase(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    small = y.shape[2:]
    n, c_in = y.shape[:2]
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[1]
    big = spec.transpose_output_shape(small)
    out = np.zeros((n, co_g * g) + big, dtype=y.dtype)
    yf = y.reshape(n, c_in, -1)
    wg = w.reshape((g, ci_g, co_g, -1))
    for rho, flat, plan in phase_plans(spec, tuple(small)):
        J = tuple(len(range(r, b, s)) for r, b, s in zip(rho, big, spec.stride))
        positions = int(np.prod(J))
        taps = len(flat)
        # samples per block: the gathered columns stay under the output's size (at least one sample)
        nb = int(max(1, min(n, out.nbytes // max(1, ci_g * taps * positions * y.itemsize))))
        # flat, so that a block's columns are always one contiguous prefix (the compiled
        # gather writes it through a flat view), the last, shorter block included
        cols = np.empty(ci_g * taps * nb * positions, dtype=y.dtype)
        where = (slice(None), slice(None)) + tuple(slice(r, None, s) for r, s in zip(rho, spec.stride))
        for gi in range(g):
            # the phase's sub-kernel as (C_out/g, C_in/g * T_rho): a copy of its taps
            w_rho = np.ascontiguousarray(wg[gi][:, :, flat].transpose(1, 0, 2)).reshape(co_g, ci_g * taps)
            for n0 in range(0, n, nb):
                m = min(nb, n - n0)
                c = cols[:ci_g * taps * m * positions].reshape(ci_g * taps, m * positions)
                compiled.gather_rows(yf, c, gi * ci_g, ci_g, n0, m, 0, plan.small_rows, plan,
                                     serial=compiled.SERIAL_ONLY)
                target = out[n0:n0 + m, gi * co_g:(gi + 1) * co_g][where]  # the phase's interleaved positions
                if positions >= 256:  # a GEMM per sample: its result is the target's layout
                    for k in range(m):
                        target[k] = (w_rho @ c[:, k * positions:(k + 1) * positions]).reshape((co_g,) + J)
                else:
                    target[...] = np.moveaxis((w_rho @ c).reshape((co_g, m) + J), 0, 1)
    return out


def conv_phase(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """The polyphase sum over all taps: one GEMM, as ``"gemm"`` computes it."""
    return compiled.gemm_conv(x, w, spec)
