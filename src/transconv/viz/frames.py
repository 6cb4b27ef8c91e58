"""Frames as data: what is active at every step of a convolution or transposed convolution.

No plotting here.  :func:`frames` is a pure function from a geometry (a
:class:`~transconv.spec.ConvSpec`), an input shape and the direction to an
:class:`Animation`: two canvases (the input side and the output side, with every cell
labelled input / padding / inserted zero / output / cropped) and a sequence of
:class:`Frame` objects saying which input cells, kernel taps and output cells are
active at each step.  Every (input, tap, output) triple is read from
:mod:`transconv.connectivity`, the same maps the operators use, so summing
``w[tap] * x[input]`` into ``y[output]`` over all frames *is* the operation (see
:func:`accumulate`).

Two views:

``"direct"``
    The kernel slides over the input side, one output cell per step.  For a
    convolution the input side is the padded input; for a transposed convolution it is
    the input with ``stride - 1`` zeros inserted between neighbours, padded by
    ``k_eff - 1 - padding`` (cropped where that is negative), and the kernel is read
    flipped (Dumoulin & Visin's figures).
``"scatter"``
    One input value per step, spread through the kernel into the output side.  For a
    transposed convolution the output side is drawn with the cropped border
    (``padding``) that the contributions falling outside the output land in.

The worked example's transposed convolution: input ``[[2, 1], [4, 4]]``, 3x3 kernel.

>>> from transconv.spec import conv_transpose_spec
>>> spec = conv_transpose_spec("conv_transpose", (2, 2), 3)
>>> anim = frames(spec, (2, 2), transposed=True, view="scatter")
>>> len(anim.frames), anim.output_shape
(4, (4, 4))
>>> len(anim.frames[0].outputs)          # one input value reaches 9 outputs
9
>>> y = accumulate(anim, [[2, 1], [4, 4]], [[1, 4, 1], [1, 4, 3], [3, 3, 1]])[-1]
>>> y.astype(int).tolist()
[[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..connectivity import axis_forward_tables, axis_inverse_csr, pad_index
from ..errors import TransconvError
from ..spec import ConvSpec, per_axis, spatial_shape, transposed_as_direct_conv, validate_call

__all__ = [
    "INPUT",
    "PADDING",
    "INSERTED",
    "OUTPUT",
    "CROPPED",
    "KIND_NAMES",
    "Canvas",
    "Frame",
    "Animation",
    "frames",
    "make_spec",
    "accumulate",
    "example_input",
    "example_kernel",
    "shape_formula",
    "WORKED_X",
    "WORKED_K",
    "WORKED_Y",
]

# Cell kinds of a canvas.
INPUT, PADDING, INSERTED, OUTPUT, CROPPED = 0, 1, 2, 3, 4
KIND_NAMES = ("input", "padding", "inserted zero", "output", "cropped")

WORKED_X = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]], dtype=float)
WORKED_K = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=float)
WORKED_Y = np.array([[2, 1], [4, 4]], dtype=float)

Index = tuple[int, ...]


@dataclass(frozen=True)
class Canvas:
    """One side of a picture: a grid of cells, each an element of an array or not.

    Attributes
    ----------
    role : {"input", "output"}
        Which array of the operation the cells show.
    kind : numpy.ndarray of int8
        Per cell, one of :data:`INPUT`, :data:`PADDING`, :data:`INSERTED`,
        :data:`OUTPUT`, :data:`CROPPED`.
    source : numpy.ndarray of int64
        Per cell, the flat (C-order) index of the array element it shows, or ``-1``
        (a zero: padding, an inserted zero, or a cropped cell).  Reflect / replicate /
        circular padding cells show the input element they copy.
    """

    role: str
    kind: np.ndarray
    source: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.kind.shape

    def cells_of(self, index: Index, array_shape: Sequence[int]) -> list[Index]:
        """Canvas cells that show array element ``index`` as a real (non-padding) cell."""
        flat = int(np.ravel_multi_index(index, tuple(array_shape)))
        hits = np.argwhere((self.source == flat) & ((self.kind == INPUT) | (self.kind == OUTPUT)))
        return [tuple(int(v) for v in h) for h in hits]


@dataclass(frozen=True)
class Frame:
    """What is active at one step.

    Attributes
    ----------
    step : int
    anchor : index
        The one cell the step is about: the output element computed (direct view) or the
        input element spread (scatter view).
    window : tuple of cell indices
        Cells of the *moving* canvas (:attr:`Animation.moving`) under the kernel, one per
        tap, in the order of ``window_taps``.  In the direct view they include padding
        and inserted zeros; in the scatter view of a transposed convolution they include
        cropped cells.
    window_taps : tuple of kernel indices
        The weight tap (in the weight's own indexing, not flipped) over each window cell.
    pairs : tuple of (input, tap, output) index triples
        The multiply-adds of this step, straight from the connectivity: ``y[output] +=
        w[tap] * x[input]`` (``x`` the operation's input, ``y`` its output).
    """

    step: int
    anchor: Index
    window: tuple[Index, ...]
    window_taps: tuple[Index, ...]
    pairs: tuple[tuple[Index, Index, Index], ...]

    @property
    def inputs(self) -> tuple[Index, ...]:
        """Input elements that contribute at this step (sorted, unique)."""
        return tuple(sorted({p[0] for p in self.pairs}))

    @property
    def taps(self) -> tuple[Index, ...]:
        """Kernel taps that meet a real input at this step (sorted, unique)."""
        return tuple(sorted({p[1] for p in self.pairs}))

    @property
    def outputs(self) -> tuple[Index, ...]:
        """Output elements that receive a contribution at this step (sorted, unique)."""
        return tuple(sorted({p[2] for p in self.pairs}))


@dataclass(frozen=True)
class Animation:
    """A whole picture sequence: geometry, the two canvases and the frames.

    ``source`` is the input side, ``dest`` the output side; ``moving`` names the one the
    kernel window travels over (``"source"`` in the direct view, ``"dest"`` in the scatter
    view).  ``matrix_shape`` is the shape of the operation's matrix (``C`` for a
    convolution, ``C^T`` for a transposed one): rows are output elements, columns input
    elements, both flattened in C order.
    """

    spec: ConvSpec
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    transposed: bool
    view: str
    source: Canvas
    dest: Canvas
    moving: str
    frames: tuple[Frame, ...]

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return (int(np.prod(self.output_shape)), int(np.prod(self.input_shape)))

    def matrix_entries(self, frame: Frame) -> tuple[tuple[int, int], ...]:
        """``(row, column)`` entries of the operation's matrix that ``frame`` uses."""
        return tuple(
            (int(np.ravel_multi_index(o, self.output_shape)), int(np.ravel_multi_index(i, self.input_shape)))
            for i, _, o in frame.pairs
        )

    def matrix_rows(self, frame: Frame) -> tuple[int, ...]:
        """Rows of the matrix highlighted at ``frame`` (direct view: the one output computed)."""
        if self.view == "direct":
            return (int(np.ravel_multi_index(frame.anchor, self.output_shape)),)
        return tuple(sorted({r for r, _ in self.matrix_entries(frame)}))

    def matrix_cols(self, frame: Frame) -> tuple[int, ...]:
        """Columns highlighted at ``frame`` (scatter view: the one input spread)."""
        if self.view == "scatter":
            return (int(np.ravel_multi_index(frame.anchor, self.input_shape)),)
        return tuple(sorted({c for _, c in self.matrix_entries(frame)}))


def _frame(step: int, anchor: Index, window, window_taps, pairs) -> Frame:
    return Frame(step, tuple(anchor), tuple(window), tuple(window_taps), tuple(pairs))


# --------------------------------------------------------------------------------------
# Specs from plain arguments.
# --------------------------------------------------------------------------------------


def make_spec(
    input_shape: Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    output_padding: Any = 0,
    transposed: bool = False,
    padding_mode: str = "zeros",
) -> ConvSpec:
    """The spec of a single-channel picture, through the one boundary :func:`transconv.spec.validate_call`.

    >>> make_spec((3, 3), 3, stride=2, padding=1, output_padding=1, transposed=True).transpose_output_shape((3, 3))
    (6, 6)
    """
    op = "conv_transpose" if transposed else "conv"
    spatial = spatial_shape(op, input_shape)
    if not transposed and any(per_axis(op, "output_padding", output_padding, len(spatial), 0)):
        raise TransconvError(f"conv: output_padding only applies to a transposed convolution, got {output_padding!r}")
    kernel = per_axis(op, "kernel_size", kernel_size, len(spatial), 1)
    return validate_call(op, transposed, None, kernel, input_shape=spatial, plain=True, stride=stride, padding=padding,
                         dilation=dilation, output_padding=output_padding, padding_mode=padding_mode).spec


# --------------------------------------------------------------------------------------
# Canvases, per axis then combined.
# --------------------------------------------------------------------------------------


def _combine(kinds: list[np.ndarray], sources: list[np.ndarray], shape: Sequence[int], role: str) -> Canvas:
    grids_k = np.meshgrid(*kinds, indexing="ij")
    grids_s = np.meshgrid(*sources, indexing="ij")
    valid = np.ones(grids_s[0].shape, dtype=bool)
    for g in grids_s:
        valid &= g >= 0
    flat = np.where(valid, np.ravel_multi_index(tuple(np.where(valid, g, 0) for g in grids_s), tuple(shape)), -1)
    kind = np.full(grids_k[0].shape, INPUT if role == "input" else OUTPUT, dtype=np.int8)
    # precedence: padding / cropped beats inserted zero beats real cell
    inserted = np.zeros(kind.shape, dtype=bool)
    outside = np.zeros(kind.shape, dtype=bool)
    for g in grids_k:
        inserted |= g == INSERTED
        outside |= (g == PADDING) | (g == CROPPED)
    kind[inserted] = INSERTED
    kind[outside] = PADDING if role == "input" else CROPPED
    kind.setflags(write=False)
    flat = flat.astype(np.int64)
    flat.setflags(write=False)
    return Canvas(role, kind, flat)


def _plain_canvas(shape: Sequence[int], role: str) -> Canvas:
    kinds = [np.full(n, INPUT if role == "input" else OUTPUT, dtype=np.int8) for n in shape]
    return _combine(kinds, [np.arange(n) for n in shape], shape, role)


def _conv_input_canvas(spec: ConvSpec, shape: Sequence[int]) -> Canvas:
    kinds, sources = [], []
    for n, (lo, hi) in zip(shape, spec.padding):
        src = pad_index(int(n), lo, hi, spec.padding_mode)
        pos = np.arange(lo + n + hi)
        kinds.append(np.where((pos >= lo) & (pos < lo + n), INPUT, PADDING).astype(np.int8))
        sources.append(src)
    return _combine(kinds, sources, shape, "input")



def _transposed_input_canvas(spec: ConvSpec, shape: Sequence[int]) -> Canvas:
    """Zero-inserted, padded input (the guide's picture of a transposed convolution)."""
    eq = transposed_as_direct_conv(spec)
    kinds, sources = [], []
    for n, s, (plo, phi) in zip(shape, spec.stride, eq.padding):
        m = (n - 1) * s + 1
        q = np.arange(plo + m + phi) - plo  # position in the zero-inserted input
        inside = (q >= 0) & (q < m)
        on_input = inside & (np.mod(q, s) == 0)
        kinds.append(np.where(on_input, INPUT, np.where(inside, INSERTED, PADDING)).astype(np.int8))
        sources.append(np.where(on_input, q // s, -1))
    return _combine(kinds, sources, shape, "input")


def _transposed_output_canvas(spec: ConvSpec, out_shape: Sequence[int]) -> Canvas:
    """The transposed output with its cropped border (the convolution's padding)."""
    kinds, sources = [], []
    for o, (lo, hi) in zip(out_shape, spec.padding):
        pos = np.arange(lo + o + hi)
        inside = (pos >= lo) & (pos < lo + o)
        kinds.append(np.where(inside, OUTPUT, CROPPED).astype(np.int8))
        sources.append(np.where(inside, pos - lo, -1))
    return _combine(kinds, sources, out_shape, "output")


# --------------------------------------------------------------------------------------
# Frames.
# --------------------------------------------------------------------------------------


def _product(ranges: Sequence[int]):
    return itertools.product(*(range(int(r)) for r in ranges))


def frames(spec: ConvSpec, input_shape: Sequence[int], transposed: bool = False, view: str = "direct") -> Animation:
    """Every step of ``spec`` applied to an input of spatial shape ``input_shape``.

    Parameters
    ----------
    spec : ConvSpec
        The geometry (see :func:`make_spec`).  ``groups`` and channels play no part.
    input_shape : sequence of int
        Spatial shape of the operation's input (the small side when ``transposed``).
    transposed : bool
        Draw the transposed convolution (``conv_transpose``) instead of ``conv``.
    view : {"direct", "scatter"}
        One step per output cell (the kernel slides over the input side) or one step per
        input cell (the input value spreads through the kernel into the output).

    The convolution of the worked example, first step: the top-left 3x3 window.

    >>> from transconv.spec import conv_spec
    >>> anim = frames(conv_spec("conv", (4, 4), 3), (4, 4))
    >>> f = anim.frames[0]
    >>> f.inputs[:4], len(f.pairs), f.anchor
    (((0, 0), (0, 1), (0, 2), (1, 0)), 9, (0, 0))
    """
    input_shape = tuple(int(n) for n in input_shape)
    if len(input_shape) != spec.ndim:
        raise TransconvError(
            f"frames: input_shape {input_shape} has {len(input_shape)} axes but the spec has {spec.ndim}"
        )
    if view not in ("direct", "scatter"):
        raise TransconvError(f"frames: view must be 'direct' or 'scatter', got {view!r}")
    if transposed and view == "direct" and spec.padding_mode != "zeros":
        raise TransconvError(
            f"frames: the zero-insertion (direct) view of a transposed convolution needs padding_mode='zeros', "
            f"got {spec.padding_mode!r}; use view='scatter'"
        )
    if (view == "scatter") == bool(transposed):  # the kernel walks the small grid
        return _small_grid_steps(spec, input_shape, bool(transposed))
    return _transposed_direct(spec, input_shape) if transposed else _conv_scatter(spec, input_shape)


def _small_grid_steps(spec: ConvSpec, shape: Index, transposed: bool) -> Animation:
    """One step per small-grid position, its taps in order: a convolution's output reading its
    window (direct view), or a transposed convolution's input spreading into its outputs (scatter)."""
    if transposed:
        small, out_shape = shape, spec.transpose_output_shape(shape)
        tables = axis_forward_tables(spec, small)
    else:
        small = out_shape = spec.conv_output_shape(shape)
        tables = axis_forward_tables(spec, small, shape)
    taps = list(_product(spec.kernel_size))
    steps = []
    for step, anchor in enumerate(_product(small)):
        reached = _reached(tables, anchor, taps)
        pairs = [(anchor, t, b) for t, b in reached] if transposed else [(b, t, anchor) for t, b in reached]
        steps.append(_frame(step, anchor, _strided_window(spec, anchor, taps), taps, pairs))
    if transposed:
        source, dest = _plain_canvas(shape, "input"), _transposed_output_canvas(spec, out_shape)
        return Animation(spec, shape, out_shape, True, "scatter", source, dest, "dest", tuple(steps))
    source, dest = _conv_input_canvas(spec, shape), _plain_canvas(out_shape, "output")
    return Animation(spec, shape, out_shape, False, "direct", source, dest, "source", tuple(steps))


def _conv_scatter(spec: ConvSpec, shape: Index) -> Animation:
    """One step per input: the outputs whose window reads it."""
    out_shape = spec.conv_output_shape(shape)
    inverse = axis_inverse_csr(spec, out_shape, shape)
    steps = []
    for step, j in enumerate(_product(shape)):
        reached = _pairs_for(j, inverse)
        steps.append(_frame(step, j, [o for _, o in reached], [t for t, _ in reached], [(j, t, o) for t, o in reached]))
    source, dest = _conv_input_canvas(spec, shape), _plain_canvas(out_shape, "output")
    return Animation(spec, shape, out_shape, False, "scatter", source, dest, "dest", tuple(steps))


def _transposed_direct(spec: ConvSpec, shape: Index) -> Animation:
    """One step per output: the flipped kernel over the zero-inserted, padded input (the guide's picture)."""
    out_shape = spec.transpose_output_shape(shape)
    inverse = axis_inverse_csr(spec, shape)
    offsets = list(_product(spec.kernel_size))
    flipped = [tuple(k - 1 - u for k, u in zip(spec.kernel_size, offset)) for offset in offsets]  # offset u holds tap k-1-u
    steps = []
    for step, o in enumerate(_product(out_shape)):
        window = [tuple(oa + u * d for oa, u, d in zip(o, offset, spec.dilation)) for offset in offsets]
        steps.append(_frame(step, o, window, flipped, [(j, t, o) for t, j in _pairs_for(o, inverse)]))
    source, dest = _transposed_input_canvas(spec, shape), _plain_canvas(out_shape, "output")
    return Animation(spec, shape, out_shape, True, "direct", source, dest, "source", tuple(steps))


def _strided_window(spec: ConvSpec, anchor: Index, taps: list[Index]) -> list[Index]:
    """The padded-grid cells that small-grid position ``anchor`` meets through each tap."""
    return [tuple(a * s + t * d for a, t, s, d in zip(anchor, tap, spec.stride, spec.dilation)) for tap in taps]


def _reached(tables, anchor: Index, taps: list[Index]) -> list[tuple[Index, Index]]:
    """``(tap, big-grid position)`` for the taps of small-grid ``anchor`` that meet no padding, in tap order."""
    reached = []
    for tap in taps:
        partner = tuple(int(m[a, t]) for m, a, t in zip(tables, anchor, tap))
        if min(partner) >= 0:
            reached.append((tap, partner))
    return reached


def _pairs_for(anchor: Index, inverse) -> list[tuple[Index, Index]]:
    """``(tap, small-grid position)`` for every combination across axes of the per-axis inverse tables
    that reaches big-grid ``anchor``, ordered by tap, then position."""
    lists = [inverse[a].pairs(v) for a, v in enumerate(anchor)]
    reached = [(tuple(t for _, t in combo), tuple(p for p, _ in combo)) for combo in itertools.product(*lists)]
    return sorted(reached)


# --------------------------------------------------------------------------------------
# Values.
# --------------------------------------------------------------------------------------


def accumulate(anim: Animation, x: Any, w: Any) -> list[np.ndarray]:
    """Partial outputs after each frame: ``y[output] += w[tap] * x[input]`` over the frames' pairs.

    ``x`` has the animation's input shape and ``w`` its kernel shape (plain arrays, no
    channels).  The last entry is the operation's result.
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(w, dtype=float)
    if x.shape != anim.input_shape:
        raise TransconvError(f"accumulate: x must have shape {anim.input_shape}, got {x.shape}")
    if w.shape != anim.spec.kernel_size:
        raise TransconvError(f"accumulate: w must have shape {anim.spec.kernel_size}, got {w.shape}")
    y = np.zeros(anim.output_shape)
    history = []
    for f in anim.frames:
        for i, t, o in f.pairs:
            y[o] += w[t] * x[i]
        history.append(y.copy())
    return history


def example_input(shape: Sequence[int]) -> np.ndarray:
    """Small integers to draw: the worked example's arrays for their shapes, else a fixed pattern 1..9.

    >>> example_input((2, 2)).astype(int).tolist()
    [[2, 1], [4, 4]]
    >>> example_input((3,)).astype(int).tolist()
    [1, 4, 7]
    """
    shape = tuple(int(n) for n in shape)
    if shape == (4, 4):
        return WORKED_X.copy()
    if shape == (2, 2):
        return WORKED_Y.copy()
    grid = np.indices(shape)
    weights = [3, 5, 7][: len(shape)] if len(shape) <= 3 else list(range(3, 3 + 2 * len(shape), 2))
    value = sum(wt * g for wt, g in zip(reversed(weights), grid))
    return (np.mod(value, 9) + 1).astype(float)


def example_kernel(kernel_size: Sequence[int]) -> np.ndarray:
    """The worked example's kernel for 3x3, else the taps numbered 1, 2, ... in C order.

    >>> example_kernel((2, 2)).astype(int).tolist()
    [[1, 2], [3, 4]]
    """
    kernel_size = tuple(int(k) for k in kernel_size)
    if kernel_size == (3, 3):
        return WORKED_K.copy()
    return np.arange(1, int(np.prod(kernel_size)) + 1, dtype=float).reshape(kernel_size)


def shape_formula(spec: ConvSpec, input_shape: Sequence[int], transposed: bool) -> list[str]:
    """The output-size formula with the numbers filled in, one line per axis.

    >>> from transconv.spec import conv_transpose_spec
    >>> shape_formula(conv_transpose_spec("t", (3,), 3, 2, 1, 1), (3,), True)[0]
    'o = (i-1)*s - p_lo - p_hi + d*(k-1) + 1 + output_padding = (3-1)*2 - 1 - 1 + 1*(3-1) + 1 + 1 = 6'
    """
    lines = []
    if transposed:
        out = spec.transpose_output_shape(input_shape)
        for i, k, s, (lo, hi), d, a, o in zip(
            input_shape, spec.kernel_size, spec.stride, spec.padding, spec.dilation, spec.output_padding, out
        ):
            lines.append(
                f"o = (i-1)*s - p_lo - p_hi + d*(k-1) + 1 + output_padding = "
                f"({i}-1)*{s} - {lo} - {hi} + {d}*({k}-1) + 1 + {a} = {o}"
            )
    else:
        out = spec.conv_output_shape(input_shape)
        for i, k, s, (lo, hi), d, o in zip(input_shape, spec.kernel_size, spec.stride, spec.padding, spec.dilation, out):
            lines.append(
                f"o = floor((i + p_lo + p_hi - d*(k-1) - 1) / s) + 1 = "
                f"floor(({i} + {lo} + {hi} - {d}*({k}-1) - 1) / {s}) + 1 = {o}"
            )
    return lines
