"""Convolution and transposed convolution on Dask arrays, exact chunk by chunk.

Both operators are local, so they tile exactly.  Every output chunk is computed by the
in-memory operators from its input chunk plus the halo its windows reach, assembled
from the neighbouring chunks; the padding mode is applied through the global
:func:`~transconv.connectivity.pad_index`, so reflect / replicate / circular padding
reads the true border values of the whole array (circular wraps around it) and interior
chunk borders see real neighbour data.

``conv``
    Output chunk ``j`` along an axis holds the outputs whose windows start in input
    chunk ``j`` (windows that start in the low padding belong to the first chunk, in the
    high padding to the last).
``conv_transpose``
    The adjoint, written as a gather: output chunk ``j`` is ``stride`` times input chunk
    ``j``, the padding crop and ``output_padding`` taken off / added at the outer edges.
    It reads its input chunk plus a halo of ``ceil(k_eff / stride)`` inputs.  With a
    padding mode other than zeros, the cropped border is folded back onto the samples
    the convolution's padding copied (the adjoint of padding), one axis at a time.

Validation happens before any graph is built, through the same boundary as the
in-memory operators (the same :class:`~transconv.TransconvError`), plus the checks only
a chunked array needs: channels in one chunk, known chunk sizes, floating dtypes that
agree.  See ``docs/dask.md``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from functools import partial
from itertools import product
from typing import Any, Optional, Sequence

import dask.array as da
import numpy as np
from dask.array.core import concatenate3, normalize_chunks
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .connectivity import pad_index
from .errors import TransconvError
from .ops.dispatch import check_method, run_spec
from .upsample import CHUNK_SIDE
from .spec import ConvSpec, Layout, as_numeric, compute_dtypes, conv_output_length, effective_kernel, validate_call

__all__ = ["conv", "conv_transpose", "apply", "upsample", "receptive_halo", "auto_chunks", "OUTPUT_CHUNK_BYTES",
           "UPSAMPLE_CHUNK", "bench", "bench_arguments"]

OUTPUT_CHUNK_BYTES = 64 * 2**20  # default target size of one output chunk (see auto_chunks)
UPSAMPLE_CHUNK = CHUNK_SIDE  # default input tile side of upsample (see docs/dask.md)


# --------------------------------------------------------------------------------------
# Public operators.
# --------------------------------------------------------------------------------------


def conv(
    x: Any,
    w: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    chunks: Any = None,
) -> da.Array:
    """:func:`transconv.conv` on a Dask array, chunk by chunk, lazily.

    Parameters
    ----------
    x : dask.array.Array or array_like
        ``(N, C_in, *spatial)``, ``(C_in, *spatial)`` or plain ``spatial`` (as
        :func:`transconv.conv`), chunked along batch and spatial axes; the channel axis
        must be one chunk.  A NumPy array is wrapped with :func:`auto_chunks`.
    w, bias : numpy.ndarray (or a Dask array of known shape, computed here)
    stride, padding, dilation, groups, padding_mode, method
        As :func:`transconv.conv`; ``method`` is used for every chunk.
    chunks : None, "auto" or a Dask chunk specification, optional
        Rechunk ``x`` first (``"auto"``: :func:`auto_chunks`).  ``None`` keeps a Dask
        array's chunks.

    Returns
    -------
    dask.array.Array
        Lazy ``(N, C_out, *out)``; along every spatial axis output chunk ``j`` holds the
        outputs whose windows start in input chunk ``j``.

    Raises
    ------
    TransconvError
        Everything :func:`transconv.conv` rejects, and: channels split across chunks,
        unknown (NaN) chunk sizes, a float weight or bias whose dtype differs from a
        float ``x``, a Dask weight of unknown shape.  Raised before any graph is built.

    Examples
    --------
    >>> import numpy as np, dask.array as da, transconv as tc, transconv.dask as tcd
    >>> x = da.from_array(np.arange(20.0).reshape(1, 1, 20), chunks=(1, 1, 6))
    >>> w = np.ones((1, 1, 3))
    >>> y = tcd.conv(x, w, padding=1, padding_mode="circular")
    >>> y.chunks[2]  # output o's window starts at input o - 1
    (7, 6, 6, 1)
    >>> bool(np.allclose(y.compute(), tc.conv(x.compute(), w, padding=1, padding_mode="circular")))
    True
    """
    x, w, bias, call = _validate(
        "transconv.dask.conv", x, w, bias, chunks, method,
        dict(stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode),
    )
    return _conv_graph(x, call, method)


def conv_transpose(
    x: Any,
    w: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    output_size: Any = None,
    padding_mode: str = "zeros",
    method: str = "auto",
    chunks: Any = None,
) -> da.Array:
    """:func:`transconv.conv_transpose` on a Dask array, chunk by chunk, lazily.

    Parameters
    ----------
    x : dask.array.Array or array_like
        ``(N, C_in, *spatial)``, ``(C_in, *spatial)`` or plain ``spatial``; channels in
        one chunk.  A NumPy array is wrapped with :func:`auto_chunks`.
    w, bias : numpy.ndarray (or a Dask array of known shape, computed here)
    stride, padding, output_padding, groups, dilation, output_size, padding_mode, method
        As :func:`transconv.conv_transpose`.
    chunks : None, "auto" or a Dask chunk specification, optional
        As in :func:`conv`.

    Returns
    -------
    dask.array.Array
        Lazy ``(N, C_out, *out)``; along every spatial axis output chunk ``j`` is
        ``stride`` times input chunk ``j``, less the padding crop at the outer edges
        and plus ``output_padding`` at the high edge.

    Raises
    ------
    TransconvError
        As :func:`conv`.

    Examples
    --------
    The worked example's transpose, its 2x2 input split into four 1x1 chunks:

    >>> import numpy as np, dask.array as da, transconv.dask as tcd
    >>> k = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=float)
    >>> y = da.from_array(np.array([[2.0, 1], [4, 4]]), chunks=1)
    >>> tcd.conv_transpose(y, k).compute()
    array([[ 2.,  9.,  6.,  1.],
           [ 6., 29., 30.,  7.],
           [10., 29., 33., 13.],
           [12., 24., 16.,  4.]])
    """
    x, w, bias, call = _validate(
        "transconv.dask.conv_transpose", x, w, bias, chunks, method,
        dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups, dilation=dilation,
             output_size=output_size, padding_mode=padding_mode),
    )
    return _conv_transpose_graph(x, call, method)


def auto_chunks(
    shape: Sequence[int], dtype: Any, output_bytes: int, target: int = OUTPUT_CHUNK_BYTES
) -> tuple[tuple[int, ...], ...]:
    """Default chunks of a batched input ``(N, C, *spatial)``: output chunks of about ``target`` bytes.

    The channel axis is one chunk.  The input chunk limit is ``target`` times input/output
    size, so that each output chunk holds about ``target`` bytes (64 MB by default).  Whole
    samples are grouped while they fit; a sample larger than the limit is cut into
    near-cubic spatial chunks of equal size (``ceil(n / ceil(n / side))`` per axis).  Large
    enough that the per-chunk overhead (see ``docs/dask.md``) and the halo are small, small
    enough for several chunks per worker in a few GB.

    >>> auto_chunks((1, 3, 4096, 4096), np.float32, 4 * 3 * 8192 * 8192)
    ((1,), (3,), (1024, 1024, 1024, 1024), (1024, 1024, 1024, 1024))
    """
    dtype = np.dtype(dtype)
    n, c, spatial = int(shape[0]), int(shape[1]), [int(s) for s in shape[2:]]
    in_bytes = max(1, n * c * int(np.prod(spatial)) * dtype.itemsize)
    limit = target * in_bytes / max(1, output_bytes)  # input bytes of one chunk
    sample = in_bytes / max(1, n)
    batch = int(min(n, max(1, limit // sample))) if n else 1
    # one sample is too big: near-cubic spatial chunks of about `limit` bytes, balanced
    side = (limit / (c * dtype.itemsize)) ** (1 / max(1, len(spatial))) if batch == 1 else math.inf
    parts = [max(1, math.ceil(s / side)) for s in spatial]
    sizes = [math.ceil(s / p) for s, p in zip(spatial, parts)]
    return normalize_chunks((batch, c, *sizes), tuple(shape), dtype=dtype)


# --------------------------------------------------------------------------------------
# Boundary.
# --------------------------------------------------------------------------------------


def _concrete(op: str, name: str, value: Any) -> Any:
    """A Dask weight or bias of known shape is computed; of unknown shape it is an error."""
    if isinstance(value, da.Array):
        if any(math.isnan(s) for s in value.shape):
            raise TransconvError(
                f"{op}: {name} is a Dask array of unknown shape {value.shape}; pass a NumPy array or a Dask "
                f"array of known shape ({name}.compute_chunk_sizes())"
            )
        return value.compute()
    return value


@dataclass(frozen=True)
class _Call:
    """A validated call: the in-memory boundary's layout, the weight as ``(C_a, C_b, *kernel)``
    and the bias as ``(C_out,)`` (both in their own dtype), the result dtype."""

    w: np.ndarray
    bias: Optional[np.ndarray]
    problem: Layout
    out_dtype: np.dtype

    @property
    def squeeze(self) -> int:
        return self.problem.squeeze


def _validate(op, x, w, bias, chunks, method, arguments):
    """Check everything with the in-memory boundary (:func:`transconv.spec.validate_call`)."""
    memory_op = op.rsplit(".", 1)[-1]
    w = as_numeric(memory_op, "w", _concrete(op, "w", w))
    bias = None if bias is None else as_numeric(memory_op, "bias", _concrete(op, "bias", bias))
    if not isinstance(x, da.Array):
        x = as_numeric(memory_op, "x", x)  # the in-memory message for ragged / non-numeric input
    else:
        for axis, sizes in enumerate(x.chunks):
            if any(math.isnan(c) for c in sizes):
                raise TransconvError(
                    f"{op}: x has unknown chunk sizes on axis {axis} (shape {x.shape}); call "
                    f"x.compute_chunk_sizes() first"
                )
    shape, dtype = x.shape, x.dtype
    as_numeric(memory_op, "x", np.broadcast_to(np.zeros((), dtype), shape))  # the in-memory dtype message
    layout = validate_call(memory_op, memory_op == "conv_transpose", shape, w.shape,
                           bias_shape=None if bias is None else bias.shape, **arguments)  # the in-memory errors
    out_dtype, _ = compute_dtypes(np.dtype(dtype), w.dtype, None if bias is None else bias.dtype)
    call = _Call(w.reshape(layout.w_shape), None if bias is None else bias.reshape(layout.c_out), layout, out_dtype)
    check_method(memory_op, method)
    floats = [(n, a.dtype) for n, a in (("w", call.w), ("bias", call.bias)) if a is not None and a.dtype.kind == "f"]
    if np.dtype(dtype).kind == "f":
        for name, other in floats:
            if other != dtype:
                raise TransconvError(
                    f"{op}: {name} has dtype {other} but x has dtype {dtype}; the result would be {call.out_dtype} "
                    f"for the whole array: cast one of them ({name}.astype(x.dtype) or x.astype({name}.dtype))"
                )
    batched_shape = call.problem.x_shape
    out_bytes = int(np.prod((batched_shape[0], call.problem.c_out) + call.problem.output_spatial)) * call.out_dtype.itemsize
    if not isinstance(x, da.Array):
        x = da.from_array(x, chunks=_unbatch(auto_chunks(batched_shape, x.dtype, out_bytes), call.squeeze))
    elif chunks is not None:
        x = x.rechunk(_unbatch(auto_chunks(batched_shape, x.dtype, out_bytes), call.squeeze) if chunks == "auto" else chunks)
    x = x[(None,) * call.squeeze]
    if len(x.chunks[1]) != 1:
        raise TransconvError(
            f"{op}: x is split into {len(x.chunks[1])} chunks {x.chunks[1]} along the channel axis; every chunk "
            f"must hold all {x.shape[1]} channels: rechunk with x.rechunk({{{1 - call.squeeze}: -1}})"
        )
    return x, call.w, call.bias, call


def _unbatch(chunks, squeeze):
    return tuple(chunks[squeeze:])


# --------------------------------------------------------------------------------------
# The graph: every output block from the input blocks it reads.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """What one output chunk reads along one axis: input chunk indices and how to use them."""

    chunks: tuple[int, ...]
    info: Any


@dataclass(frozen=True)
class _Pieces:
    """One block's pieces, one per axis (an opaque object, so Dask does not look inside)."""

    pieces: tuple[_Piece, ...]


def _nested_keys(name: str, chunk_lists: Sequence[Sequence[int]], prefix: tuple = ()) -> list:
    if not chunk_lists:
        return (name,) + prefix  # type: ignore[return-value]
    return [_nested_keys(name, chunk_lists[1:], prefix + (c,)) for c in chunk_lists[0]]


def _graph(name: str, x: da.Array, plans: Sequence[Sequence[_Piece]], func, dtype) -> da.Array:
    """A Dask array whose block ``idx`` is ``func(nested input blocks, _Pieces)``.

    ``plans[a][j]`` is the piece output chunk ``j`` of axis ``a`` reads; the output's
    chunk sizes are the pieces' ``length``.
    """
    layer = {}
    for idx in product(*(range(len(p)) for p in plans)):
        pieces = tuple(plan[i] for plan, i in zip(plans, idx))
        if any(not p.chunks for p in pieces):
            keys: list = []
        else:
            keys = _nested_keys(x.name, [p.chunks for p in pieces])
        layer[(name,) + idx] = (func, keys, _Pieces(pieces))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x])
    out_chunks = tuple(tuple(p.info.length for p in plan) for plan in plans)
    return da.Array(graph, name, out_chunks, dtype=dtype)


@dataclass(frozen=True)
class _Whole:
    """An axis passed through chunk for chunk (batch, channels)."""

    length: int


def _whole_plan(chunks: Sequence[int]) -> list[_Piece]:
    return [_Piece((j,), _Whole(int(c))) for j, c in enumerate(chunks)]


def _chunk_of(starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.searchsorted(starts, positions, side="right") - 1


# --------------------------------------------------------------------------------------
# Convolution: gather the window region through the global padding map.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gather:
    """Along one axis: ``index`` into the concatenated input chunks (slice, or array with -1 = zero)."""

    index: Any
    padded: int  # length of the padded region the windows cover
    length: int  # outputs produced


def _conv_axis(chunks: Sequence[int], k: int, s: int, d: int, lo: int, hi: int, mode: str) -> list[_Piece]:
    n = int(sum(chunks))
    k_eff = effective_kernel(k, d)
    m = conv_output_length(n, k, s, (lo, hi), d)
    starts = np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)
    # output o's window starts at input o*s - lo: chunk j owns the windows starting in it
    first = [0] + [min(m, max(0, -(-(int(a) + lo) // s))) for a in starts[1:-1]] + [m]
    first = np.maximum.accumulate(first)
    source = pad_index(n, lo, hi, mode)
    pieces = []
    for o0, o1 in zip(first[:-1], first[1:]):
        o0, o1 = int(o0), int(o1)
        if o1 == o0:
            pieces.append(_Piece((), _Gather(np.zeros(0, np.int64), 0, 0)))
            continue
        src = source[o0 * s : (o1 - 1) * s + k_eff]
        real = src[src >= 0]
        if real.size == 0:
            pieces.append(_Piece((), _Gather(np.full(src.size, -1), src.size, o1 - o0)))
            continue
        touched = np.unique(_chunk_of(starts, real))
        sizes = starts[touched + 1] - starts[touched]
        offset = np.zeros(int(touched.max()) + 1, np.int64)
        offset[touched] = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        chunk = _chunk_of(starts, np.maximum(src, 0))
        local = np.where(src >= 0, offset[chunk] + src - starts[chunk], -1)
        if local[0] >= 0 and np.all(np.diff(local) == 1):
            index: Any = slice(int(local[0]), int(local[-1]) + 1)
        else:
            index = local
        pieces.append(_Piece(tuple(int(t) for t in touched), _Gather(index, src.size, o1 - o0)))
    return pieces


def _take(block: np.ndarray, index: Any, axis: int) -> np.ndarray:
    """Positions ``index`` of ``block`` along ``axis`` (``-1`` reads a zero)."""
    if isinstance(index, slice):
        return block[(slice(None),) * axis + (index,)]
    out = np.take(block, np.maximum(index, 0), axis=axis)
    zero = index < 0
    if zero.any():
        out[(slice(None),) * axis + (zero,)] = 0
    return out


def _assemble(blocks: list, pieces: Sequence[_Piece], dtype) -> Optional[np.ndarray]:
    """The concatenated input blocks, or None when the block reads no input at all."""
    if not blocks:
        return None
    single = blocks
    while isinstance(single, list) and len(single) == 1:
        single = single[0]
    if not isinstance(single, list):  # one input block: no concatenation copy
        return single
    return concatenate3(blocks)


@dataclass(frozen=True)
class _Operator:
    """The in-memory call each block makes (its weight, bias and geometry)."""

    w: np.ndarray
    bias: Optional[np.ndarray]
    spec: ConvSpec
    method: str
    c_in: int
    c_out: int
    dtype: np.dtype


def _conv_block(op: _Operator, blocks: list, wrapped: _Pieces) -> np.ndarray:
    pieces = wrapped.pieces
    nb = pieces[0].info.length
    spatial = [p.info for p in pieces[2:]]
    lengths = tuple(g.length for g in spatial)
    if 0 in lengths or nb == 0:
        return np.zeros((nb, op.c_out) + lengths, dtype=op.dtype)
    x = _assemble(blocks, pieces, op.dtype)
    if x is None:  # every window lies in zero padding
        x = np.zeros((nb, op.c_in) + tuple(g.padded for g in spatial), dtype=op.dtype)
    else:
        for axis, g in enumerate(spatial, start=2):
            x = _take(x, g.index, axis)
    # the block arrives padded (the padding mode applied through the global index)
    spec = replace(op.spec, padding=((0, 0),) * op.spec.ndim, padding_mode="zeros")
    return run_spec("conv", False, spec, x, op.w, op.bias, op.method).astype(op.dtype, copy=False)


def _conv_graph(x: da.Array, call: _Call, method: str) -> da.Array:
    spec = call.problem.spec
    mode = spec.padding_mode
    plans = [_whole_plan(x.chunks[0]), _whole_plan(x.chunks[1])]
    for chunks, k, s, d, (lo, hi) in zip(x.chunks[2:], spec.kernel_size, spec.stride, spec.dilation, spec.padding):
        plans.append(_conv_axis(chunks, k, s, d, lo, hi, mode if (lo or hi) else "zeros"))
    op = _Operator(call.w, call.bias, spec, method, x.shape[1], call.problem.c_out, call.out_dtype)
    name = "transconv-conv-" + tokenize(x, call.w, call.bias, spec, method)
    plans[1] = [_Piece((0,), _Whole(op.c_out))]
    out = _graph(name, x, plans, partial(_conv_block, op), call.out_dtype)
    return out[(0,) * call.squeeze]


# --------------------------------------------------------------------------------------
# Transposed convolution: each output chunk gathers its input chunk plus a halo.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scatter:
    """Along one axis: the slice of the concatenated inputs that reaches padded output
    ``[p0, p1)``, the padding / output_padding of their transposed conv, the window of its
    result that is ``[p0, p1)``, and zeros where no input reaches."""

    index: slice
    padding: tuple[int, int]
    output_padding: int
    window: slice
    zeros: tuple[int, int]
    length: int
    interior: bool  # inside the uncropped border (bias applies; fold pieces carry none)


def _transpose_axis(
    chunks: Sequence[int], k: int, s: int, d: int, lo: int, hi: int, a: int, big: int, fold: bool
) -> list[_Piece]:
    """Pieces of the uncropped (padded) transposed output along one axis.

    Without ``fold`` they are the output chunks (crop dropped); with it the low crop
    ``[0, lo)`` and high crop come first and last, to be folded back afterwards.  A piece
    runs the layer's own geometry (padding, output_padding) on a halo wide enough to cover
    it, so the chunk takes the same fast path as the whole array (an output of stride x
    its input); pieces it cannot cover (the crops) take exactly their region.
    """
    m = int(sum(chunks))
    k_eff = effective_kernel(k, d)
    starts = np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)
    # output chunk j is stride x input chunk j in padded coordinates, cropped at the edges
    edges = [0] + [min(big, max(0, int(e) * s - lo)) for e in starts[1:-1]] + [big]
    edges = [e + lo for e in np.maximum.accumulate(edges)]
    regions = [(e0, e1, True) for e0, e1 in zip(edges[:-1], edges[1:])]
    if fold:
        regions = ([(0, lo, False)] if lo else []) + regions + ([(lo + big, lo + big + hi, False)] if hi else [])
    pieces = []
    for p0, p1, interior in regions:
        i0 = max(0, -(-(p0 - k_eff + 1) // s))  # the inputs that reach [p0, p1)
        i1 = min(m - 1, (p1 - 1) // s)
        if p1 == p0 or i0 > i1:
            pieces.append(_Piece((), _Scatter(slice(0, 0), (0, 0), 0, slice(None), (p1 - p0, 0), p1 - p0, interior)))
            continue
        # wider, so that the layer's own geometry covers [p0, p1); extra inputs only reach outside it
        j0 = min(i0, (p0 - lo) // s) if p0 >= lo else -1
        j1 = max(i1, -(-(p1 - k_eff + hi - a) // s))
        if j0 >= 0 and j1 <= m - 1:
            i0, i1 = j0, j1
            begin = p0 - (i0 * s + lo)
            geometry = ((lo, hi), a, slice(begin, begin + p1 - p0), (0, 0))
        else:
            reach0, reach1 = i0 * s, i1 * s + k_eff  # what inputs i0..i1 reach, uncropped
            geometry = ((max(0, p0 - reach0), max(0, reach1 - p1)), 0, slice(None),
                        (max(0, reach0 - p0), max(0, p1 - reach1)))
        touched = tuple(range(int(_chunk_of(starts, np.array([i0]))[0]), int(_chunk_of(starts, np.array([i1]))[0]) + 1))
        base = int(starts[touched[0]])
        pieces.append(_Piece(touched, _Scatter(slice(i0 - base, i1 + 1 - base), *geometry, p1 - p0, interior)))
    return pieces


def _transpose_block(op: _Operator, blocks: list, wrapped: _Pieces) -> np.ndarray:
    pieces = wrapped.pieces
    nb = pieces[0].info.length
    spatial = [p.info for p in pieces[2:]]
    lengths = tuple(t.length for t in spatial)
    y = _assemble(blocks, pieces, op.dtype)
    if y is None or 0 in lengths or nb == 0:
        out = np.zeros((nb, op.c_out) + lengths, dtype=op.dtype)
    else:
        y = y[(slice(None), slice(None)) + tuple(t.index for t in spatial)]
        # this block's crop and output_padding; the padding mode is folded back afterwards (_fold_block)
        spec = replace(op.spec, padding=tuple((int(t.padding[0]), int(t.padding[1])) for t in spatial),
                       output_padding=tuple(int(t.output_padding) for t in spatial), padding_mode="zeros")
        out = run_spec("conv_transpose", True, spec, y, op.w, None, op.method).astype(op.dtype, copy=False)
        out = out[(slice(None), slice(None)) + tuple(t.window for t in spatial)]
        if any(t.zeros != (0, 0) for t in spatial):
            out = np.pad(out, [(0, 0), (0, 0)] + [t.zeros for t in spatial])
    if op.bias is not None and all(t.interior for t in spatial):
        out = out + op.bias.astype(op.dtype).reshape((1, -1) + (1,) * len(spatial))
    return out


@dataclass(frozen=True)
class _Fold:
    """Along the folded axis: the interior slice, and (crop position, target) pairs to add."""

    interior: slice
    pairs: tuple[tuple[int, int], ...]
    length: int


def _fold_axis(inner: Sequence[int], lo: int, hi: int, mode: str) -> list[_Piece]:
    """Fold the crops ``[0, lo)`` and ``[lo + n, lo + n + hi)`` back onto the samples they copy."""
    n = int(sum(inner))
    source = pad_index(n, lo, hi, mode)
    starts = np.concatenate([[0], np.cumsum(inner)]).astype(np.int64)
    shift = 1 if lo else 0
    last = len(inner) + shift
    pieces = []
    for j, (q0, q1) in enumerate(zip(starts[:-1], starts[1:])):
        q0, q1 = int(q0), int(q1)
        low = [(p, int(source[p]) - q0) for p in range(lo) if q0 <= source[p] < q1]
        high = [(p, int(source[lo + n + p]) - q0) for p in range(hi) if q0 <= source[lo + n + p] < q1]
        chunks = ([0] if low else []) + [j + shift] + ([last] if high else [])
        begin = lo if low else 0
        pairs = tuple(low) + tuple((begin + (q1 - q0) + p, t) for p, t in high)
        pieces.append(_Piece(tuple(chunks), _Fold(slice(begin, begin + q1 - q0), pairs, q1 - q0)))
    return pieces


def _fold_block(axis: int, blocks: list, wrapped: _Pieces) -> np.ndarray:
    z = concatenate3(blocks)
    fold = wrapped.pieces[axis].info
    out = z[(slice(None),) * axis + (fold.interior,)].copy()
    moved, source = np.moveaxis(out, axis, 0), np.moveaxis(z, axis, 0)
    for src, dst in fold.pairs:
        moved[dst] += source[src]
    return out


def _conv_transpose_graph(x: da.Array, call: _Call, method: str) -> da.Array:
    spec = call.problem.spec
    big = call.problem.output_spatial
    folds = [spec.padding_mode != "zeros" and (lo or hi) for lo, hi in spec.padding]
    plans = [_whole_plan(x.chunks[0]), [_Piece((0,), _Whole(call.problem.c_out))]]
    for chunks, k, s, d, (lo, hi), a, b, f in zip(
        x.chunks[2:], spec.kernel_size, spec.stride, spec.dilation, spec.padding, spec.output_padding, big, folds
    ):
        plans.append(_transpose_axis(chunks, k, s, d, lo, hi, a, b, f))
    op = _Operator(call.w, call.bias, spec, method, x.shape[1], call.problem.c_out, call.out_dtype)
    token = tokenize(x, call.w, call.bias, spec, method)
    out = _graph("transconv-conv-transpose-" + token, x, plans, partial(_transpose_block, op), call.out_dtype)
    for axis, ((lo, hi), f) in enumerate(zip(spec.padding, folds), start=2):
        if not f:
            continue
        inner = out.chunks[axis][(1 if lo else 0) : len(out.chunks[axis]) - (1 if hi else 0)]
        fold_plans = [_whole_plan(c) for c in out.chunks]
        fold_plans[axis] = _fold_axis(inner, lo, hi, spec.padding_mode)
        out = _graph(f"transconv-fold{axis}-" + token, out, fold_plans, partial(_fold_block, axis), call.out_dtype)
    return out[(0,) * call.squeeze]


# --------------------------------------------------------------------------------------
# A transconv.nn model, layer by layer.
# --------------------------------------------------------------------------------------


def apply(model: Any, x: Any, *, method: str = "auto", chunks: Any = None, fuse: Optional[bool] = None) -> da.Array:
    """Run a :mod:`transconv.nn` model on a Dask array, chunk by chunk, lazily.

    Where every layer maps a tile to ``factor`` x the tile (the FSRCNN up-samplers, say),
    each chunk runs the whole model on itself plus the receptive-field halo
    (:func:`receptive_halo`), cut to ``factor`` x the chunk (``fuse``).  Otherwise each
    layer becomes one step of the graph with exactly the halo it needs.  Either way the result
    equals ``model.forward`` on the whole array (to float rounding): ``Conv`` and
    ``ConvTranspose`` through :func:`conv` / :func:`conv_transpose` (their padding applies
    only at the true array border), element-wise layers and ``PReLU`` block by block,
    ``PixelShuffle`` / nearest ``Upsample`` scale the chunks, ``PixelUnshuffle`` first
    moves chunk borders onto multiples of its factor, bilinear ``Upsample`` reads a
    one-sample halo (edge samples repeated at the true border), ``Sequential`` in order.

    Parameters
    ----------
    model : transconv.nn.Module
    x : dask.array.Array or array_like
        ``(N, C, *spatial)``; channels in one chunk.  A NumPy array gets :func:`auto_chunks`
        for the model's output size.
    method : str
        Passed to every convolution.
    chunks : None, "auto" or a Dask chunk specification
        Rechunk ``x`` first, as in :func:`conv`.
    fuse : bool or None
        ``True``: run the whole model once per chunk on the chunk plus the model's
        receptive-field halo (:func:`receptive_halo`), one task per chunk instead of one
        graph step per layer; only for models that map a tile to ``factor`` x the tile,
        with ``method="auto"``.  ``False``: layer by layer.  ``None`` (default): fused
        when the model allows it and ``method="auto"``, else layer by layer.

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, dask.array as da, transconv as tc, transconv.dask as tcd
    >>> model = tc.nn.Sequential(tc.nn.Conv(1, 4, 3, padding=1, seed=0), tc.nn.ReLU(),
    ...                          tc.nn.ConvTranspose(4, 1, 4, stride=2, padding=1, seed=1))
    >>> x = np.random.default_rng(0).random((1, 1, 20, 30), dtype=np.float32)
    >>> y = tcd.apply(model, da.from_array(x, chunks=(1, 1, 7, 8)), fuse=False)
    >>> y.shape, y.chunks[2]
    ((1, 1, 40, 60), (15, 14, 11))
    >>> bool(np.allclose(y.compute(), model.forward(x), atol=1e-5))
    True
    >>> fused = tcd.apply(model, da.from_array(x, chunks=(1, 1, 7, 8)))  # one task per chunk
    >>> fused.chunks[2], bool(np.allclose(fused.compute(), model.forward(x), atol=1e-5))
    ((14, 14, 12), True)
    """
    op = "transconv.dask.apply"
    from . import nn

    if not isinstance(model, nn.Module):
        raise TransconvError(f"{op}: model must be a transconv.nn.Module, got {type(model).__name__}")
    if isinstance(x, da.Array):
        array = x
    else:
        array = np.asarray(x)
    if array.ndim < 3:
        raise TransconvError(f"{op}: x must be batched, (N, C, *spatial), got shape {array.shape}")
    if not isinstance(x, da.Array) or chunks == "auto":
        whole = _walk(op, model, da.zeros(array.shape, dtype=array.dtype, chunks=-1), method)
        auto = auto_chunks(array.shape, array.dtype, whole.nbytes)
        x = x.rechunk(auto) if isinstance(x, da.Array) else da.from_array(array, chunks=auto)
    elif chunks is not None:
        x = x.rechunk(chunks)
    if fuse is None:
        try:
            receptive_halo(model, x.ndim - 2)
            fuse = method == "auto"
        except TransconvError:
            fuse = False
    if not fuse:
        return _walk(op, model, x, method)
    if method != "auto":
        raise TransconvError(f"{op}: fuse=True runs model.forward, which takes method 'auto'; got method={method!r}")
    whole = _walk(op, model, da.zeros(x.shape, dtype=x.dtype, chunks=-1), method)  # validates, gives shape and dtype
    factor, halo = receptive_halo(model, x.ndim - 2)
    if len(x.chunks[1]) != 1:
        raise TransconvError(f"{op}: x is split into {len(x.chunks[1])} chunks along the channel axis; rechunk with "
                             f"x.rechunk({{1: -1}})")
    name = "transconv-apply-fused-" + tokenize(x, model.state_dict(), repr(model))
    return _tiles(name, x, tuple(range(2, x.ndim)), factor, halo, partial(_model_tile, model), {1: whole.shape[1]},
                  whole.dtype)


def _forward(layer: Any, block: np.ndarray, crop: Optional[tuple[int, ...]] = None) -> np.ndarray:
    """``layer.forward`` on one block, on a shallow copy (its cache must not pin the block)."""
    out = copy.copy(layer).forward(block)
    if crop is not None:
        out = out[(slice(None), slice(None)) + tuple(slice(c, out.shape[a + 2] - c) for a, c in enumerate(crop))]
    return out


def _drop_empty(x: da.Array) -> da.Array:
    """Merge away zero-length chunks (a strided conv can leave some) before blockwise layers."""
    if all(all(cs) for cs in x.chunks):
        return x
    return x.rechunk(tuple(tuple(c for c in cs if c) or cs for cs in x.chunks))


def _walk(op: str, layer: Any, x: da.Array, method: str) -> da.Array:
    from . import nn

    name = type(layer).__name__
    spatial = x.ndim - 2
    if isinstance(layer, nn.Sequential):
        for child in layer.layers:
            x = _walk(op, child, x, method)
        return x
    if isinstance(layer, (nn.Conv, nn.ConvTranspose)):
        if x.shape[1] != layer.in_channels or spatial != layer.ndim:
            raise TransconvError(f"{op}: layer {name} expects (N, {layer.in_channels}, <{layer.ndim} spatial axes>), "
                                 f"got shape {x.shape}")
        x = x.astype(layer.dtype)
        s = layer.spec_for(x.shape[2:])
        if isinstance(layer, nn.Conv):
            y = conv(x, layer.weight, layer.bias, s.stride, s.padding, s.dilation, s.groups,
                     padding_mode=s.padding_mode, method=method)
        else:
            y = conv_transpose(x, layer.weight, layer.bias, s.stride, s.padding, s.output_padding, s.groups, s.dilation,
                               padding_mode=s.padding_mode, method=method)
        return _drop_empty(y)
    if isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.PReLU)):
        probe = _forward(layer, np.zeros((1, x.shape[1]) + (1,) * spatial, x.dtype))
        return x.map_blocks(partial(_forward, layer), dtype=probe.dtype)
    if isinstance(layer, nn.PixelShuffle):
        r = layer.upscale_factor
        if x.shape[1] % r**spatial:
            raise TransconvError(f"{op}: PixelShuffle({r}) needs channels divisible by {r ** spatial}, got shape {x.shape}")
        out_chunks = (x.chunks[0], (x.shape[1] // r**spatial,)) + tuple(tuple(c * r for c in cs) for cs in x.chunks[2:])
        return x.map_blocks(partial(_forward, layer), chunks=out_chunks, dtype=x.dtype)
    if isinstance(layer, nn.PixelUnshuffle):
        r = layer.downscale_factor
        if any(n % r for n in x.shape[2:]):
            raise TransconvError(f"{op}: PixelUnshuffle({r}) needs spatial lengths divisible by {r}, got shape {x.shape}")
        x = x.rechunk(x.chunks[:2] + tuple(_multiples(cs, r) for cs in x.chunks[2:]))
        out_chunks = (x.chunks[0], (x.shape[1] * r**spatial,)) + tuple(tuple(c // r for c in cs) for cs in x.chunks[2:])
        return x.map_blocks(partial(_forward, layer), chunks=out_chunks, dtype=x.dtype)
    if isinstance(layer, nn.Upsample):
        scales = layer.scales(spatial)
        out_chunks = x.chunks[:2] + tuple(tuple(c * r for c in cs) for cs, r in zip(x.chunks[2:], scales))
        if layer.mode == "nearest":
            return x.map_blocks(partial(_forward, layer), chunks=out_chunks, dtype=x.dtype)
        # bilinear reads one neighbour each way; PyTorch clamps at the edge = the edge sample repeated
        depth = {a: 1 for a in range(2, x.ndim)}
        halo = da.overlap.overlap(x, depth={0: 0, 1: 0, **depth}, boundary={a: "nearest" for a in range(2, x.ndim)})
        return halo.map_blocks(partial(_forward, layer, crop=scales), chunks=out_chunks, dtype=x.dtype)
    raise TransconvError(
        f"{op}: no chunked rule for layer {name}; supported: Sequential, Conv, ConvTranspose, PixelShuffle, "
        f"PixelUnshuffle, Upsample, ReLU, LeakyReLU, PReLU, Tanh, Sigmoid"
    )


def _multiples(chunks: Sequence[int], r: int) -> tuple[int, ...]:
    """The same chunks with every border moved down to a multiple of ``r``."""
    edges = np.cumsum(chunks)
    cut = sorted({int(e) // r * r for e in edges} - {0})
    return tuple(int(b - a) for a, b in zip([0] + cut[:-1], cut))


# --------------------------------------------------------------------------------------
# A whole model per output chunk: one halo, the model's receptive field.
# --------------------------------------------------------------------------------------


def _layer_reach(op: str, layer: Any, shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Per spatial axis ``(factor, lo, hi)``: output ``o`` of ``layer`` reads only inputs in
    ``[o // factor - lo, o // factor + hi]`` and the output is ``factor`` x the input, on any
    length, so a tile of the input plus a halo gives exact outputs away from its cut edges."""
    from . import nn

    name = type(layer).__name__
    if isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.PReLU)):
        return [(1, 0, 0)] * len(shape)
    if isinstance(layer, nn.PixelShuffle):
        return [(layer.upscale_factor, 0, 0)] * len(shape)
    if isinstance(layer, nn.Upsample):
        return [(r, int(layer.mode == "bilinear"), int(layer.mode == "bilinear")) for r in layer.scales(len(shape))]
    if isinstance(layer, (nn.Conv, nn.ConvTranspose)):
        spec = layer.spec_for(shape)
        reach = []
        for k, s, d, (lo, hi), a in zip(spec.kernel_size, spec.stride, spec.dilation, spec.padding, spec.output_padding):
            k_eff = d * (k - 1)
            if isinstance(layer, nn.Conv) and s == 1 and lo + hi == k_eff and spec.padding_mode != "circular":
                reach.append((1, lo, hi))  # output o reads inputs o - lo .. o + hi
            elif isinstance(layer, nn.ConvTranspose) and k_eff + a + 1 - lo - hi == s and spec.padding_mode == "zeros":
                reach.append((s, max(0, (k_eff - lo) // s), max(0, (s - 1 + lo) // s)))  # o = i*s - lo + t*d
            else:
                raise TransconvError(
                    f"{op}: layer {name} (stride {spec.stride}, padding {spec.padding}, padding_mode "
                    f"{spec.padding_mode!r}) does not map a tile to stride x the tile; use fuse=False"
                )
        return reach
    raise TransconvError(
        f"{op}: no receptive field for layer {name}; fusable layers: Sequential, Conv (stride 1, output the "
        f"input's size, not circular), ConvTranspose (output stride x the input, zeros padding), PixelShuffle, "
        f"Upsample, ReLU, LeakyReLU, PReLU, Tanh, Sigmoid"
    )


def receptive_halo(model: Any, ndim: int = 2) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """The up-sampling factor and the input halo that make tiles of ``model`` exact.

    For a :mod:`transconv.nn` model whose every layer maps a tile to ``factor`` x the tile
    (stride-1 convolutions that keep the size, transposed convolutions whose output is
    stride x the input, element-wise layers, ``PixelShuffle``, ``Upsample``), returns
    ``(factor, halo)`` per spatial axis: ``model.forward`` on input ``[a - lo, b + hi)``
    (cut at the array's true border) gives exactly the whole array's outputs
    ``[factor * a, factor * b)`` (to float rounding).  Walking the layers backwards, a
    halo of ``h`` outputs needs ``ceil(h / factor) + reach`` inputs.

    Raises
    ------
    TransconvError
        A layer that does not map tiles that way (a strided conv, ``PixelUnshuffle``,
        circular padding, ...), naming it.

    Examples
    --------
    >>> import transconv as tc
    >>> model = tc.nn.Sequential(tc.nn.Conv(1, 8, 5, padding=2), tc.nn.PReLU(8),
    ...                          tc.nn.ConvTranspose(8, 1, 9, stride=2, padding=4, output_padding=1))
    >>> receptive_halo(model)
    ((2, 2), ((4, 4), (4, 4)))
    """
    from . import nn

    op = "transconv.dask.receptive_halo"
    layers: list = []

    def flatten(layer: Any) -> None:
        if isinstance(layer, nn.Sequential):
            for child in layer.layers:
                flatten(child)
        else:
            layers.append(layer)

    flatten(model)
    shape, reaches = (64,) * ndim, []
    for layer in layers:
        reach = _layer_reach(op, layer, shape)
        reaches.append(reach)
        shape = tuple(n * r for n, (r, _, _) in zip(shape, reach))
    factor, halo = [], []
    for axis in range(ndim):
        lo = hi = 0
        for reach in reversed(reaches):
            r, reach_lo, reach_hi = reach[axis]
            lo, hi = -(-lo // r) + reach_lo, -(-hi // r) + reach_hi
        factor.append(int(np.prod([reach[axis][0] for reach in reaches])))
        halo.append((lo, hi))
    return tuple(factor), tuple(halo)


@dataclass(frozen=True)
class _Tile:
    """Along one tiled axis: the input slice with its halo, the crop of the result, the output length."""

    index: slice
    crop: slice
    length: int


def _tile_axis(chunks: Sequence[int], lo: int, hi: int, factor: int) -> list[_Piece]:
    n = int(sum(chunks))
    starts = np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)
    pieces = []
    for a, b in zip(starts[:-1], starts[1:]):
        a, b = int(a), int(b)
        i0, i1 = max(0, a - lo), min(n, b + hi)  # the halo, cut at the true border
        touched = tuple(range(int(_chunk_of(starts, np.array([i0]))[0]), int(_chunk_of(starts, np.array([i1 - 1]))[0]) + 1))
        base = int(starts[touched[0]])
        crop = slice(factor * (a - i0), factor * (b - i0))
        pieces.append(_Piece(touched, _Tile(slice(i0 - base, i1 - base), crop, factor * (b - a))))
    return pieces


def _tile_block(func, tiled: tuple[int, ...], blocks: list, wrapped: _Pieces) -> np.ndarray:
    pieces = wrapped.pieces
    region = _assemble(blocks, pieces, None)
    region = region[tuple(pieces[a].info.index if a in tiled else slice(None) for a in range(region.ndim))]
    out = func(region)
    return out[tuple(pieces[a].info.crop if a in tiled else slice(None) for a in range(out.ndim))]


def _tiles(name: str, x: da.Array, tiled: Sequence[int], factor: Sequence[int], halo: Sequence[tuple[int, int]],
           func, lengths: dict, dtype) -> da.Array:
    """``func`` on every chunk of ``x`` plus its halo along the ``tiled`` axes, cropped to
    ``factor`` x the chunk; other axes pass through (one chunk each where ``lengths`` gives
    the output's length)."""
    plans = []
    for axis, chunks in enumerate(x.chunks):
        if axis in tiled:
            t = list(tiled).index(axis)
            plans.append(_tile_axis(chunks, halo[t][0], halo[t][1], factor[t]))
        elif axis in lengths:
            plans.append([_Piece((0,), _Whole(int(lengths[axis])))])
        else:
            plans.append(_whole_plan(chunks))
    return _graph(name, x, plans, partial(_tile_block, func, tuple(tiled)), dtype)


def _model_tile(model: Any, block: np.ndarray) -> np.ndarray:
    return _forward(model, block)


def upsample(x: Any, scale: int = 2, *, model: Any = None, chunks: Any = None) -> da.Array:
    """:func:`transconv.upsample` on a Dask array (or a large NumPy array), tile by tile, lazily.

    Each input chunk is up-sampled by :func:`transconv.upsample` together with a halo of
    ``max(network halo, 2)`` pixels (:func:`receptive_halo` of the network; 2 for the
    bicubic chroma of an RGB image) cut off again, so the result equals the in-memory call:
    the chroma exactly (Pillow's bicubic reads two input pixels each way), the network's
    luminance to float rounding (a ``uint8`` pixel may differ by one where the in-memory
    value lies within rounding of a half).

    Parameters
    ----------
    x : dask.array.Array or array_like
        ``(H, W)`` gray or ``(H, W, 3)`` RGB, ``uint8`` (0-255) or float (0-1).
    scale, model
        As :func:`transconv.upsample`; ``model`` must be a :mod:`transconv.nn` model (or a
        path to one) so that its receptive field is known.
    chunks : None, int or a Dask chunk specification
        Input tile side (``int``), or chunks of ``(H, W)``.  ``None`` keeps a Dask array's
        chunks and gives a NumPy array tiles of :data:`UPSAMPLE_CHUNK`.

    Returns
    -------
    dask.array.Array
        ``(scale*H, scale*W[, 3])`` of ``x``'s dtype, output chunk = ``scale`` x input chunk.

    Examples
    --------
    >>> import numpy as np, transconv as tc, transconv.dask as tcd
    >>> image = np.random.default_rng(0).random((30, 20, 3))
    >>> y = tcd.upsample(image, 2, chunks=8)
    >>> y.chunks[:2]
    ((16, 16, 16, 12), (16, 16, 8))
    >>> bool(np.allclose(y.compute(), tc.upsample(image, 2), atol=1e-5))
    True
    """
    from . import nn
    from .upsample import _check_image, _resolve_model
    from .upsample import upsample as memory_upsample

    op = "transconv.dask.upsample"
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise TransconvError(f"{op}: scale must be a positive integer, got {scale!r}")
    array = x if isinstance(x, da.Array) else np.asarray(x)
    _check_image(op, array.shape, array.dtype)
    net = _resolve_model(model, scale)
    if not isinstance(net, nn.Module):
        raise TransconvError(f"{op}: model must be a transconv.nn model or a path to one (its receptive field "
                             f"sets the halo), got {type(net).__name__}")
    factor, halo = receptive_halo(net, 2)
    if factor != (scale, scale):
        raise TransconvError(f"{op}: the model up-samples {factor}, but scale is {scale}")
    halo = tuple((max(lo, 2), max(hi, 2)) for lo, hi in halo)  # Pillow's bicubic reads 2 pixels each way
    if chunks is None and not isinstance(x, da.Array):
        chunks = UPSAMPLE_CHUNK
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        if chunks < 1:
            raise TransconvError(f"{op}: chunks (tile side) must be at least 1, got {chunks}")
        chunks = (int(chunks), int(chunks))
    if chunks is not None:
        chunks = tuple(chunks)[:2] + (-1,) * (array.ndim - 2)
    if isinstance(x, da.Array):
        array = array.rechunk(chunks) if chunks is not None else array.rechunk({2: -1} if array.ndim == 3 else {})
    else:
        array = da.from_array(array, chunks=chunks)
    for axis, sizes in enumerate(array.chunks):
        if any(math.isnan(c) for c in sizes):
            raise TransconvError(f"{op}: x has unknown chunk sizes on axis {axis}; call x.compute_chunk_sizes() first")
    name = "transconv-upsample-" + tokenize(array, scale, net.state_dict() if hasattr(net, "state_dict") else id(net))
    func = partial(memory_upsample, scale=scale, model=net)
    return _tiles(name, array, (0, 1), factor, halo, func, {}, array.dtype)


# --------------------------------------------------------------------------------------
# Benchmark (transconv bench --dask, benchmarks/bench_dask.py).
# --------------------------------------------------------------------------------------


def bench_arguments(parser: Any) -> None:
    """The options of :func:`bench`."""
    parser.add_argument("--size", type=int, default=1024, help="image side")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--chunks", type=int, nargs="+", default=[128, 256, 512, 1024], help="input chunk sides")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="threads of the threaded scheduler")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")


def bench(argv: Optional[Sequence[str]] = None) -> int:
    """Print the throughput table of ``benchmarks/bench_dask.py`` (``transconv bench --dask``).

    One transposed-convolution layer (default 8 -> 8 channels, kernel 4, stride 2, padding
    1, 1024x1024 float32, 128 MB of output): the in-memory call and :func:`conv_transpose`
    on Dask's threaded scheduler for every (chunk side, workers) pair, alternating in
    rounds, medians; output MB/s, time / in-memory time, overhead per chunk
    ``(time with the fewest workers - in-memory time) / chunks``, and :func:`auto_chunks`.
    """
    import argparse
    import statistics
    import time

    import dask

    from .ops.dispatch import conv_transpose as memory_conv_transpose

    parser = argparse.ArgumentParser(prog="transconv bench --dask", description="transconv.dask throughput")
    bench_arguments(parser)
    args = parser.parse_args(argv)

    def _timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    rng = np.random.default_rng(0)
    c, n = args.channels, args.size
    x = rng.standard_normal((1, c, n, n), dtype=np.float32)
    w = (rng.standard_normal((c, c, 4, 4), dtype=np.float32) / (4 * c)).astype(np.float32)
    kwargs = dict(stride=2, padding=1)
    out_bytes = c * (2 * n) ** 2 * 4
    memory = lambda: memory_conv_transpose(x, w, **kwargs)  # noqa: E731
    memory()  # compile and warm
    lazy = {}
    for side in args.chunks:
        lazy[side] = conv_transpose(da.from_array(x, chunks=(1, c, side, side)), w, **kwargs)
    times: dict = {"memory": []}
    for _ in range(args.rounds):
        times["memory"].append(_timed(memory))
        for side in args.chunks:
            for workers in args.workers:
                with dask.config.set(scheduler="threads", num_workers=workers):
                    times.setdefault((side, workers), []).append(_timed(lazy[side].compute))
    t_mem = statistics.median(times["memory"])
    mb = 2**20
    print(f"conv_transpose (1, {c}, {n}, {n}) -> (1, {c}, {2 * n}, {2 * n}) float32, kernel 4 stride 2 padding 1; "
          f"output {out_bytes / mb:.0f} MB; medians of {args.rounds} alternating rounds")
    print(f"in-memory: {t_mem * 1e3:8.1f} ms  {out_bytes / mb / t_mem:7.0f} MB/s")
    print(f"{'chunk':>7} {'chunks':>6} {'workers':>7} {'ms':>9} {'MB/s':>7} {'x memory':>9} {'overhead/chunk':>15}")
    for side in args.chunks:
        count = int(np.prod([len(cs) for cs in lazy[side].chunks]))
        one = statistics.median(times[(side, min(args.workers))])
        for workers in args.workers:
            t = statistics.median(times[(side, workers)])
            overhead = f"{(one - t_mem) / count * 1e3:12.2f} ms" if workers == min(args.workers) else ""
            print(f"{side:>7} {count:>6} {workers:>7} {t * 1e3:9.1f} {out_bytes / mb / t:7.0f} {t / t_mem:9.2f} {overhead:>15}")
    auto = auto_chunks(x.shape, x.dtype, out_bytes)
    print(f"auto_chunks for this layer (64 MB output target): {tuple(cs[0] for cs in auto)} "
          f"({len(auto[2]) * len(auto[3])} chunks)")
    return 0
