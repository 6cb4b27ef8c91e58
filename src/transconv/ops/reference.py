"""Reference operators: the definition, read straight off the connectivity.

Slow and obviously right.  For every kernel tap, the convolution *gathers* the input
values that ``tap_index`` names (a ``-1`` reads a zero) and contracts channels; the
transposed convolution runs the same loop backwards and *scatters* (``np.add.at``) into
the same positions.  That is the whole adjoint relationship:

    conv:            y[n, g, co, o] += w[g, co, ci, t] * x[n, g, ci, idx[o, t]]
    conv_transpose:  x[n, g, ci, idx[o, t]] += w[g, co, ci, t] * y[n, g, co, o]

Arrays arrive batched, ``(N, C, *spatial)``, in the compute dtype, without bias.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..connectivity import axis_tap_indices, transpose_axis_tap_indices
from ..spec import ConvSpec

__all__ = ["conv_reference", "conv_transpose_reference"]


def _grouped_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """``(C_a, C_b, *k)`` -> ``(G, C_a/G, C_b, *k)``."""
    return w.reshape(groups, w.shape[0] // groups, *w.shape[1:])


def _tap_grid(maps: tuple[np.ndarray, ...], tap: tuple[int, ...]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Open-mesh indices of one tap over the output grid, and where they read real inputs."""
    columns = [m[:, t] for m, t in zip(maps, tap)]
    grid = np.ix_(*columns)
    valid = np.ones((), dtype=bool)
    for g in grid:
        valid = valid & (g >= 0)
    return grid, valid


def conv_reference(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Convolution by gathering along the connectivity, one tap at a time."""
    n, c_in = x.shape[:2]
    groups = spec.groups
    maps = axis_tap_indices(spec, x.shape[2:])
    out_shape = tuple(m.shape[0] for m in maps)
    wg = _grouped_weight(w, groups)  # (G, Co/G, Ci/G, *k)
    xg = x.reshape(n, groups, c_in // groups, *x.shape[2:])
    y = np.zeros((n, groups, wg.shape[1], *out_shape), dtype=x.dtype)
    for tap in itertools.product(*(range(k) for k in spec.kernel_size)):
        grid, valid = _tap_grid(maps, tap)
        # padding reads a zero (not 0 x the wrapped -1 element, which is NaN for a NaN there)
        gathered = np.where(valid, xg[(slice(None), slice(None), slice(None)) + grid], 0)  # (N, G, Ci/G, *out)
        y += np.einsum("gab,ngb...->nga...", wg[(Ellipsis,) + tap], gathered)
    return y.reshape(n, -1, *out_shape)


def conv_transpose_reference(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Transposed convolution by scattering along the same connectivity (the adjoint of the above)."""
    n, c_in = y.shape[:2]
    groups = spec.groups
    big = spec.transpose_output_shape(y.shape[2:])
    maps = transpose_axis_tap_indices(spec, y.shape[2:])
    wg = _grouped_weight(w, groups)  # (G, Ci_T/G, Co_T/G, *k): the conv weight read backwards
    yg = y.reshape(n, groups, c_in // groups, *y.shape[2:])
    # One spare slot at the end of every axis receives the contributions that the
    # convolution would have read from zero padding; it is cut off at the end.
    x = np.zeros((n, groups, wg.shape[2], *(b + 1 for b in big)), dtype=y.dtype)
    for tap in itertools.product(*(range(k) for k in spec.kernel_size)):
        grid, _ = _tap_grid(maps, tap)
        grid = tuple(np.where(g >= 0, g, b) for g, b in zip(grid, big))
        contribution = np.einsum("gab,nga...->ngb...", wg[(Ellipsis,) + tap], yg)
        np.add.at(x, (slice(None), slice(None), slice(None)) + grid, contribution)
    x = x[(Ellipsis,) + tuple(slice(0, b) for b in big)]
    return np.ascontiguousarray(x.reshape(n, -1, *big))
