"""The ``phase`` method: polyphase decomposition, computed as shifted runs (no GEMM, no scatter).

A convolution with stride ``s`` reads padded input position ``i = s * o + t * d`` for output
``o`` and tap ``t``: writing ``t * d = s * a + r``, that is position ``o + a`` of the input's
stride phase ``r`` (every ``s``-th sample from ``r``).  Split into its phases, the input is
read by every tap at a constant offset of one phase, so on the flat grid of the phases each
(input channel, tap) term adds one long unit-stride run to the output, computed at the
grid's width and cropped (:class:`ConvPhases`).  A transposed convolution splits the other
way: its output phase ``rho`` (``o = s * J + rho``) is reached only by the taps with
``(rho + pad - t * d) % s == 0``, each from input ``J + c_t``: one stride-1 correlation of
the padded input per output phase, summed the same way (:class:`TransposePhases`).  The
weight gradient reads the convolution's terms backwards (a dot product per term).

No column buffer and no GEMM: the work is ``prod(kernel)`` multiply-adds per output and
channel pair, at vector speed over L1-sized blocks, which pays where channels are few and
taps many (the GEMM of ``"gemm"`` is thin there and its column buffer many times the input).
The compiled kernels are ``_shifted_runs*`` in :mod:`transconv.ops.compiled`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np

from ..connectivity import axis_phase_runs, transpose_axis_tap_indices
from ..spec import ConvSpec
from . import compiled

__all__ = ["ConvPhases", "TransposePhases", "conv_phases", "transpose_phases", "stride_phases", "runs_ahead", "conv_phase",
           "conv_transpose_phase", "weight_grad_phase"]

ACC_BYTES = 16 * 2**10  # one task's accumulators (all output channels of a group): L1-sized


@dataclass(frozen=True)
class ConvPhases:
    """A convolution over the flat grid of its padded input's stride phases.

    Per axis, padded input position ``i = s * o + t * d`` (output ``o``, tap ``t``) is
    position ``o + (t * d) // s`` of phase ``(t * d) % s``, every phase cut to the common
    length ``L = ceil(padded / s)``: so each tap reads one phase at a constant flat offset,
    and the whole output, computed at the phase grid's width and cropped through ``keep``,
    is a sum of long unit-stride runs (with stride 1, one phase: the padded input itself).
    """

    lengths: tuple[int, ...]  # L per axis
    used: tuple[int, ...]  # the phases some tap reads (flat index), the only ones copied
    terms: np.ndarray  # (ci_g * T,) flat offset of each (input channel, tap) in a group's (ci_g, used, L) input
    keep: np.ndarray  # (P,) flat index of each output position in the phase grid
    p_start: np.ndarray  # (blocks + 1,) first output position of each block of ``block`` grid positions
    block: int
    valid: int  # grid positions the runs cover (the last kept one + 1)

    @cached_property
    def blocks(self) -> tuple[np.ndarray, ...]:
        """The arguments of the shifted-run kernel after the arrays, as one phase (see
        :class:`TransposePhases`): per block, phase 0, its first grid position, width and kept
        positions; all terms; kept positions in output order and their runs."""
        count = len(self.p_start) - 1
        q0 = np.arange(count, dtype=np.int64) * self.block
        width = np.minimum(self.valid, q0 + self.block) - q0
        dst = np.arange(len(self.keep), dtype=np.int64)
        return (np.zeros(count, dtype=np.int64), q0, width, self.p_start[:-1].copy(), self.p_start[1:].copy(),
                np.array([0, len(self.terms)], dtype=np.int64), self.terms, np.arange(len(self.terms), dtype=np.int64),
                self.keep, dst, runs_ahead(self.keep, dst))


def runs_ahead(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """For each kept position ``p``, how many from ``p`` on are consecutive in both the grid
    (``src``) and the output (``dst``): the kernels copy each such run in one loop (a copy
    per element through both index arrays took a third of a depthwise kernel's time).

    >>> runs_ahead(np.array([0, 1, 2, 5, 6]), np.array([0, 1, 2, 3, 4])).tolist()
    [3, 2, 1, 2, 1]
    """
    count = len(src)
    joined = np.zeros(count, dtype=bool)
    joined[:-1] = (np.diff(src) == 1) & (np.diff(dst) == 1)
    ends = np.flatnonzero(~joined)  # the last position of every run
    index = np.arange(count)
    runs = (ends[np.searchsorted(ends, index)] - index + 1).astype(np.int64)
    runs.setflags(write=False)
    return runs


def conv_grid(spec: ConvSpec, big: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(lengths, used)`` of a convolution of input ``big``: the common length per axis of its
    padded input's stride phases, and the flat indices (in ``spec.stride``) of the phases
    some tap reads, ascending (dilation = stride reads one).

    >>> from transconv.spec import conv_spec
    >>> conv_grid(conv_spec("conv", (9,), 3, stride=2, padding=1), (9,))
    ((6,), (0, 1))
    """
    lengths = tuple(-(-p // s) for p, s in zip(spec.padded_shape(big), spec.stride))
    residues = [sorted({t * d % s for t in range(k)}) for k, s, d in zip(spec.kernel_size, spec.stride, spec.dilation)]
    used = np.ravel_multi_index(tuple(np.meshgrid(*residues, indexing="ij")), spec.stride).reshape(-1)
    return lengths, tuple(int(u) for u in used)


def transpose_grid(spec: ConvSpec, small: tuple[int, ...]) -> tuple[list, tuple[int, ...], tuple[int, ...]]:
    """``(axes, lead, lengths)`` of a transposed convolution of input ``small``: per axis and
    output residue ``rho``, the ``(tap, c_t)`` pairs reaching it (input ``J + c_t`` feeds output
    ``s * J + rho``), read off the connectivity (``axis_phase_runs``: ``c_t = -shift[t]``, taps
    that reach no output left out); per axis, the zeros padded before the input and the
    padded input's length.  Other padding modes fold in after, so their geometry is zeros'.

    >>> from transconv.spec import conv_transpose_spec
    >>> transpose_grid(conv_transpose_spec("conv_transpose", (4,), 3, stride=2, padding=1), (4,))
    ([[[(1, 0)], [(0, 1), (2, 0)]]], (0,), (5,))
    """
    big = spec.transpose_output_shape(small)
    maps = transpose_axis_tap_indices(replace(spec, padding_mode="zeros"), small)
    axes = []
    for m, s, n_big in zip(maps, spec.stride, big):
        lo, hi, rho, shift = axis_phase_runs(m, s)
        axes.append([[(t, -int(shift[t])) for t in range(len(lo)) if hi[t] > lo[t] and rho[t] == r]
                     for r in range(min(s, n_big))])
    lead, lengths = [], []
    for residues, n_small, n_big, s in zip(axes, small, big, spec.stride):
        offsets = [c for taps in residues for _, c in taps] or [0]
        lead.append(max(0, -min(offsets)))
        lengths.append(max(n_small, -(-n_big // s) + max(offsets)) + lead[-1])
    return axes, tuple(lead), tuple(lengths)


def _block(co_g: int) -> int:
    """Grid positions per block: the accumulators of a group's output channels fill about L1."""
    return int(max(64, min(4096, ACC_BYTES // 4 // max(1, co_g))))


def _block_starts(keep: np.ndarray, valid: int, block: int) -> np.ndarray:
    """For each block of ``block`` grid positions in ``[0, valid)``, its first kept position (and the end)."""
    return np.searchsorted(keep, np.arange(0, valid + block, block)[: -(-valid // block) + 1]).astype(np.int64)


@lru_cache(maxsize=64)
def conv_phases(spec: ConvSpec, big: tuple[int, ...], ci_g: int, co_g: int,
                small: tuple[int, ...] | None = None) -> ConvPhases:
    """The :class:`ConvPhases` of a convolution of input ``big`` with ``ci_g`` input and ``co_g``
    output channels per group, on the output grid ``small`` (by default the whole output)."""
    stride = np.array(spec.stride)
    lengths, used = conv_grid(spec, big)
    small = spec.conv_output_shape(big) if small is None else small
    reach = np.indices(spec.kernel_size).reshape(spec.ndim, -1) * np.array(spec.dilation)[:, None]
    phase_of_tap = np.searchsorted(used, np.ravel_multi_index(tuple(reach % stride[:, None]), spec.stride))
    pitch = np.cumprod((lengths[1:] + (1,))[::-1])[::-1]
    offsets = ((reach // stride[:, None]) * pitch[:, None]).sum(axis=0).astype(np.int64)
    keep = np.ravel_multi_index(np.indices(small).reshape(spec.ndim, -1), lengths).astype(np.int64)
    valid = int(keep[-1]) + 1 if keep.size else 0
    block = _block(co_g)
    p_start = _block_starts(keep, valid, block)
    grid = math.prod(lengths)
    channel = np.arange(ci_g, dtype=np.int64)[:, None] * (len(used) * grid)
    terms = (channel + phase_of_tap[None] * grid + offsets[None]).reshape(-1)
    for a in terms, keep, p_start:
        a.setflags(write=False)
    return ConvPhases(lengths, used, terms, keep, p_start, block, valid)


def stride_phases(x: np.ndarray, spec: ConvSpec, lengths: tuple[int, ...], used: tuple[int, ...]) -> np.ndarray:
    """``(N, C, len(used) * prod(lengths))``: the stride phases ``used`` (flat indices) of the
    zero-padded input, each on the common grid ``lengths`` (padding and ragged tails zero), in
    one strided copy per phase straight from ``x``.  With stride 1 and no padding, a view of ``x``."""
    n, c = x.shape[:2]
    if all(s == 1 for s in spec.stride) and not any(lo or hi for lo, hi in spec.padding):
        return x.reshape(n, c, -1)
    phases = np.zeros((n, c, len(used)) + lengths, dtype=x.dtype)
    for k, rho in enumerate(np.unravel_index(u, spec.stride) for u in used):
        # phase position j holds padded position s*j + rho, input position s*j + rho - lo
        source, target = [slice(None), slice(None)], [slice(None), slice(None), k]
        for r, s, (lo, _), size, length in zip(rho, spec.stride, spec.padding, x.shape[2:], lengths):
            j0 = max(0, -(-(lo - r) // s))  # the first phase position inside the input
            j1 = min(length, (size - 1 + lo - r) // s + 1)
            j1 = max(j0, j1)
            first = s * j0 + r - lo
            source.append(slice(first, first + s * (j1 - j0), s) if j1 > j0 else slice(0, 0))
            target.append(slice(j0, j1))
        phases[tuple(target)] = x[tuple(source)]
    return phases.reshape(n, c, -1)


@compiled.zero_padded(transposed=False)
def conv_phase(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """A convolution as shifted runs of its input's stride phases (:class:`ConvPhases`): no
    column buffer and no GEMM, so it pays where few channels make a GEMM thin and its column
    buffer many times the input (small channel counts, many taps)."""
    n, c_out = x.shape[0], w.shape[0]
    co_g = c_out // spec.groups
    geometry = conv_phases(spec, x.shape[2:], w.shape[1], co_g)
    small = spec.conv_output_shape(x.shape[2:])
    phases = stride_phases(x, spec, geometry.lengths, geometry.used)
    out = np.empty((n, c_out, math.prod(small)), dtype=x.dtype)
    serial = compiled.SERIAL_ONLY or n * c_out * len(geometry.terms) * geometry.valid < compiled._SERIAL_BELOW
    kernel = compiled._shifted_runs_serial if serial else compiled._shifted_runs
    # one phase: every block of the grid reads all terms, keeps its output positions in order
    kernel(phases.reshape(n, -1), w.reshape(c_out, -1), out, co_g, *geometry.blocks)
    return out.reshape((n, c_out) + small)


@dataclass(frozen=True)
class TransposePhases:
    """A transposed convolution as one stride-1 correlation per output phase, over the flat
    grid of its zero-padded input.

    Per axis, output ``o = s * J + rho`` receives tap ``t`` from input ``i = J + c_t`` exactly
    when ``c_t = (rho + pad_lo - t * d) / s`` is an integer: each phase ``rho`` is a sum of
    shifted runs of the input (offset ``c_t``, after padding the input by ``lead`` on the
    low side), computed on the padded grid's width and written to its interleaved positions.
    """

    lead: tuple[int, ...]  # zeros before the input, per axis
    lengths: tuple[int, ...]  # the padded input grid
    phase_ptr: np.ndarray  # (phases + 1,) each phase's terms
    term_off: np.ndarray  # flat offset of each term (input channel, tap) in a group's padded input
    term_w: np.ndarray  # its column of the weight row (ci * T + t)
    blk_phase: np.ndarray  # per block of a phase's grid: the phase, first grid position, width,
    blk_q0: np.ndarray  # and its range of kept positions
    blk_width: np.ndarray
    blk_k0: np.ndarray
    blk_k1: np.ndarray
    keep_src: np.ndarray  # kept positions: grid index
    keep_dst: np.ndarray  # and flat output index
    keep_run: np.ndarray  # and the run ahead of each (runs_ahead)

    @property
    def blocks(self) -> tuple[np.ndarray, ...]:
        """The arguments of the shifted-run kernel after the arrays (``compiled._shifted_runs_py``)."""
        return (self.blk_phase, self.blk_q0, self.blk_width, self.blk_k0, self.blk_k1, self.phase_ptr, self.term_off,
                self.term_w, self.keep_src, self.keep_dst, self.keep_run)


@lru_cache(maxsize=64)
def transpose_phases(spec: ConvSpec, small: tuple[int, ...], ci_g: int, co_g: int) -> TransposePhases:
    """The :class:`TransposePhases` of a transposed convolution of input ``small``."""
    big = spec.transpose_output_shape(small)
    axes, lead, lengths = transpose_grid(spec, small)
    grid = math.prod(lengths)
    pitch = np.cumprod((tuple(lengths[1:]) + (1,))[::-1])[::-1]
    T = math.prod(spec.kernel_size)
    block = _block(co_g)
    phase_ptr, term_off, term_w = [0], [], []
    blocks, keep_src, keep_dst = [], [], []
    kept = 0
    for ph, rho in enumerate(itertools.product(*(range(len(r)) for r in axes))):
        taps = [axes[a][r] for a, r in enumerate(rho)]
        for ci in range(ci_g):
            for pick in itertools.product(*taps):
                t_flat = int(np.ravel_multi_index(tuple(t for t, _ in pick), spec.kernel_size))
                off = int(sum((c + l) * pt for (_, c), l, pt in zip(pick, lead, pitch)))
                term_off.append(ci * grid + off)
                term_w.append(ci * T + t_flat)
        phase_ptr.append(len(term_off))
        counts = [-(-(n - r) // s) for n, r, s in zip(big, rho, spec.stride)]
        J = np.indices(counts).reshape(len(counts), -1)
        src = np.ravel_multi_index(tuple(J), lengths)
        dst = np.ravel_multi_index(tuple(J * np.array(spec.stride)[:, None] + np.array(rho)[:, None]), big)
        valid = int(src[-1]) + 1 if src.size else 0
        starts = _block_starts(src, valid, block)
        for q0, k0, k1 in zip(range(0, valid, block), starts[:-1], starts[1:]):
            blocks.append((ph, q0, min(valid, q0 + block) - q0, kept + k0, kept + k1))
        keep_src.append(src.astype(np.int64, copy=False))
        keep_dst.append(dst.astype(np.int64, copy=False))
        kept += src.size
    arrays = [np.asarray(v, dtype=np.int64) for v in (phase_ptr, term_off, term_w)]
    columns = np.asarray(blocks, dtype=np.int64).reshape(-1, 5).T
    # one table entry per output position, as arrays (Python lists of them took 3x the output's memory)
    keep_src, keep_dst = (np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for v in (keep_src, keep_dst))
    arrays += [np.ascontiguousarray(c) for c in columns] + [keep_src, keep_dst, runs_ahead(keep_src, keep_dst)]
    for a in arrays:
        a.setflags(write=False)
    return TransposePhases(lead, lengths, *arrays)


@compiled.zero_padded(transposed=True)
def conv_transpose_phase(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """A transposed convolution as one stride-1 correlation per output phase
    (:class:`TransposePhases`), summed as shifted runs: no GEMM, no scatter."""
    n, c_in = y.shape[:2]
    g = spec.groups
    ci_g, co_g = c_in // g, w.shape[1]
    geometry = transpose_phases(spec, y.shape[2:], ci_g, co_g)
    big = spec.transpose_output_shape(y.shape[2:])
    ypad = np.zeros((n, c_in) + geometry.lengths, dtype=y.dtype)
    ypad[(slice(None), slice(None)) + tuple(slice(l, l + m) for l, m in zip(geometry.lead, y.shape[2:]))] = y
    # the weight as rows of output channels: wt[g * co_g + co, ci * T + t] = w[g * ci_g + ci, co, t]
    T = math.prod(spec.kernel_size)
    wt = np.ascontiguousarray(w.reshape(g, ci_g, co_g, T).transpose(0, 2, 1, 3)).reshape(g * co_g, ci_g * T)
    out = np.empty((n, g * co_g, math.prod(big)), dtype=y.dtype)
    adds = n * g * co_g * len(geometry.term_off) * int(geometry.blk_width.sum()) // max(1, len(geometry.phase_ptr) - 1)
    serial = compiled.SERIAL_ONLY or adds < compiled._SERIAL_BELOW
    kernel = compiled._shifted_runs_serial if serial else compiled._shifted_runs
    kernel(ypad.reshape(n, -1), wt, out, co_g, *geometry.blocks)
    return out.reshape((n, g * co_g) + big)


@compiled.zero_padded(transposed=False)  # g in the weight's place: other padding modes pad x first
def weight_grad_phase(x: np.ndarray, g: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """``dW[c, (ci, t)]`` of a convolution from its unpadded input ``x`` and the gradient ``g``
    (see :mod:`transconv.ops.weight_grad`): the terms of :func:`conv_phase` read backwards, no
    column buffer; extra memory is the stride phases (zero padding is part of their copy; none
    at stride 1 without padding) and one partial weight per sample."""
    n, c_out = g.shape[:2]
    co_g, ci_g = c_out // spec.groups, x.shape[1] // spec.groups
    geometry = conv_phases(spec, x.shape[2:], ci_g, co_g, tuple(g.shape[2:]))
    phases = stride_phases(x, spec, geometry.lengths, geometry.used)
    parts = np.empty((c_out, n, len(geometry.terms)), dtype=g.dtype)
    serial = compiled.SERIAL_ONLY or n * c_out * len(geometry.terms) * geometry.valid < compiled._SERIAL_BELOW
    kernel = compiled._shifted_runs_weight_grad_serial if serial else compiled._shifted_runs_weight_grad
    kernel(phases.reshape(n, -1), g.reshape(n, c_out, -1), parts, co_g, geometry.terms, geometry.keep,
           geometry.p_start, geometry.block, geometry.valid)
    return parts.sum(axis=1)
