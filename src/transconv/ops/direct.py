"""The ``"direct"`` method: one GEMM per kernel tap over strided views.

After padding, a convolution is a sum over taps of ``W_t @ x[window_t]`` where
``window_t`` is the strided slice ``t*d :: s`` of every spatial axis; the transposed
convolution is its adjoint: ``W_t^T @ y`` *added* into the same strided slice of the
padded output, which is then folded back (the adjoint of padding: crop for zeros,
fold the padded border onto the samples it copied for the other modes).

    conv           = windows  o  pad
    conv_transpose = pad^T    o  windows^T

No column buffer: extra memory is one tap's slice at a time, plus the padded array.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..connectivity import pad_index
from ..spec import ConvSpec

__all__ = ["pad", "pad_adjoint", "conv_direct", "conv_transpose_direct", "tap_slices", "flipped_weight"]

_NUMPY_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def flipped_weight(w: np.ndarray, groups: int) -> np.ndarray:
    """A transposed convolution's weight ``(C_in, C_out/g, *k)`` as the weight ``(C_out, C_in/g, *k)`` of the
    stride-1 convolution it equals over the zero-inserted input: channels swapped within each
    group and every tap flipped (the padding is :func:`transconv.spec.transposed_as_direct_conv`'s).

    >>> flipped_weight(np.arange(6.0).reshape(2, 1, 3), 1)[0].tolist()
    [[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]
    """
    c_in, co_g = w.shape[:2]
    k = w.shape[2:]
    swapped = w.reshape((groups, c_in // groups, co_g) + k).swapaxes(1, 2)[(Ellipsis,) + (slice(None, None, -1),) * len(k)]
    return np.ascontiguousarray(swapped).reshape((groups * co_g, c_in // groups) + k)


def pad(x: np.ndarray, spec: ConvSpec) -> np.ndarray:
    """Pad the spatial axes of ``(N, C, *spatial)`` by ``spec.padding`` in ``spec.padding_mode``.

    Equal to gathering through :func:`~transconv.connectivity.pad_index`; numpy's
    ``np.pad`` is used where it implements the same rule (checked in the tests), and
    the gather where it does not (reflect padding wider than the input).
    """
    widths = [(0, 0), (0, 0)] + [tuple(p) for p in spec.padding]
    if not any(lo or hi for lo, hi in spec.padding):
        return x
    if spec.padding_mode == "zeros":
        return np.pad(x, widths)
    if spec.padding_mode == "reflect" and any(
        max(lo, hi) >= n for n, (lo, hi) in zip(x.shape[2:], spec.padding)
    ):
        for axis, (n, (lo, hi)) in enumerate(zip(x.shape[2:], spec.padding), start=2):
            if lo or hi:
                x = np.take(x, pad_index(n, lo, hi, "reflect"), axis=axis)
        return x
    return np.pad(x, widths, mode=_NUMPY_MODE[spec.padding_mode])


def pad_adjoint(xp: np.ndarray, spec: ConvSpec, shape: tuple[int, ...]) -> np.ndarray:
    """Adjoint of :func:`pad`: fold a padded array back onto spatial ``shape``.

    Every padded position adds its value to the input position it was copied from
    (``pad_index``); positions that held zeros are dropped.
    """
    for axis, (n, (lo, hi)) in enumerate(zip(shape, spec.padding), start=2):
        if not (lo or hi):
            continue
        core = [slice(None)] * xp.ndim
        core[axis] = slice(lo, lo + n)
        folded = np.array(xp[tuple(core)], copy=True)
        if spec.padding_mode != "zeros":
            index = pad_index(n, lo, hi, spec.padding_mode)
            border = np.r_[0:lo, lo + n : lo + n + hi]
            moved_from = [slice(None)] * xp.ndim
            moved_from[axis] = border
            moved_to = [slice(None)] * xp.ndim
            moved_to[axis] = index[border]
            np.add.at(folded, tuple(moved_to), xp[tuple(moved_from)])
        xp = folded
    return xp


def tap_slices(tap: tuple[int, ...], spec: ConvSpec, out_shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The strided window of the padded input that tap ``tap`` reads for every output position."""
    return tuple(
        slice(t * d, t * d + (o - 1) * s + 1, s) for t, d, s, o in zip(tap, spec.dilation, spec.stride, out_shape)
    )


def _taps(spec: ConvSpec):
    return itertools.product(*(range(k) for k in spec.kernel_size))


def conv_direct(x: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    n, c_in = x.shape[:2]
    g = spec.groups
    xp = pad(x, spec)
    out_shape = spec.conv_output_shape(x.shape[2:])
    positions = int(np.prod(out_shape))
    wg = w.reshape(g, w.shape[0] // g, c_in // g, -1)  # (G, Co/G, Ci/G, taps)
    xg = xp.reshape(n, g, c_in // g, *xp.shape[2:])
    y = np.zeros((n, g, wg.shape[1], positions), dtype=x.dtype)
    lead = (slice(None),) * 3
    single = wg.shape[1] == wg.shape[2] == 1  # one channel per group: a scaled add, not a GEMM
    for t, tap in enumerate(_taps(spec)):
        window = xg[lead + tap_slices(tap, spec, out_shape)].reshape(n, g, c_in // g, positions)
        if single:
            y += wg[:, :, :, t][None] * window
        else:
            y += np.matmul(wg[..., t], window)
    return y.reshape(n, -1, *out_shape)


def conv_transpose_direct(y: np.ndarray, w: np.ndarray, spec: ConvSpec) -> np.ndarray:
    n, c_in = y.shape[:2]
    g = spec.groups
    small = y.shape[2:]
    big = spec.transpose_output_shape(small)
    padded = spec.padded_shape(big)
    wg = w.reshape(g, c_in // g, w.shape[1], -1)  # (G, Ci_T/G, Co_T/G, taps)
    wt = np.ascontiguousarray(np.swapaxes(wg, 1, 2))  # (G, Co_T/G, Ci_T/G, taps)
    yg = y.reshape(n, g, c_in // g, -1)
    xp = np.zeros((n, g, wg.shape[2], *padded), dtype=y.dtype)
    lead = (slice(None),) * 3
    single = wt.shape[1] == wt.shape[2] == 1
    for t, tap in enumerate(_taps(spec)):
        if single:
            contribution = (wt[:, :, :, t][None] * yg).reshape(n, g, 1, *small)
        else:
            contribution = np.matmul(wt[..., t], yg).reshape(n, g, wg.shape[2], *small)
        xp[lead + tap_slices(tap, spec, small)] += contribution
    xp = xp.reshape(n, -1, *padded)
    return np.ascontiguousarray(pad_adjoint(xp, spec, big))
