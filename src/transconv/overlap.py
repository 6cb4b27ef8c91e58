"""Overlap maps: how many (input, tap) pairs reach each output pixel of a transposed convolution.

A transposed convolution whose kernel size is not a multiple of its stride reaches some
output pixels with more kernel taps than their neighbours: the map is periodic with
period ``stride`` instead of constant, and a network has to learn to cancel the pattern
(the checkerboard artifacts of Odena, Dumoulin & Olah, Distill 2016).  The counts come
from :mod:`transconv.connectivity`, the maps the operators use.

>>> overlap_map((4,), 3, stride=2).tolist()        # kernel 3, stride 2: uneven
[1, 1, 2, 1, 2, 1, 2, 1, 1]
>>> overlap_map((4,), 4, stride=2, padding=1).tolist()   # kernel 4, stride 2: even inside
[1, 2, 2, 2, 2, 2, 2, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .connectivity import axis_inverse_csr
from .errors import TransconvError
from .limits import check_allocation
from .spec import per_axis_items, per_axis, effective_kernel, spatial_shape, validate_call

__all__ = ["overlap_map", "overlap_diagnosis", "OverlapDiagnosis"]

_MAX_PHASES = 10**6  # phase counts overlap_diagnosis lists per axis


def _axis_counts(op, input_shape, kernel_size, stride, padding, output_padding, dilation) -> tuple[list[np.ndarray], Any]:
    # an int input_shape takes its number of axes from a sequence kernel_size (else one axis)
    kernel_items = per_axis_items(op, "kernel_size", kernel_size)
    shape = spatial_shape(op, input_shape, 1 if kernel_items is None else len(kernel_items))
    kernel = per_axis(op, "kernel_size", kernel_size, len(shape), 1)
    lay = validate_call(op, True, None, kernel, input_shape=shape, plain=True, stride=stride, padding=padding,
                        output_padding=output_padding, dilation=dilation)
    spec, out = lay.spec, lay.output_spatial
    padded = sum(spec.padded_shape(out))
    check_allocation(op, "the overlap map", 8 * math.prod(out) + 16 * padded * max(kernel))
    counts = [np.diff(inverse.indptr) for inverse in axis_inverse_csr(spec, shape)]
    return counts, (spec, shape)


def overlap_map(
    input_shape: Any,
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
) -> np.ndarray:
    """Int array over the transposed convolution's output: how many (input, tap) pairs reach each pixel.

    Parameters
    ----------
    input_shape : int or sequence of int
        Spatial shape of the transposed convolution's input.  An int is one axis, unless
        ``kernel_size`` is a tuple, which then fixes the number of axes.
    kernel_size, stride, padding, output_padding, dilation
        As in :func:`transconv.conv_transpose`.

    Returns
    -------
    numpy.ndarray of int64, shape = the transposed convolution's output shape.
        The geometry is separable, so the map is the outer product of one count per axis.
        With a kernel of ones, ``conv_transpose(ones(input_shape), ones(kernel))`` equals it.

    >>> overlap_map((2, 2), (3, 3)).tolist()[1]
    [2, 4, 4, 2]
    """
    counts, _ = _axis_counts("overlap_map", input_shape, kernel_size, stride, padding, output_padding, dilation)
    return _outer(counts)


def _outer(counts: list[np.ndarray]) -> np.ndarray:
    """The map from its per-axis counts (the geometry is separable)."""
    result = counts[0]
    for c in counts[1:]:
        result = np.multiply.outer(result, c)
    return np.asarray(result, dtype=np.int64)


@dataclass(frozen=True)
class OverlapDiagnosis:
    """Whether an overlap map is constant away from the border, and what it cycles through if not.

    ``phase_counts[a]`` lists, for axis ``a``, how many taps reach an interior pixel at each
    of the ``stride`` phases; the interior is uniform exactly when every list is constant.
    ``interior`` is a tuple of slices of the output that only complete kernels reach (it
    can be empty for small inputs; the phase counts do not depend on it).
    """

    uniform: bool
    phase_counts: tuple[tuple[int, ...], ...]
    interior: tuple[slice, ...]
    interior_values: tuple[int, ...]

    def describe(self) -> str:
        phases = "; ".join(
            f"axis {a}: {'/'.join(map(str, c))} taps per pixel by phase" for a, c in enumerate(self.phase_counts)
        )
        if self.uniform:
            return f"uniform interior (checkerboard-free): {phases}"
        return f"uneven interior (checkerboard pattern): {phases}"


def overlap_diagnosis(
    input_shape: Any,
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    dilation: Any = 1,
) -> OverlapDiagnosis:
    """Checkerboard diagnosis of a transposed convolution's geometry.

    >>> overlap_diagnosis((8, 8), 3, stride=2).describe()
    'uneven interior (checkerboard pattern): axis 0: 2/1 taps per pixel by phase; axis 1: 2/1 taps per pixel by phase'
    >>> overlap_diagnosis((8, 8), 4, stride=2, padding=1).uniform
    True
    """
    op = "overlap_diagnosis"
    counts, (spec, shape) = _axis_counts(op, input_shape, kernel_size, stride, padding, output_padding, dilation)
    if max(spec.stride) > _MAX_PHASES:
        raise TransconvError(f"{op}: stride {max(spec.stride)} has as many phases; the diagnosis lists at most "
                             f"{_MAX_PHASES} per axis")
    phases, interior, values = [], [], set()
    full_map = _outer(counts)
    for c, n, k, s, d, (lo, _) in zip(counts, shape, spec.kernel_size, spec.stride, spec.dilation, spec.padding):
        k_eff = effective_kernel(k, d)
        # an uncropped position c_full is reached by every tap it could meet when
        # k_eff - 1 <= c_full <= (n - 1) * s; the count there depends only on c_full mod s
        # taps t reach phase r when t * d = r (mod s): one bincount, not a loop over phases
        phases.append(tuple(int(c) for c in np.bincount((np.arange(k) * d) % s, minlength=s)))
        start, stop = max(k_eff - 1 - lo, 0), min((n - 1) * s - lo + 1, len(c))
        interior.append(slice(start, max(start, stop)))
    inner = full_map[tuple(interior)]
    values.update(int(v) for v in np.unique(inner))
    uniform = all(len(set(p)) == 1 for p in phases)
    return OverlapDiagnosis(uniform, tuple(phases), tuple(interior), tuple(sorted(values)))
