"""The convolution as a matrix: C, C^T, a matrix-free operator, least squares and the spectrum.

A convolution acting on one sample flattened in C order is a sparse matrix ``C`` of
shape ``(C_out * prod(out), C_in * prod(in))``.  Row ``(co, p)`` holds the kernel
``w[co]`` laid over the input positions that output ``p`` reads, which is exactly what
:mod:`transconv.connectivity` lists; the transposed convolution's matrix is ``C.T``.

Building ``C`` is vectorised: the connectivity gives, for every output position, the
valid (tap, input) pairs; one template row block per output channel group is laid out
once and the weights are gathered into it for every output channel, directly in CSR
order (no COO sort).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .connectivity import forward_table
from .errors import TransconvError
from .limits import check_allocation
from .ops.dispatch import plan
from .spec import ConvSpec, as_numeric, checked_int, checked_real, compute_dtypes, integer_or_none, spatial_shape, validate_call

__all__ = [
    "conv_matrix",
    "conv_transpose_matrix",
    "conv_operator",
    "deconvolve",
    "DeconvolveInfo",
    "singular_values",
    "operator_norm",
    "format_matrix",
]


# --------------------------------------------------------------------------------------
# Boundary: weights and shapes.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """A validated layer geometry: weight as (C_a, C_b, *k), spatial input shape and spec."""

    w: np.ndarray
    input_shape: tuple[int, ...]
    spec: ConvSpec
    plain: bool

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.spec.conv_output_shape(self.input_shape)

    @property
    def c_in(self) -> int:
        return self.w.shape[1] * self.spec.groups

    @property
    def c_out(self) -> int:
        return self.w.shape[0]

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of C: outputs and inputs of one sample, channels included."""
        return self.c_out * math.prod(self.output_shape), self.c_in * math.prod(self.input_shape)


def _weight(op: str, w: Any) -> np.ndarray:
    """The weight as a float array scipy.sparse can hold (integer and bool weights as float64, float16 as float32)."""
    w = as_numeric(op, "w", w)
    if w.dtype.kind != "f":
        return w.astype(np.float64)
    return w.astype(np.float32) if w.dtype.itemsize < 4 else w


def _layer(op: str, transposed: bool, w: Any, input_shape: Any, **arguments) -> _Layer:
    """The boundary for the matrix functions: the weight, ``input_shape`` and the geometry,
    validated by :func:`transconv.spec.validate_call`.  A transposed call's layer is the
    convolution it transposes (from that call's output back to ``input_shape``)."""
    w = _weight(op, w)
    lay = validate_call(op, transposed, None, w.shape, input_shape=input_shape, **arguments)
    spatial = lay.output_spatial if transposed else lay.input_spatial
    return _Layer(w.reshape(lay.w_shape), spatial, lay.spec, lay.plain)


def _conv_layer(op, w, input_shape, stride, padding, dilation, groups, padding_mode) -> _Layer:
    return _layer(op, False, w, input_shape, stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=padding_mode)


def _finite_weight(op: str, layer: _Layer) -> None:
    if not np.isfinite(layer.w).all():
        raise TransconvError(f"{op}: w contains NaN or infinity; the singular values of C are undefined")


# --------------------------------------------------------------------------------------
# C and C^T.
# --------------------------------------------------------------------------------------


def _spatial_pairs(spec: ConvSpec, input_shape: tuple[int, ...], dtype=np.int64):
    """For every output position p: the valid taps t and the flat input position they read.

    Returns ``(counts, taps, inputs)``: ``counts[p]`` pairs for output ``p``, then the
    pairs themselves in output-major, tap-minor order (the rows of the forward table).
    """
    table = forward_table(spec, spec.conv_output_shape(input_shape), input_shape)
    valid = table >= 0
    if valid.all():  # no zero padding reached: skip the boolean gathers
        return (np.full(table.shape[0], table.shape[1]), np.tile(np.arange(table.shape[1], dtype=dtype), table.shape[0]),
                table.astype(dtype).ravel())
    tap_ids = np.broadcast_to(np.arange(table.shape[1], dtype=dtype), table.shape)
    return valid.sum(axis=1), tap_ids[valid], table[valid].astype(dtype)


def _build(op: str, layer: _Layer) -> sp.csr_array:
    spec, w = layer.spec, layer.w
    g = spec.groups
    co_g, ci_g = w.shape[0] // g, w.shape[1]
    n_in = math.prod(layer.input_shape)
    n_out = math.prod(layer.output_shape)
    n_taps = math.prod(spec.kernel_size)
    # at most every tap valid: values and column indices, the connectivity's pair tables and
    # its per-axis index of the padded input
    padded = sum(spec.padded_shape(layer.input_shape))
    check_allocation(op, "the sparse matrix", layer.c_out * n_out * ci_g * n_taps * (w.itemsize + 8)
                     + n_out * n_taps * 33 + 16 * padded * max(spec.kernel_size))
    # int32 indices (half the memory, and what scipy prefers) whenever they fit
    largest = max(layer.c_in * n_in, layer.c_out * n_out * ci_g * n_taps)
    index_dtype = np.int32 if largest < 2**31 - 1 else np.int64
    counts, taps, inputs = _spatial_pairs(spec, layer.input_shape, index_dtype)
    # Template for one output channel: row p lists, for each input channel of its group,
    # the valid (tap, input) pairs of p -> ordered (p, ci, t), i.e. increasing columns.
    row_len = counts * ci_g
    template_len = int(row_len.sum())
    channel = np.arange(ci_g, dtype=index_dtype)
    if ci_g == 1:  # the pairs are already in row order
        template_col, template_w = inputs, taps
    else:
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(index_dtype)
        row_of_pair = np.repeat(np.arange(n_out, dtype=index_dtype), counts)
        rank = np.arange(taps.size, dtype=index_dtype) - starts[row_of_pair]  # place of the pair in its row
        row_start = np.concatenate([[0], np.cumsum(row_len)]).astype(index_dtype)
        order = row_start[row_of_pair][:, None] + channel[None, :] * counts[row_of_pair][:, None].astype(index_dtype) + rank[:, None]
        template_col = np.empty(template_len, dtype=index_dtype)
        template_w = np.empty(template_len, dtype=index_dtype)  # index into w[co].reshape(ci_g * taps)
        template_col[order] = channel[None, :] * n_in + inputs[:, None]
        template_w[order] = channel[None, :] * n_taps + taps[:, None]
    group_of = np.arange(layer.c_out, dtype=index_dtype) // co_g
    if layer.c_out == 1:
        indices = template_col
        data = w.reshape(-1)[template_w]
    else:
        indices = (group_of[:, None] * (ci_g * n_in) + template_col[None, :]).ravel()
        data = np.take(w.reshape(layer.c_out, ci_g * n_taps), template_w, axis=1).ravel()
    indptr = np.concatenate([[0], np.cumsum(np.tile(row_len, layer.c_out))]).astype(index_dtype)
    matrix = sp.csr_array((data, indices, indptr), shape=(layer.c_out * n_out, layer.c_in * n_in))
    if spec.padding_mode == "zeros":
        matrix.has_canonical_format = True  # columns increase along every row, no repeats
    else:
        matrix.sum_duplicates()  # taps folded back onto the same input add up
    return matrix


def conv_matrix(
    w: Any,
    input_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
) -> sp.csr_array:
    """The sparse matrix ``C`` of a convolution on one sample: ``C @ x.ravel() == conv(x, w).ravel()``.

    Parameters
    ----------
    w : array_like
        ``(C_out, C_in / groups, *kernel)``, or a plain kernel with ``len(input_shape)`` axes.
    input_shape : sequence of int
        Spatial shape of the input (no batch or channel axes).
    stride, padding, dilation, groups, padding_mode
        As in :func:`transconv.conv`.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(C_out * prod(out), C_in * prod(input_shape))``; rows are outputs and
        columns inputs, both flattened in C order ``(channel, *spatial)``.  With a
        reflect/replicate/circular mode the taps that land in the padding are folded
        onto the inputs they copy and added there.

    Examples
    --------
    The worked example: a 3x3 kernel on a 4x4 input is a 4x16 matrix.

    >>> import numpy as np, transconv as tc
    >>> k = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]])
    >>> C = tc.conv_matrix(k, (4, 4))
    >>> C.shape
    (4, 16)
    >>> C.toarray()[0].astype(int).tolist()
    [1, 4, 1, 0, 1, 4, 3, 0, 3, 3, 1, 0, 0, 0, 0, 0]
    >>> (C.T @ np.array([2, 1, 4, 4])).reshape(4, 4).astype(int).tolist()
    [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]]
    """
    layer = _conv_layer("conv_matrix", w, input_shape, stride, padding, dilation, groups, padding_mode)
    return _build("conv_matrix", layer)


def conv_transpose_matrix(
    w: Any,
    input_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    padding_mode: str = "zeros",
    output_size: Any = None,
) -> sp.csr_array:
    """The sparse matrix of :func:`transconv.conv_transpose` on inputs of spatial shape ``input_shape``.

    It is ``conv_matrix(w, out_shape, ...).T`` where ``out_shape`` is the transposed
    convolution's output shape.  When ``output_padding >= stride`` (allowed if the
    dilation is larger) the convolution on ``out_shape`` has more output positions than
    ``input_shape``; the transposed input feeds only the first ones, so only those rows
    of ``C`` are transposed.

    Parameters
    ----------
    w : array_like
        ``(C_in, C_out / groups, *kernel)`` (PyTorch's transposed layout) or a plain kernel.
    input_shape : sequence of int
        Spatial shape of the transposed convolution's input.
    stride, padding, output_padding, groups, dilation, padding_mode, output_size
        As in :func:`transconv.conv_transpose`.

    Returns
    -------
    scipy.sparse.csr_array
        Shape ``(C_out * prod(out_shape), C_in * prod(input_shape))``.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> k = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]])
    >>> CT = tc.conv_transpose_matrix(k, (2, 2))
    >>> CT.shape
    (16, 4)
    >>> (CT != tc.conv_matrix(k, (4, 4)).T).nnz
    0
    """
    op = "conv_transpose_matrix"
    layer = _layer(op, True, w, input_shape, stride=stride, padding=padding, output_padding=output_padding,
                   groups=groups, dilation=dilation, padding_mode=padding_mode, output_size=output_size)
    shape = spatial_shape(op, input_shape)
    matrix = _build(op, layer)
    fed = layer.output_shape
    if fed != shape:  # output_padding >= stride: keep the rows the transposed input feeds
        keep = np.zeros(fed, dtype=bool)
        keep[tuple(slice(0, n) for n in shape)] = True
        rows = np.flatnonzero(np.broadcast_to(keep, (layer.c_out,) + fed).ravel())
        matrix = matrix[rows]
    return sp.csr_array(matrix.T)


def format_matrix(
    matrix: Any,
    row_shape: Sequence[int],
    col_shape: Sequence[int],
    *,
    row_name: str = "y",
    col_name: str = "x",
    max_size: int = 64,
) -> str:
    """A readable printout of a small matrix with each row and column named by its position.

    ``row_shape`` / ``col_shape`` are the (channel and) spatial shapes the rows and
    columns flatten, e.g. ``(2, 2)`` and ``(4, 4)`` for the worked example's C.

    >>> import transconv as tc
    >>> C = tc.conv_matrix([[1, 4, 1], [1, 4, 3], [3, 3, 1]], (4, 4))
    >>> print(format_matrix(C, (2, 2), (4, 4)).splitlines()[1])
    y[0,0] |  1  4  1  .  1  4  3  .  3  3  1  .  .  .  .  .
    """
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    rows, cols = dense.shape
    if rows != int(np.prod(row_shape)) or cols != int(np.prod(col_shape)):
        raise TransconvError(
            f"format_matrix: matrix of shape {dense.shape} does not match row_shape {tuple(row_shape)} "
            f"({int(np.prod(row_shape))} rows) and col_shape {tuple(col_shape)} ({int(np.prod(col_shape))} columns)"
        )
    if max(rows, cols) > max_size:
        raise TransconvError(
            f"format_matrix: the matrix is {rows}x{cols}; printing is for matrices up to {max_size} "
            f"on a side (pass max_size to print larger ones)"
        )

    def label(name, index):
        return f"{name}[{','.join(map(str, index))}]"

    def number(v):
        if v == 0:
            return "."
        return str(int(v)) if float(v).is_integer() else f"{v:.3g}"

    row_labels = [label(row_name, np.unravel_index(r, row_shape)) for r in range(rows)]
    col_labels = [label(col_name, np.unravel_index(c, col_shape)) for c in range(cols)]
    cells = [[number(v) for v in row] for row in dense]
    width = max([len(c) for row in cells for c in row] + [2])
    lead = max(len(s) for s in row_labels)
    # column header: the flat column number; the legend below names each one
    header = " " * lead + " | " + " ".join(f"{c:>{width}}" for c in range(cols))
    lines = [header]
    for name, row in zip(row_labels, cells):
        lines.append(f"{name:<{lead}} | " + " ".join(f"{c:>{width}}" for c in row))
    lines.append("columns: " + ", ".join(f"{c}={s}" for c, s in enumerate(col_labels)))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Matrix-free operator and least squares.
# --------------------------------------------------------------------------------------


def _operator(op: str, layer: _Layer) -> spla.LinearOperator:
    """The matrix-free operator: every product runs a plan made once per batch size and
    dtype (:func:`transconv.ops.dispatch.plan`), never the public keyword functions."""
    spec, w = layer.spec, layer.w
    in_shape = (layer.c_in,) + layer.input_shape
    out_shape = (layer.c_out,) + layer.output_shape
    spec_t = spec.adjoint_for(layer.input_shape)  # the transposed direction gives back exactly input_shape
    plans: dict = {}

    def apply(transposed: bool, v: np.ndarray) -> np.ndarray:  # (n_in, k) -> (n_out, k), or back
        v = np.asarray(v)
        shape = out_shape if transposed else in_shape
        n = v.shape[1]
        _, compute = compute_dtypes(v.dtype, w.dtype)
        key = (transposed, n, compute)
        if key not in plans:
            x_shape = (n,) + shape
            plans[key] = (plan(op, transposed, spec_t if transposed else spec, x_shape, w.shape, compute),
                          np.ascontiguousarray(w, dtype=compute))
        run, w_c = plans[key]
        x = np.ascontiguousarray(v.T, dtype=compute).reshape((n,) + shape)
        return run(x, w_c).reshape(n, -1).T

    return spla.LinearOperator(
        (math.prod(out_shape), math.prod(in_shape)),
        matvec=lambda v: apply(False, np.reshape(v, (-1, 1)))[:, 0],
        rmatvec=lambda u: apply(True, np.reshape(u, (-1, 1)))[:, 0],
        matmat=lambda v: apply(False, v),
        rmatmat=lambda u: apply(True, u),
        dtype=w.dtype,
    )


def conv_operator(
    w: Any,
    input_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
) -> spla.LinearOperator:
    """``C`` as a matrix-free :class:`scipy.sparse.linalg.LinearOperator`.

    ``matvec`` is :func:`transconv.conv`, ``rmatvec`` is :func:`transconv.conv_transpose`
    (so ``op.H`` is the transposed convolution), and ``matmat`` / ``rmatmat`` run many
    vectors as one batch.  Nothing of size ``C`` is stored, so it serves where the matrix
    would not fit in memory: LSQR/CG, ``svds``, power iteration.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> A = tc.conv_operator([[1, 4, 1], [1, 4, 3], [3, 3, 1]], (4, 4))
    >>> A.shape
    (4, 16)
    >>> x = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]])
    >>> (A @ x.ravel()).tolist()
    [122.0, 148.0, 126.0, 134.0]
    >>> A.H.matvec(np.array([2, 1, 4, 4])).reshape(4, 4)[1].tolist()
    [6.0, 29.0, 30.0, 7.0]
    """
    op = "conv_operator"
    return _operator(op, _conv_layer(op, w, input_shape, stride, padding, dilation, groups, padding_mode))


@dataclass(frozen=True)
class DeconvolveInfo:
    """How a :func:`deconvolve` solve went (one entry per sample when ``y`` is batched)."""

    iterations: Any
    residual_norm: Any  # ||C x - y|| (the data misfit, without the damping term)
    relative_residual: Any  # residual_norm / ||y||
    stop_reason: Any  # LSQR's istop: 1, 2 converged; 3 conditioning limit; 7 iteration limit


def deconvolve(
    y: Any,
    w: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    input_shape: Optional[Sequence[int]] = None,
    damp: float = 0.0,
    padding_mode: str = "zeros",
    atol: float = 1e-8,
    btol: float = 1e-8,
    iter_lim: Optional[int] = None,
    full_output: bool = False,
):
    """True deconvolution: the least-squares ``x`` with ``conv(x, w) ~ y`` (not ``conv_transpose``).

    Solves ``min ||C x - y||^2 + damp^2 ||x||^2`` with LSQR on the matrix-free
    :func:`conv_operator`.  ``conv_transpose(y)`` is ``C^T y``: it has the right shape
    and connectivity but undoes neither the blur nor the stride; this solves ``C x = y``.

    Parameters
    ----------
    y : array_like
        ``(N, C_out, *out)``, ``(C_out, *out)``, or plain ``out`` with a plain kernel.
    w : array_like
        The convolution's weight ``(C_out, C_in / groups, *kernel)`` or a plain kernel.
    stride, padding, dilation, groups, padding_mode
        The convolution that produced ``y``.
    input_shape : sequence of int, optional
        Spatial shape of ``x``.  A stride-s convolution maps s lengths to the same output,
        so it is ambiguous; by default the smallest (``output_padding = 0``) is taken.
    damp : float
        Tikhonov regularisation weight (LSQR's ``damp``).
    atol, btol, iter_lim
        LSQR's stopping rules.
    full_output : bool
        Also return a :class:`DeconvolveInfo` with iterations and residuals.

    Returns
    -------
    x : numpy.ndarray
        Shaped like the convolution's input.
    info : DeconvolveInfo
        Only with ``full_output=True``.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> k = np.array([[1., 2.], [0.5, 1.]])
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> y = tc.conv(x, k, padding=1)
    >>> x_hat, info = tc.deconvolve(y, k, padding=1, full_output=True)
    >>> bool(np.allclose(x_hat, x, atol=1e-6)), info.relative_residual < 1e-8
    (True, True)
    """
    op = "deconvolve"
    y = as_numeric(op, "y", y)
    w = _weight(op, w)
    damp = checked_real(op, "damp", damp, 0.0)
    atol, btol = checked_real(op, "atol", atol, 0.0), checked_real(op, "btol", btol, 0.0)
    if iter_lim is not None:
        iter_lim = checked_int(op, "iter_lim", iter_lim, 1)
    if not isinstance(full_output, (bool, np.bool_)):
        raise TransconvError(f"{op}: full_output must be True or False, got {full_output!r}")
    # y is read as the input of the transposed convolution (same weight layout), whose
    # output is the convolution's input: the smallest one unless input_shape is given
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode)
    lay_y = validate_call(op, True, y.shape, w.shape, **geometry)
    d = len(lay_y.input_spatial)
    spatial = lay_y.output_spatial if input_shape is None else spatial_shape(op, input_shape, d)
    if len(spatial) != d:
        raise TransconvError(f"{op}: input_shape must have {d} spatial axes, as y does, got {input_shape!r}")
    n = lay_y.x_shape[0]
    w = w.reshape(lay_y.w_shape)
    lay = validate_call(op, False, (n, lay_y.c_out) + spatial, w.shape, plain=False, **geometry)
    if lay.output_spatial != lay_y.input_spatial:
        raise TransconvError(
            f"{op}: y has shape {lay_y.x_shape[1:]} per sample but the convolution of input_shape {spatial} "
            f"gives {lay.output_shape[1:]}"
        )
    layer = _Layer(w, spatial, lay.spec, lay_y.plain)
    A = _operator(op, layer)
    batch = y.reshape(lay_y.x_shape).reshape(n, math.prod(lay_y.x_shape[1:])).astype(w.dtype)
    xs, info = [], []
    for sample in batch:
        x, istop, itn, r1norm, r2norm, *_ = spla.lsqr(A, sample, damp=damp, atol=atol, btol=btol, iter_lim=iter_lim)
        misfit = float(np.linalg.norm(A @ x - sample))
        norm_y = float(np.linalg.norm(sample))
        xs.append(x)
        info.append((int(itn), misfit, misfit / norm_y if norm_y else 0.0, int(istop)))
    x = np.zeros((n, layer.c_in) + spatial, dtype=w.dtype)
    if xs:
        x[...] = np.stack(xs).reshape(x.shape)
    x = x.reshape(x.shape[lay_y.squeeze:])
    if not full_output:
        return x
    columns = list(zip(*info)) if info else [()] * 4
    if lay_y.squeeze:
        return x, DeconvolveInfo(*(c[0] for c in columns))
    return x, DeconvolveInfo(*(np.array(c) for c in columns))


# --------------------------------------------------------------------------------------
# Spectrum.
# --------------------------------------------------------------------------------------


def _circulant(layer: _Layer) -> bool:
    """Circular padding, stride 1, output shape == input shape: C is block-circulant."""
    spec = layer.spec
    return (
        spec.padding_mode == "circular"
        and all(s == 1 for s in spec.stride)
        and layer.output_shape == layer.input_shape
    )


def _fft_singular_values(layer: _Layer) -> np.ndarray:
    """Every singular value of a block-circulant conv (Sedghi, Gupta & Long 2019).

    Output p reads input ``(p - lo + t*d) mod n``; in the Fourier basis each frequency f
    sees the C_out x C_in matrix ``sum_t w[:, :, t] exp(2 pi i f (t*d - lo) / n)``, and
    C's singular values are the union of those small matrices' singular values.
    """
    spec, w = layer.spec, layer.w
    n = layer.input_shape
    g = spec.groups
    # symbol[..., f] = sum over taps of w * phase(tap, f), built as an FFT of the kernel
    # placed at its (circular) offsets t*d - lo on the input grid
    placed = np.zeros(w.shape[:2] + n, dtype=np.float64)
    for tap in np.ndindex(*spec.kernel_size):
        pos = tuple((t * d - lo) % size for t, d, (lo, _), size in zip(tap, spec.dilation, spec.padding, n))
        placed[(slice(None), slice(None)) + pos] += w[(slice(None), slice(None)) + tap]
    symbol = np.fft.ifftn(placed, axes=tuple(range(2, 2 + len(n)))) * np.prod(n)  # exp(+2 pi i f x / n)
    symbol = np.moveaxis(symbol.reshape(w.shape[:2] + (-1,)), -1, 0)  # (F, C_out, C_in/g)
    co_g = w.shape[0] // g
    values = [np.linalg.svd(symbol[:, k * co_g:(k + 1) * co_g, :], compute_uv=False).ravel() for k in range(g)]
    # F frequencies x min(C_out/g, C_in/g) values per group: exactly min(C.shape) in all
    return np.sort(np.concatenate(values))[::-1]


def singular_values(
    w: Any,
    input_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    k: Optional[int] = None,
) -> np.ndarray:
    """Singular values of the convolution's matrix ``C``, largest first.

    * Circular padding, stride 1, output shape = input shape: exact, from the FFT of the
      kernel and one small SVD per frequency (Sedghi, Gupta & Long, "The Singular Values
      of Convolutional Layers", 2019).  Cost ``O(prod(n) * C^3)`` instead of ``O(N^3)``.
    * Anything else: ``k=None`` takes the dense SVD of C (refused above 6,000 on the
      short side, where ``k`` is needed); with ``k`` the ``k`` largest come from
      :func:`scipy.sparse.linalg.svds` on the matrix-free operator.

    Returns ``min(C.shape)`` values (or ``k``).

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> s = tc.singular_values(np.ones((2, 2)) / 4, (8, 8), padding=((0, 1), (0, 1)), padding_mode="circular")
    >>> s.shape, round(float(s[0]), 6)
    ((64,), 1.0)
    """
    op = "singular_values"
    layer = _conv_layer(op, w, input_shape, stride, padding, dilation, groups, padding_mode)
    rows, cols = layer.matrix_shape
    count = min(rows, cols)
    if k is not None:
        k_int = integer_or_none(k)
        if k_int is None or not 1 <= k_int <= count:
            raise TransconvError(f"{op}: k must be an integer from 1 to {count} (min of C's shape {rows}x{cols}), got {k!r}")
        k = k_int
    _finite_weight(op, layer)
    if _circulant(layer):
        check_allocation(op, "the kernel's Fourier symbol", _fft_bytes(layer))
        values = _fft_singular_values(layer)
        values = np.concatenate([values, np.zeros(max(count - values.size, 0))])[:count]
        return values if k is None else values[:k]
    if k is None or k >= count - 1:
        if count > 6000:
            raise TransconvError(
                f"{op}: C is {rows}x{cols}; a full SVD needs min(shape) <= 6000 (pass k for the k largest)"
            )
        values = _dense_singular_values(op, layer)
        return values if k is None else values[:k]
    check_allocation(op, "ARPACK's Lanczos vectors", _arpack_bytes(rows, cols, k))
    values = spla.svds(_operator(op, layer), k=k, return_singular_vectors=False, random_state=0)
    return np.sort(values)[::-1]


def _dense_singular_values(op: str, layer: _Layer) -> np.ndarray:
    """Every singular value of C from the dense SVD (small C only)."""
    rows, cols = layer.matrix_shape
    check_allocation(op, "the dense matrix and its SVD", 2 * rows * cols * 8)
    return np.linalg.svd(_build(op, layer).toarray(), compute_uv=False)


def _fft_bytes(layer: _Layer) -> int:
    """The FFT path's buffers: the placed kernel (float64) and its complex symbol, twice."""
    return layer.w.shape[0] * layer.w.shape[1] * math.prod(layer.input_shape) * (8 + 2 * 16)


def _arpack_bytes(rows: int, cols: int, k: int) -> int:
    """svds' Lanczos basis (ncv vectors, scipy's default ncv) and the operator's products."""
    ncv = min(min(rows, cols), max(2 * k + 1, 20))
    return (ncv + 4) * max(rows, cols) * 8


def operator_norm(
    w: Any,
    input_shape: Sequence[int],
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
) -> float:
    """The spectral norm of ``C`` (the layer's Lipschitz constant for the 2-norm).

    Exact via the FFT for circular stride-1 same-size layers; otherwise the largest
    singular value from ARPACK on the matrix-free operator (no matrix stored).

    >>> import numpy as np, transconv as tc
    >>> round(tc.operator_norm([[1, 4, 1], [1, 4, 3], [3, 3, 1]], (4, 4)), 4)
    12.7695
    """
    op = "operator_norm"
    layer = _conv_layer(op, w, input_shape, stride, padding, dilation, groups, padding_mode)
    _finite_weight(op, layer)
    if not layer.w.any():  # ARPACK cannot start from a zero operator
        return 0.0
    if _circulant(layer):
        check_allocation(op, "the kernel's Fourier symbol", _fft_bytes(layer))
        return float(_fft_singular_values(layer)[0])
    rows, cols = layer.matrix_shape
    if min(rows, cols) <= 64:
        return float(_dense_singular_values(op, layer)[0])
    check_allocation(op, "ARPACK's Lanczos vectors", _arpack_bytes(rows, cols, 1))
    return float(spla.svds(_operator(op, layer), k=1, return_singular_vectors=False, random_state=0)[0])
