"""Weight gradient of a convolution: the correlation of its input with ``grad_out``.

For a convolution ``y = conv(x, w)`` with spec ``(stride s, dilation d, padding)``::

    dW[o, i, t] = sum_{n, p} g[n, o, p] * xpad[n, i, p * s + t * d]

where ``xpad`` is the input padded exactly as the convolution pads it (``pad``, every
padding mode).  A transposed convolution ``y = conv_transpose(x, w)`` is the adjoint of
the convolution from its (large) output grid to its (small) input grid with the same
weight, so ``<g, C^T x> = <C g, x>`` and its weight gradient is the same formula with
the roles swapped: input = ``grad_out`` (large grid), "gradient" = ``x`` (small grid).
One implementation serves both.

Methods
-------
``"reference"``  the formula read off the connectivity (``tap_index``), tap by tap.
``"gemm"``       im2col through the convolution's gather (``compiled.ColumnGather``) into a
                 column buffer per block of samples and output rows (about the size of
                 the smaller array, at least 2 MB), one GEMM per block with its samples
                 and positions folded into the contraction, on every core; channels-last
                 on small grids, as ``gemm_conv``.
``"shift"``      one GEMM per tap against a shifted view of the input flattened over
                 (batch, padded grid); ``grad_out`` spread on the same grid; no column buffer.
``"phase"``      compiled: :func:`transconv.ops.phase.conv_phase`'s shifted runs of the
                 input's stride phases read backwards, a dot product per (output
                 channel, input channel, tap); no column buffer (few channels).
``"swap"``       batch <-> channel swap: ``dW`` is ``conv`` of ``xpad`` read as
                 ``(C_in, N, *spatial)`` with ``g`` read as the kernel ``(C_out, N, *p)``,
                 stride and dilation exchanged (one ``tc.conv`` call per group).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np

from ..connectivity import axis_tap_indices
from ..errors import TransconvError
from ..spec import ConvSpec, checked_int, per_axis_items, as_numeric, compute_dtypes, validate_call
from . import compiled, phase
from .direct import pad

__all__ = ["conv_weight_grad", "WEIGHT_GRAD_METHODS", "choose_weight_grad_method"]

WEIGHT_GRAD_METHODS = ("reference", "gemm", "shift", "swap", "phase")

_COLUMN_BYTES = 64 * 2**20  # cap of the im2col buffer per block
_COLUMN_FLOOR = 2 * 2**20  # the buffer may always be this large: smaller blocks cost more in GEMM calls than they save


def _weight_grad_reference(x: np.ndarray, g: np.ndarray, spec: ConvSpec, weight_shape: tuple[int, ...]) -> np.ndarray:
    """The formula, tap by tap, gathering the unpadded input through the connectivity (``-1`` reads a zero)."""
    groups = spec.groups
    n, c_in = x.shape[:2]
    c_out = g.shape[1]
    # a transposed layer's output grid may convolve to more positions than its input has: drop them
    maps = [m[:p] for m, p in zip(axis_tap_indices(spec, x.shape[2:]), g.shape[2:])]
    xg = x.reshape(n, groups, c_in // groups, *x.shape[2:])
    gg = g.reshape(n, groups, c_out // groups, *g.shape[2:])
    dw = np.zeros((groups, c_out // groups, c_in // groups) + spec.kernel_size, dtype=g.dtype)
    for tap in itertools.product(*(range(k) for k in spec.kernel_size)):
        columns = [m[:, t] for m, t in zip(maps, tap)]
        grid = np.ix_(*columns)
        valid = np.ones((), dtype=bool)
        for index in grid:
            valid = valid & (index >= 0)
        window = xg[(slice(None), slice(None), slice(None)) + grid] * valid  # (N, G, Ci/G, *p)
        dw[(Ellipsis,) + tap] = np.einsum("ngop,ngip->goi", gg.reshape(gg.shape[:3] + (-1,)), window.reshape(window.shape[:3] + (-1,)))
    return dw.reshape(weight_shape)


def _weight_grad_gemm(x: np.ndarray, g: np.ndarray, spec: ConvSpec, weight_shape: tuple[int, ...]) -> np.ndarray:
    """im2col through the convolution's own gather (``compiled.ColumnGather``, the one ``gemm``
    uses for ``conv``) in blocks of samples and output rows, then one GEMM per block and group
    with the block's samples and positions folded into the contraction.  The column buffers
    together hold about the size of the smaller of ``x`` and ``g`` (at least 2 MB); zero
    padding is the gather's margins, not a padded copy.  The cores take shares of the samples
    (or of the output rows) through ``compiled._split``, each with single-threaded BLAS and its
    own partial ``dW``.  Without numba: ``"shift"``."""
    if compiled.NUMBA_ERROR or x.dtype not in (np.float32, np.float64):
        return _weight_grad_shift(pad(x, spec), g, spec, weight_shape)
    return _gathered_weight_grad(x, g, spec).reshape(weight_shape)


@compiled.zero_padded(transposed=False)  # g in the weight's place: other padding modes pad x first
def _gathered_weight_grad(x: np.ndarray, g: np.ndarray, spec: ConvSpec) -> np.ndarray:
    groups = spec.groups
    n, c_in = x.shape[:2]
    c_out = g.shape[1]
    cig, cog = c_in // groups, c_out // groups
    taps = int(np.prod(spec.kernel_size))
    small = spec.conv_output_shape(x.shape[2:])
    if tuple(g.shape[2:]) != small:  # a transposed layer's grid convolves to more positions than its input has
        grown = np.zeros(g.shape[:2] + small, dtype=g.dtype)
        grown[(slice(None), slice(None)) + tuple(slice(0, e) for e in g.shape[2:])] = g
        g = grown
    gather = compiled.column_gather(spec, x.shape[2:])
    width, rows = gather.plan.small_width, gather.plan.small_rows
    xf, gf = x.reshape(n, c_in, -1), g.reshape(n, c_out, -1)
    macs, data_bytes = n * rows * width * taps * cig * cog * groups, x.nbytes + g.nbytes
    workers = compiled.thread_count() if compiled.splits(macs, data_bytes) else 1
    budget = min(_COLUMN_BYTES, max(min(g.nbytes, x.nbytes), _COLUMN_FLOOR)) // workers
    if gather.channels_last(cig, c_out * cig * taps * x.itemsize):
        return _channels_last_weight_grad(xf, gf, gather, budget, macs, data_bytes)
    # one output row of a sample: one group's columns and its copy of the gradient
    row_bytes = (cig * taps + cog) * width * x.itemsize
    rb = int(max(1, min(rows, budget // row_bytes)))
    nb = int(max(1, min(-(-n // workers), budget // (row_bytes * rows)))) if rb == rows else 1
    wide = cog >= cig * taps  # OpenBLAS runs a long thin product several times faster with the longer side as the rows

    def add(dw: np.ndarray, n0: int, n1: int, r_lo: int, r_hi: int, serial: bool) -> None:
        for gi, start, m, r0, r1, c in gather.blocks(xf, groups, cig, (n0, n1), nb, (r_lo, r_hi), rb, serial):
            g_rows = gf[start:start + m, gi * cog:(gi + 1) * cog, r0 * width:r1 * width]
            g_rows = g_rows[0] if m == 1 else np.ascontiguousarray(g_rows.transpose(1, 0, 2)).reshape(cog, -1)
            dw[gi] += g_rows @ c.T if wide else (c @ g_rows.T).T

    return _summed_over_split(n, rows, macs, data_bytes, (groups, cog, cig * taps), g.dtype, add)


def _channels_last_weight_grad(xf: np.ndarray, gf: np.ndarray, gather: compiled.ColumnGather, budget: int,
                               macs: int, data_bytes: int) -> np.ndarray:
    """``_gathered_weight_grad`` on the columns transposed (``ColumnGather.channels_last_blocks``):
    ``dW[(t, ci), co] += cols.T @ g`` with each block of ``g`` copied channels-last."""
    n, c_in, positions = gf.shape[0], xf.shape[1], gf.shape[2]
    groups, taps = gather.spec.groups, gather.taps
    cig, cog = c_in // groups, gf.shape[1] // groups
    rows = max(1, budget // ((cig * taps + cog) * xf.itemsize))  # an output position's columns and gradient

    def add(dw: np.ndarray, n0: int, n1: int, p_lo: int, p_hi: int, serial: bool) -> None:
        for gi, start, m, q0, q1, c in gather.channels_last_blocks(xf, groups, cig, (n0, n1), (p_lo, p_hi), rows, serial):
            g_rows = gf[start:start + m, gi * cog:(gi + 1) * cog, q0:q1]
            dw[gi] += c.T @ np.ascontiguousarray(g_rows.transpose(0, 2, 1)).reshape(-1, cog)

    dw = _summed_over_split(n, positions, macs, data_bytes, (groups, taps * cig, cog), gf.dtype, add)
    return np.ascontiguousarray(dw.reshape(groups, taps, cig, cog).transpose(0, 3, 2, 1)).reshape(groups, cog, -1)


def _summed_over_split(n: int, units: int, macs: int, data_bytes: int, shape: tuple[int, ...], dtype: np.dtype,
                       add) -> np.ndarray:
    """``add(partial, n0, n1, u0, u1, serial)`` over ``compiled._split``'s ranges, each core
    into its own zeroed partial of ``shape``; the partials summed."""
    partials = []

    def work(n0: int, n1: int, u0: int, u1: int, serial: bool) -> None:
        partial = np.zeros(shape, dtype=dtype)
        add(partial, n0, n1, u0, u1, serial)
        partials.append(partial)  # list.append is atomic

    compiled._split(n, units, work, macs, data_bytes)
    return sum(partials[1:], partials[0])


def _weight_grad_shift(xpad: np.ndarray, g: np.ndarray, spec: ConvSpec, weight_shape: tuple[int, ...]) -> np.ndarray:
    """One GEMM per tap against a shifted view of the flattened input, no column buffer.

    With the batch laid out along the flat padded grid, ``(C, N * prod(padded))``, tap ``t``
    reads the input shifted by ``offset_t`` flat positions.  ``grad_out`` is spread on the same
    grid (zeros elsewhere); since ``p + t * d`` stays inside one sample's padded grid, the
    zeros keep samples apart and ``dW_t = G @ X[:, offset_t:]^T`` over the whole batch.
    ``grad_out`` sits ``stride`` apart on that grid, so a stride ``s`` costs ``prod(s)`` times the work.
    """
    groups = spec.groups
    n, c_in = xpad.shape[:2]
    c_out = g.shape[1]
    cig, cog = c_in // groups, c_out // groups
    padded = xpad.shape[2:]
    flat_strides = [int(np.prod(padded[a + 1 :])) for a in range(len(padded))]
    x_rows = np.ascontiguousarray(np.swapaxes(xpad, 0, 1)).reshape(c_in, -1)  # (C_in, N * prod(padded))
    g_grid = np.zeros((c_out, n) + tuple(padded), dtype=g.dtype)
    spread = tuple(slice(0, (o - 1) * st + 1, st) for o, st in zip(g.shape[2:], spec.stride))
    g_grid[(slice(None), slice(None)) + spread] = np.swapaxes(g, 0, 1)
    g_rows = g_grid.reshape(c_out, -1)
    total = g_rows.shape[1]
    dw = np.empty((groups, cog, cig) + spec.kernel_size, dtype=g.dtype)
    for tap in itertools.product(*(range(k) for k in spec.kernel_size)):
        offset = sum(t * d * f for t, d, f in zip(tap, spec.dilation, flat_strides))
        for k in range(groups):
            a = g_rows[k * cog : (k + 1) * cog, : total - offset]
            b = x_rows[k * cig : (k + 1) * cig, offset:]
            # OpenBLAS runs a long thin product several times faster with the longer side as the rows
            dw[(k, slice(None), slice(None)) + tap] = a @ b.T if cog >= cig else (b @ a.T).T
    return dw.reshape(weight_shape)


def _weight_grad_swap(xpad: np.ndarray, g: np.ndarray, spec: ConvSpec, weight_shape: tuple[int, ...]) -> np.ndarray:
    """``dW`` as a convolution: batch and channel axes swapped, stride and dilation exchanged."""
    from .dispatch import conv  # the public operator; imported here to keep import order one-way

    groups = spec.groups
    c_in, c_out = xpad.shape[1], g.shape[1]
    cig, cog = c_in // groups, c_out // groups
    parts = []
    for k in range(groups):
        xt = np.swapaxes(xpad[:, k * cig : (k + 1) * cig], 0, 1)  # (Ci/G, N, *spatial): batch Ci/G, channels N
        gt = np.swapaxes(g[:, k * cog : (k + 1) * cog], 0, 1)  # (Co/G, N, *p): the kernel
        full = conv(xt, gt, None, stride=spec.dilation, dilation=spec.stride)  # (Ci/G, Co/G, >= k)
        crop = (slice(None), slice(None)) + tuple(slice(0, k_) for k_ in spec.kernel_size)
        parts.append(np.swapaxes(full[crop], 0, 1))
    return np.concatenate(parts, axis=0).reshape(weight_shape)


def _weight_grad_phase(x: np.ndarray, g: np.ndarray, spec: ConvSpec, weight_shape: tuple[int, ...]) -> np.ndarray:
    """Compiled: the shifted runs of :func:`transconv.ops.phase.conv_phase` read backwards
    (a dot product per output channel and (input channel, tap) over the flat phase grid).
    ``x`` is unpadded: zero padding is part of the phases' copy, other modes pad first."""
    if x.dtype not in (np.float32, np.float64) or compiled.NUMBA_ERROR:
        return _weight_grad_gemm(x, g, spec, weight_shape)
    return phase.weight_grad_phase(x, g, spec).reshape(weight_shape)


_IMPLEMENTATIONS = {"reference": _weight_grad_reference, "gemm": _weight_grad_gemm, "shift": _weight_grad_shift,
                    "swap": _weight_grad_swap, "phase": _weight_grad_phase}


# (input, output) channel pairs per group up to which "phase" wins (fitted on the sweep, docs/performance.md)
_PHASE_CHANNEL_PAIRS = 512


def choose_weight_grad_method(weight_shape: Sequence[int], out_shape: Sequence[int], spec: ConvSpec,
                              in_shape: Sequence[int] | None = None, itemsize: int = 4) -> str:
    """The method ``"auto"`` starts from: ``"phase"`` for few channels per group (depthwise and
    the like, where a column buffer is mostly copies of a thin input and its GEMM is thin)
    unless the convolution's input grid ``in_shape`` is given and small enough for ``gemm`` to
    gather channels-last (``compiled.ColumnGather.channels_last``, weights of ``itemsize``
    bytes), else ``"gemm"``.  With :func:`transconv.set_autotune` on, ``auto`` then measures it
    against ``gemm``, ``phase`` and ``swap`` on the gradient's first calls and keeps the
    fastest; ``"shift"`` is there to ask for by name and to cross-check.

    >>> from transconv.spec import conv_spec
    >>> choose_weight_grad_method((64, 32, 3, 3), (6, 6), conv_spec("conv", (8, 8), 3))
    'gemm'
    >>> choose_weight_grad_method((8, 1, 3, 3), (6, 6), conv_spec("conv", (8, 8), 3, groups=8))
    'phase'
    >>> choose_weight_grad_method((8, 12, 3, 3), (6, 6), conv_spec("conv", (8, 8), 3), in_shape=(8, 8))
    'gemm'
    """
    if compiled.NUMBA_ERROR:
        return "gemm"
    if in_shape is not None and compiled.gathers_channels_last(spec, tuple(in_shape), weight_shape[1],
                                                               itemsize * math.prod(weight_shape)):
        return "gemm"
    pairs = weight_shape[0] // spec.groups * weight_shape[1]
    return "phase" if pairs <= _PHASE_CHANNEL_PAIRS else "gemm"


def conv_weight_grad(
    x: Any,
    grad_out: Any,
    weight_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    transposed: bool = False,
    output_padding: Any = 0,
    method: str = "auto",
) -> np.ndarray:
    """Gradient of a convolution's (or transposed convolution's) loss with respect to its weight.

    Parameters
    ----------
    x : array_like
        The layer's input, ``(N, C_in, *spatial)`` (for ``transposed=True``, the
        transposed convolution's small input).
    grad_out : array_like
        Gradient of the loss with respect to the layer's output, ``(N, C_out, *out)``.
    weight_shape : sequence of int
        ``(C_out, C_in/groups, *k)`` for a convolution, ``(C_in, C_out/groups, *k)`` for a
        transposed one (PyTorch's layouts).
    stride, padding, dilation, groups, padding_mode, output_padding
        The layer's geometry, exactly as given to :func:`transconv.conv` /
        :func:`transconv.conv_transpose`.
    transposed : bool
        The layer is a transposed convolution.
    method : {"auto", "reference", "gemm", "shift", "swap", "phase"}
        See the module docstring; ``"auto"`` uses :func:`choose_weight_grad_method`.

    Returns
    -------
    numpy.ndarray
        ``weight_shape``, in the dtype of the inputs (float64 for integers).

    Notes
    -----
    For a convolution, ``dW[o, i, t] = sum_{n, p} g[n, o, p] * xpad[n, i, p*s + t*d]``.
    For a transposed convolution the same with ``xpad = pad(grad_out)`` and ``g = x``.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> g = np.ones((1, 1, 2, 2))
    >>> tc.conv_weight_grad(x, g, (1, 1, 3, 3))[0, 0]
    array([[10., 14., 18.],
           [26., 30., 34.],
           [42., 46., 50.]])
    """
    op = "conv_weight_grad"
    x = as_numeric(op, "x", x)
    g = as_numeric(op, "grad_out", grad_out)
    items = per_axis_items(op, "weight_shape", weight_shape)
    if items is None or len(items) < 3:
        raise TransconvError(f"{op}: weight_shape must be (C_a, C_b, *kernel) with entries >= 1, got {weight_shape!r}")
    weight_shape = tuple(checked_int(op, f"weight_shape[{a}]", v, 1) for a, v in enumerate(items))
    ndim = len(weight_shape) - 2
    if x.ndim != ndim + 2 or g.ndim != ndim + 2:
        raise TransconvError(
            f"{op}: x and grad_out must be batched (N, C, *spatial) with {ndim} spatial axes for weight_shape "
            f"{weight_shape}, got x {x.shape} and grad_out {g.shape}"
        )
    if x.shape[0] != g.shape[0]:
        raise TransconvError(f"{op}: x and grad_out must have the same batch size, got {x.shape[0]} and {g.shape[0]}")
    layout = validate_call(op, transposed, x.shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
                           groups=groups, padding_mode=padding_mode, output_padding=output_padding if transposed else 0,
                           plain=False)
    spec = layout.spec
    if g.shape != layout.output_shape:
        raise TransconvError(
            f"{op}: grad_out must have shape {layout.output_shape} for x {x.shape} and this geometry, got {g.shape}"
        )
    _, dtype = compute_dtypes(x.dtype, g.dtype)
    x = np.ascontiguousarray(x, dtype=dtype)
    g = np.ascontiguousarray(g, dtype=dtype)
    if transposed:  # the transposed layer is the adjoint of the conv from its output grid: swap roles
        x, g = g, x
    conv_shape = weight_shape
    trials = None
    if method == "auto":
        method = choose_weight_grad_method(conv_shape, g.shape[2:], spec, x.shape[2:], x.itemsize)
        trials = _trials(method, conv_shape, x, g, spec)
    if method not in _IMPLEMENTATIONS:
        raise TransconvError(f"{op}: method must be 'auto' or one of {WEIGHT_GRAD_METHODS}, got {method!r}")
    if x.shape[0] == 0:
        return np.zeros(weight_shape, dtype=dtype)
    if trials is not None:
        return trials.call(lambda name: _run(name, x, g, spec, conv_shape), method)
    return _run(method, x, g, spec, conv_shape)


def _run(method: str, x: np.ndarray, g: np.ndarray, spec: ConvSpec, conv_shape: tuple[int, ...]) -> np.ndarray:
    if method == "reference":
        return _weight_grad_reference(x, g, spec, conv_shape)
    if method in ("gemm", "phase"):  # they pad as they go
        return _IMPLEMENTATIONS[method](x, g, spec, conv_shape)
    return _IMPLEMENTATIONS[method](pad(x, spec), g, spec, conv_shape)


_TUNE_ABOVE = 200_000  # multiply-adds under which auto trusts its rule (timer noise, dispatch overhead)


def _trials(pick: str, conv_shape: tuple[int, ...], x: np.ndarray, g: np.ndarray, spec: ConvSpec):
    """``auto``'s measurement of the weight gradient's methods on its first calls
    (:class:`transconv.ops.dispatch.Trials`): the rule's pick, ``gemm``, ``phase`` and ``swap``;
    ``phase`` only while its per-sample partial weights fit the column buffer's cap."""
    from .dispatch import trials_for  # imported here to keep import order one-way

    if compiled.NUMBA_ERROR or x.dtype not in (np.float32, np.float64):
        return None
    n = x.shape[0]
    if n * math.prod(g.shape[2:]) * math.prod(conv_shape) < _TUNE_ABOVE:
        return None

    def candidates() -> list[str]:
        phase_fits = n * math.prod(conv_shape) * x.itemsize <= _COLUMN_BYTES
        return [pick] + [m for m in ("gemm", "phase", "swap") if m != pick and (m != "phase" or phase_fits)]

    return trials_for(("conv_weight_grad", conv_shape, x.shape, g.shape, spec, x.dtype), candidates)
