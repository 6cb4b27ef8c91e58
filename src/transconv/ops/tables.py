"""Index tables for the compiled kernels, read off the connectivity (the one source of truth).

Every operation here is a sum over triples ``(z, t, m)`` per spatial axis: output
position ``z`` receives tap ``t`` applied to input position ``m``.  For a convolution
``m = tap_index[z, t]``; for a transposed convolution the same ``tap_index`` of the
convolution on the large grid is read backwards (``z = tap_index[m, t]``), so padding
modes other than zeros fold border contributions exactly as the reference does.

Because the geometry is separable, the tables are per axis, and every problem is
brought to three spatial axes (leading singleton axes for 1-d and 2-d):

* outer axes (0 and 1): for each output position a short list of ``(t, m)`` pairs;
* the last axis: *runs* ``out[zs + zst*q] += ... in[ms + mst*q]`` for ``q < length``,
  with one tap each, so the innermost loop is a plain strided loop the compiler can
  vectorise (stride 1 on the input side for transposed convolutions, on the output
  side for convolutions).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

import numpy as np

from ..connectivity import tap_index
from ..spec import ConvSpec

__all__ = ["AxisTriples", "axis_triples", "OuterTable", "outer_table", "Runs", "runs", "canonical3"]


@dataclass(frozen=True)
class AxisTriples:
    """All ``(z, t, m)`` of one axis, ``out_len`` outputs, ``in_len`` inputs, ``taps`` taps."""

    z: np.ndarray
    t: np.ndarray
    m: np.ndarray
    out_len: int
    in_len: int
    taps: int


@lru_cache(maxsize=256)
def axis_triples(transposed: bool, n_in: int, k: int, s: int, lo: int, hi: int, d: int, mode: str, out_pad: int) -> AxisTriples:
    """The triples of one axis of a (transposed) convolution with ``n_in`` inputs."""
    if transposed:
        big = (n_in - 1) * s - lo - hi + d * (k - 1) + 1 + out_pad
        maps = tap_index(big, k, s, lo, hi, d, mode)[:n_in]  # (n_in, k): m -> z
        m, t = np.nonzero(maps >= 0)
        z = maps[m, t]
        out_len = big
    else:
        maps = tap_index(n_in, k, s, lo, hi, d, mode)  # (out, k): z -> m
        z, t = np.nonzero(maps >= 0)
        m = maps[z, t]
        out_len = maps.shape[0]
    return AxisTriples(z.astype(np.int64), t.astype(np.int64), m.astype(np.int64), int(out_len), int(n_in), int(k))


def _freeze(*arrays):
    for a in arrays:
        a.setflags(write=False)
    return arrays


@dataclass(frozen=True)
class OuterTable:
    """Per processed output position ``zs[i]``: ``cnt[i]`` pairs ``(tt[i, j], mm[i, j])``."""

    zs: np.ndarray
    cnt: np.ndarray
    tt: np.ndarray
    mm: np.ndarray


def outer_table(tr: AxisTriples, taps: Optional[tuple[int, ...]] = None, zs: Optional[np.ndarray] = None) -> OuterTable:
    """Outer-axis table; ``taps`` restricts (and renumbers locally) the taps, ``zs`` the outputs."""
    z, t, m = tr.z, tr.t, tr.m
    if taps is not None:
        local = np.full(tr.taps, -1, dtype=np.int64)
        local[list(taps)] = np.arange(len(taps))
        keep = local[t] >= 0
        z, t, m = z[keep], local[t[keep]], m[keep]
    if zs is None:
        zs = np.arange(tr.out_len, dtype=np.int64)
    zs = np.asarray(zs, dtype=np.int64)
    row_of = np.full(tr.out_len, -1, dtype=np.int64)
    row_of[zs] = np.arange(len(zs))
    rows = row_of[z]
    keep = rows >= 0
    rows, t, m = rows[keep], t[keep], m[keep]
    cnt = np.bincount(rows, minlength=len(zs)).astype(np.int64)
    width = max(int(cnt.max(initial=0)), 1)
    order = np.argsort(rows, kind="stable")
    rows, t, m = rows[order], t[order], m[order]
    start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    slot = np.arange(len(rows)) - start[rows]
    tt = np.zeros((len(zs), width), dtype=np.int64)
    mm = np.zeros((len(zs), width), dtype=np.int64)
    tt[rows, slot] = t
    mm[rows, slot] = m
    return OuterTable(*_freeze(zs, cnt, tt, mm))


@dataclass(frozen=True)
class Runs:
    """Last-axis runs: ``(t, zs, zst, ms, mst, length)`` per run, as one int64 array ``(R, 6)``."""

    table: np.ndarray


def runs(tr: AxisTriples, taps: Optional[tuple[int, ...]] = None) -> Runs:
    """Split the triples into maximal arithmetic runs per tap (sorted by input position)."""
    z, t, m = tr.z, tr.t, tr.m
    if taps is not None:
        local = np.full(tr.taps, -1, dtype=np.int64)
        local[list(taps)] = np.arange(len(taps))
        keep = local[t] >= 0
        z, t, m = z[keep], local[t[keep]], m[keep]
    order = np.lexsort((m, t))
    z, t, m = z[order], t[order], m[order]
    out = []
    i, n = 0, len(z)
    while i < n:
        j = i + 1
        if j < n and t[j] == t[i]:
            dz, dm = z[j] - z[i], m[j] - m[i]
            while j < n and t[j] == t[i] and z[j] - z[j - 1] == dz and m[j] - m[j - 1] == dm:
                j += 1
        else:
            dz, dm = 0, 0
        if j - i == 1:
            dz, dm = 0, 0
        out.append((t[i], z[i], dz, m[i], dm, j - i))
        i = j
    table = np.array(out, dtype=np.int64).reshape(-1, 6)
    table.setflags(write=False)
    return Runs(table)


def canonical3(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Spatial shape brought to three axes (leading singletons); more than 3 axes merge nothing."""
    if len(shape) > 3:
        raise ValueError("at most 3 spatial axes")
    return (1,) * (3 - len(shape)) + tuple(int(v) for v in shape)


def unit_triples() -> AxisTriples:
    one = np.zeros(1, dtype=np.int64)
    return AxisTriples(one, one, one, 1, 1, 1)


def spec_triples(spec: ConvSpec, transposed: bool, in_spatial: tuple[int, ...]) -> list[AxisTriples]:
    """Triples of every axis, padded to three axes with unit axes in front."""
    trs = [
        axis_triples(transposed, int(n), k, s, lo, hi, d, spec.padding_mode, a)
        for n, k, s, (lo, hi), d, a in zip(
            in_spatial, spec.kernel_size, spec.stride, spec.padding, spec.dilation, spec.output_padding
        )
    ]
    return [unit_triples()] * (3 - len(trs)) + trs
