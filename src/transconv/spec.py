"""Geometry: argument normalisation and every output-size relationship.

Every public entry point turns its ``int | tuple | pairs | "same"`` arguments into one
frozen :class:`ConvSpec` here, once.  Nothing past this module sees anything but
per-axis integer tuples and explicit ``(lo, hi)`` padding pairs.

Shape arithmetic (per spatial axis, ``k_eff = dilation * (kernel - 1) + 1``)::

    conv:            o = floor((i + lo + hi - k_eff) / stride) + 1
    conv_transpose:  o = (i - 1) * stride - lo - hi + k_eff + output_padding

The transposed formula is the conv formula solved for its input: a conv with the same
spec maps an input of length ``o`` back to ``i`` whenever ``output_padding < stride``
(the ``stride`` input lengths ``o_min .. o_min + stride - 1`` all convolve down to the
same ``i``; ``output_padding`` picks one of them).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import TransconvError

__all__ = [
    "ConvSpec",
    "PADDING_MODES",
    "conv_spec",
    "conv_transpose_spec",
    "effective_kernel",
    "conv_output_length",
    "conv_transpose_output_length",
    "output_padding_for_size",
    "same_padding",
    "transpose_same_padding",
    "dumoulin",
    "transposed_as_direct_conv",
    "solve_geometry",
    "GeometryChoice",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

Pair = tuple[int, int]


# --------------------------------------------------------------------------------------
# Small validators.  Each raises TransconvError naming op, parameter, value and range.
# --------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int(op: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, numbers.Real) and not _is_int(value):
        if isinstance(value, float) and math.isnan(value):
            raise TransconvError(f"{op}: {name} must be an integer >= {minimum}, got NaN")
        if isinstance(value, bool):
            raise TransconvError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")
        raise TransconvError(f"{op}: {name} must be an integer >= {minimum}, got {value!r} (a non-integer)")
    if not _is_int(value):
        raise TransconvError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise TransconvError(f"{op}: {name} must be >= {minimum}, got {value}")
    return value


def _per_axis(op: str, name: str, value: Any, ndim: int, minimum: int) -> tuple[int, ...]:
    """An int (same on every axis) or a sequence of ``ndim`` ints."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) and not hasattr(value, "__len__"):
        return (_int(op, name, value, minimum),) * ndim
    items = list(value)
    if len(items) == 1 and ndim != 1:
        items = items * ndim
    if len(items) != ndim:
        raise TransconvError(
            f"{op}: {name} must be an int or a sequence of {ndim} ints (one per spatial axis), "
            f"got {tuple(items)!r} of length {len(items)}"
        )
    return tuple(_int(op, f"{name}[{a}]", v, minimum) for a, v in enumerate(items))


def _padding(op: str, padding: Any, ndim: int) -> tuple[Pair, ...] | str:
    """Normalise padding to ``(lo, hi)`` pairs, or the strings ``"same"`` / ``"valid"``."""
    if isinstance(padding, str):
        key = padding.lower()
        if key not in ("same", "valid"):
            raise TransconvError(
                f"{op}: padding string must be 'same' or 'valid', got {padding!r}"
            )
        return key
    if not isinstance(padding, Sequence) and not hasattr(padding, "__len__"):
        p = _int(op, "padding", padding, 0)
        return ((p, p),) * ndim
    items = list(padding)
    if len(items) != ndim:
        raise TransconvError(
            f"{op}: padding must be an int, 'same', 'valid', {ndim} ints or {ndim} (lo, hi) pairs "
            f"(one per spatial axis), got {padding!r}"
        )
    pairs = []
    for a, item in enumerate(items):
        if not isinstance(item, (str, bytes)) and (isinstance(item, Sequence) or hasattr(item, "__len__")):
            item = list(item)
            if len(item) != 2:
                raise TransconvError(
                    f"{op}: padding[{a}] must be an int or a (lo, hi) pair, got {tuple(item)!r}"
                )
            pairs.append((_int(op, f"padding[{a}][0]", item[0], 0), _int(op, f"padding[{a}][1]", item[1], 0)))
        else:
            p = _int(op, f"padding[{a}]", item, 0)
            pairs.append((p, p))
    return tuple(pairs)


def spatial_shape(op: str, input_shape: Any, ndim: int | None = None) -> tuple[int, ...]:
    """Validate a spatial shape: a sequence of ints >= 1 (an int is one axis, or ``ndim`` axes).

    >>> spatial_shape("conv_matrix", (4, 4))
    (4, 4)
    >>> spatial_shape("overlap_map", 5, ndim=2)
    (5, 5)
    """
    if _is_int(input_shape):
        input_shape = (input_shape,) * (ndim or 1)
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TransconvError(f"{op}: input_shape must be an int or a sequence of ints, got {input_shape!r}") from None
    if not shape:
        raise TransconvError(f"{op}: input_shape must have at least one spatial axis, got {input_shape!r}")
    for a, n in enumerate(shape):
        if not _is_int(n) or n < 1:
            raise TransconvError(f"{op}: input_shape[{a}] must be an integer >= 1, got {n!r}")
    return tuple(int(n) for n in shape)


def _padding_mode(op: str, padding_mode: Any) -> str:
    if padding_mode not in PADDING_MODES:
        raise TransconvError(
            f"{op}: padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, got {padding_mode!r}"
        )
    return padding_mode


# --------------------------------------------------------------------------------------
# Pure shape rules (one axis at a time, plain ints in and out).
# --------------------------------------------------------------------------------------


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Extent of a dilated kernel: ``dilation * (kernel - 1) + 1``.

    >>> effective_kernel(3, 2)
    5
    """
    return dilation * (kernel - 1) + 1


def _pair(padding: int | Pair) -> Pair:
    return (padding, padding) if isinstance(padding, numbers.Integral) else (int(padding[0]), int(padding[1]))


def conv_output_length(i: int, kernel: int, stride: int = 1, padding: int | Pair = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``o = floor((i + lo + hi - k_eff) / stride) + 1``; a non-positive result means the
    (dilated) kernel does not fit in the padded input.

    >>> conv_output_length(4, 3)        # the worked example: 4x4 input, 3x3 kernel
    2
    >>> conv_output_length(5, 3, stride=2, padding=1)
    3
    """
    lo, hi = _pair(padding)
    return (i + lo + hi - effective_kernel(kernel, dilation)) // stride + 1


def conv_transpose_output_length(
    i: int, kernel: int, stride: int = 1, padding: int | Pair = 0, dilation: int = 1, output_padding: int = 0
) -> int:
    """Output length of a transposed convolution along one axis.

    ``o = (i - 1) * stride - lo - hi + k_eff + output_padding``.

    >>> conv_transpose_output_length(2, 3)   # the worked example: 2x2 back to 4x4
    4
    >>> conv_transpose_output_length(3, 3, stride=2, padding=1, output_padding=1)
    6
    """
    lo, hi = _pair(padding)
    return (i - 1) * stride - lo - hi + effective_kernel(kernel, dilation) + output_padding


def same_padding(i: int, kernel: int, stride: int = 1, dilation: int = 1) -> Pair:
    """``(lo, hi)`` padding of a ``"same"`` convolution (TensorFlow's rule).

    The output length is ``ceil(i / stride)``; the total padding is split with the odd
    pixel on the high side.  With stride 1 this is PyTorch's ``padding="same"``.

    >>> same_padding(4, 3)
    (1, 1)
    >>> same_padding(5, 4, stride=2)
    (1, 2)
    """
    out = -(-i // stride)
    total = max((out - 1) * stride + effective_kernel(kernel, dilation) - i, 0)
    return (total // 2, total - total // 2)


def transpose_same_padding(kernel: int, stride: int = 1, dilation: int = 1) -> tuple[Pair, int]:
    """``((lo, hi), output_padding)`` of a ``"same"`` transposed convolution (output = input * stride).

    It is the adjoint of the ``"same"`` convolution on the output: the crop is
    ``max(k_eff - stride, 0)`` with the odd pixel on the high side (TensorFlow,
    ONNX ``SAME_UPPER``); when the kernel is shorter than the stride the missing
    pixels come from ``output_padding = stride - k_eff``.

    >>> transpose_same_padding(3, 2)
    ((0, 1), 0)
    >>> transpose_same_padding(1, 2)
    ((0, 0), 1)
    """
    k_eff = effective_kernel(kernel, dilation)
    total = max(k_eff - stride, 0)
    return (total // 2, total - total // 2), max(stride - k_eff, 0)


def output_padding_for_size(
    op: str, axis: int, i: int, target: int, kernel: int, stride: int, padding: Pair, dilation: int
) -> int:
    """Resolve a requested transposed-conv output length to ``output_padding`` (PyTorch's ``output_size``).

    Valid lengths run from ``o_min = (i - 1) * stride - lo - hi + k_eff`` to
    ``o_min + max(stride, dilation) - 1``.

    >>> output_padding_for_size("conv_transpose", 0, 3, 6, 3, 2, (1, 1), 1)
    1
    """
    smallest = conv_transpose_output_length(i, kernel, stride, padding, dilation, 0)
    largest = smallest + max(stride, dilation) - 1
    if not smallest <= target <= largest:
        raise TransconvError(
            f"{op}: requested an output size of {target} on spatial axis {axis}, but valid sizes range "
            f"from {smallest} to {largest} (input {i}, kernel {kernel}, stride {stride}, "
            f"padding {padding}, dilation {dilation})"
        )
    return target - smallest


# --------------------------------------------------------------------------------------
# The spec.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvSpec:
    """Fully normalised geometry of one convolution / transposed convolution.

    All fields are per spatial axis except ``groups`` and ``padding_mode``.  A spec
    describes the *convolution* from the large grid to the small one; the transposed
    convolution with the same spec runs the other way, and ``output_padding`` selects
    which large length it produces.

    Attributes
    ----------
    kernel_size, stride, dilation : tuple of int
    padding : tuple of (lo, hi) pairs
    output_padding : tuple of int
        Extra length on the high side of a transposed convolution's output (0 for conv).
    groups : int
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
    """

    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[Pair, ...]
    output_padding: tuple[int, ...]
    groups: int = 1
    padding_mode: str = "zeros"

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions."""
        return len(self.kernel_size)

    @property
    def effective_kernel(self) -> tuple[int, ...]:
        return tuple(effective_kernel(k, d) for k, d in zip(self.kernel_size, self.dilation))

    def conv_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape of the convolution on ``input_shape``."""
        return tuple(
            conv_output_length(i, k, s, p, d)
            for i, k, s, p, d in zip(input_shape, self.kernel_size, self.stride, self.padding, self.dilation)
        )

    def transpose_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape of the transposed convolution on ``input_shape``."""
        return tuple(
            conv_transpose_output_length(i, k, s, p, d, a)
            for i, k, s, p, d, a in zip(
                input_shape, self.kernel_size, self.stride, self.padding, self.dilation, self.output_padding
            )
        )


def _common(op, ndim, kernel_size, stride, padding, dilation, groups, padding_mode):
    """The arguments conv and conv_transpose share, validated in one place."""
    return (
        _per_axis(op, "kernel_size", kernel_size, ndim, 1),
        _per_axis(op, "stride", stride, ndim, 1),
        _per_axis(op, "dilation", dilation, ndim, 1),
        _padding(op, padding, ndim),
        _int(op, "groups", groups, 1),
        _padding_mode(op, padding_mode),
    )


def conv_spec(
    op: str,
    input_shape: Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: str = "zeros",
) -> ConvSpec:
    """Validate convolution arguments for spatial ``input_shape`` and build the spec.

    Raises :class:`TransconvError` for non-positive kernel/stride/dilation, negative
    padding, an unknown padding string or mode, or a kernel larger than the padded input.

    >>> conv_spec("conv", (4, 4), 3).conv_output_shape((4, 4))
    (2, 2)
    >>> conv_spec("conv", (5,), 4, stride=2, padding="same").padding
    ((1, 2),)
    """
    ndim = len(input_shape)
    kernel, stride_t, dilation_t, pad, groups_i, mode = _common(
        op, ndim, kernel_size, stride, padding, dilation, groups, padding_mode
    )
    if pad == "valid":
        pad = ((0, 0),) * ndim
    elif pad == "same":
        pad = tuple(same_padding(i, k, s, d) for i, k, s, d in zip(input_shape, kernel, stride_t, dilation_t))
    spec = ConvSpec(kernel, stride_t, dilation_t, pad, (0,) * ndim, groups_i, mode)
    _check_fits(op, spec, input_shape)
    _check_mode_padding(op, spec, input_shape)
    return spec


def conv_transpose_spec(
    op: str,
    input_shape: Sequence[int],
    kernel_size: Any,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: Any = 1,
    dilation: Any = 1,
    padding_mode: str = "zeros",
    output_size: Any = None,
) -> ConvSpec:
    """Validate transposed-convolution arguments for spatial ``input_shape`` and build the spec.

    ``padding="same"`` gives output = input * stride (see :func:`transpose_same_padding`);
    ``output_size`` (spatial, or a full shape whose last axes are spatial, as in
    PyTorch) is resolved to ``output_padding``.

    >>> s = conv_transpose_spec("conv_transpose", (3,), 3, stride=2, padding=1, output_size=[6])
    >>> s.output_padding, s.transpose_output_shape((3,))
    ((1,), (6,))
    """
    ndim = len(input_shape)
    kernel, stride_t, dilation_t, pad, groups_i, mode = _common(
        op, ndim, kernel_size, stride, padding, dilation, groups, padding_mode
    )
    out_pad = _per_axis(op, "output_padding", output_padding, ndim, 0)
    if pad == "valid":
        pad = ((0, 0),) * ndim
    elif pad == "same":
        if any(out_pad):
            raise TransconvError(
                f"{op}: output_padding must be 0 with padding='same' (the output size is input * stride), "
                f"got output_padding={out_pad}"
            )
        same = [transpose_same_padding(k, s, d) for k, s, d in zip(kernel, stride_t, dilation_t)]
        pad = tuple(p for p, _ in same)
        out_pad = tuple(a for _, a in same)
    if output_size is not None:
        target = _output_size(op, output_size, ndim)
        out_pad = tuple(
            output_padding_for_size(op, a, i, t, k, s, p, d)
            for a, (i, t, k, s, p, d) in enumerate(zip(input_shape, target, kernel, stride_t, pad, dilation_t))
        )
    for a, (opad, s, d) in enumerate(zip(out_pad, stride_t, dilation_t)):
        if opad >= max(s, d):
            raise TransconvError(
                f"{op}: output_padding ({opad}) must be smaller than stride ({s}) or dilation ({d})"
                + (f" on spatial axis {a}" if ndim > 1 else "")
            )
    spec = ConvSpec(kernel, stride_t, dilation_t, pad, out_pad, groups_i, mode)
    out_shape = spec.transpose_output_shape(input_shape)
    if any(o < 1 for o in out_shape):
        raise TransconvError(
            f"{op}: padding {pad} crops more than the full output: the output shape would be {out_shape} "
            f"for input {tuple(input_shape)}; every output length must be >= 1"
        )
    _check_mode_padding(op, spec, out_shape)
    return spec


def _output_size(op: str, output_size: Any, ndim: int) -> tuple[int, ...]:
    if _is_int(output_size):
        return (_int(op, "output_size", output_size, 1),) * ndim
    try:
        items = list(output_size)
    except TypeError:
        raise TransconvError(f"{op}: output_size must be a sequence of ints, got {output_size!r}") from None
    if len(items) < ndim or len(items) > ndim + 2:
        raise TransconvError(
            f"{op}: output_size must have {ndim} spatial entries (or {ndim + 2} with batch and channel), "
            f"got {tuple(items)!r}"
        )
    return tuple(_int(op, f"output_size[{a}]", v, 1) for a, v in enumerate(items[-ndim:]))


def _check_fits(op: str, spec: ConvSpec, input_shape: Sequence[int]) -> None:
    for a, (i, (lo, hi), k_eff) in enumerate(zip(input_shape, spec.padding, spec.effective_kernel)):
        if i + lo + hi < k_eff:
            raise TransconvError(
                f"{op}: the kernel (effective size {k_eff} = dilation*(kernel-1)+1) is larger than the padded "
                f"input on spatial axis {a}: input {i} + padding ({lo}, {hi}) = {i + lo + hi}; "
                f"need input + padding >= {k_eff}"
            )


def _check_mode_padding(op: str, spec: ConvSpec, input_shape: Sequence[int]) -> None:
    """Reflect padding needs at least two samples to reflect between."""
    if spec.padding_mode != "reflect":
        return
    for a, (i, (lo, hi)) in enumerate(zip(input_shape, spec.padding)):
        if (lo or hi) and i < 2:
            raise TransconvError(
                f"{op}: padding_mode='reflect' needs a length >= 2 on every padded axis, "
                f"got length {i} on spatial axis {a} with padding ({lo}, {hi})"
            )


# --------------------------------------------------------------------------------------
# Dumoulin & Visin, "A guide to convolution arithmetic for deep learning" (2016).
# --------------------------------------------------------------------------------------


def dumoulin(relationship: int, i: int, k: int, s: int = 1, p: int = 0, d: int = 1, a: int = 0) -> int:
    """Output size by relationship ``1..15`` of Dumoulin & Visin's guide, in the paper's own terms.

    Relationships 1-7 and 15 are direct convolutions of an input of size ``i``;
    8-14 are transposed convolutions whose *input* is ``i`` (the paper's ``i'``), with
    ``k, s, p`` those of the convolution they transpose and ``a`` the extra of 14.
    Each is the general formula specialised; the tests check that they agree.

    >>> dumoulin(12, 2, 3, s=2)   # o' = s(i'-1) + k
    5
    """
    if relationship == 1:
        return i - k + 1
    if relationship == 2:
        return i - k + 2 * p + 1
    if relationship == 3:  # half padding, k = 2n + 1, p = n
        return i
    if relationship == 4:  # full padding, p = k - 1
        return i + k - 1
    if relationship in (5, 7):
        return (i - k) // s + 1
    if relationship == 6:
        return (i + 2 * p - k) // s + 1
    if relationship == 8:  # transpose of 1: stride-1 conv with p' = k - 1
        return i + k - 1
    if relationship == 9:
        return i + (k - 1) - 2 * p
    if relationship == 10:  # half padding
        return i
    if relationship == 11:  # full padding
        return i - (k - 1)
    if relationship == 12:
        return s * (i - 1) + k
    if relationship == 13:
        return s * (i - 1) + k - 2 * p
    if relationship == 14:
        return s * (i - 1) + a + k - 2 * p
    if relationship == 15:
        return (i + 2 * p - k - (k - 1) * (d - 1)) // s + 1
    raise TransconvError(f"dumoulin: relationship must be an integer from 1 to 15, got {relationship!r}")


@dataclass(frozen=True)
class DirectEquivalent:
    """A transposed conv drawn as a direct stride-1 conv (the guide's figures).

    ``inserted_zeros`` zeros go between neighbouring inputs; the dilated input is then
    padded by ``padding`` (negative = cropped) and convolved at stride 1 with the
    spatially flipped kernel.
    """

    inserted_zeros: tuple[int, ...]
    padding: tuple[Pair, ...]


def transposed_as_direct_conv(spec: ConvSpec) -> DirectEquivalent:
    """The zero-insertion picture of ``spec``'s transposed convolution.

    ``p'_lo = k_eff - 1 - lo`` and ``p'_hi = k_eff - 1 - hi + output_padding``.

    >>> transposed_as_direct_conv(conv_spec("conv", (5,), 3, stride=2, padding=1))
    DirectEquivalent(inserted_zeros=(1,), padding=((1, 1),))
    """
    return DirectEquivalent(
        tuple(s - 1 for s in spec.stride),
        tuple(
            (k - 1 - lo, k - 1 - hi + a) for k, (lo, hi), a in zip(spec.effective_kernel, spec.padding, spec.output_padding)
        ),
    )


# --------------------------------------------------------------------------------------
# Solver: which kernel / stride / padding maps i to o?
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeometryChoice:
    """One geometry mapping ``input_size`` to ``output_size`` along an axis."""

    kernel_size: int
    stride: int
    padding: int
    output_padding: int
    dilation: int
    checkerboard_free: bool

    def describe(self) -> str:
        extra = f", output_padding={self.output_padding}" if self.output_padding else ""
        dil = f", dilation={self.dilation}" if self.dilation != 1 else ""
        tag = "even overlap" if self.checkerboard_free else "uneven overlap (checkerboard risk)"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}{extra}{dil}  [{tag}]"


def solve_geometry(
    input_size: int,
    output_size: int,
    *,
    transposed: bool = True,
    max_kernel: int = 8,
    max_stride: int | None = None,
    max_dilation: int = 1,
) -> list[GeometryChoice]:
    """Every (kernel, stride, symmetric padding, output_padding, dilation) mapping one length to another.

    Transposed results come checkerboard-free first (stride divides the kernel, so every
    output pixel is reached by the same number of taps), then those whose stride is
    nearest the size ratio, then by kernel size.

    >>> solve_geometry(7, 14)[0].describe()
    'kernel_size=2, stride=2, padding=0  [even overlap]'
    """
    op = "solve_geometry"
    i = _int(op, "input_size", input_size, 1)
    o = _int(op, "output_size", output_size, 1)
    _int(op, "max_kernel", max_kernel, 1)
    _int(op, "max_dilation", max_dilation, 1)
    if max_stride is None:
        max_stride = max(2, (o // i + 1) if transposed else (i // o + 1))
    _int(op, "max_stride", max_stride, 1)
    choices = []
    for d in range(1, max_dilation + 1):
        for k in range(1, max_kernel + 1):
            if d > 1 and k == 1:
                continue
            k_eff = effective_kernel(k, d)
            for s in range(1, max_stride + 1):
                for p in range(0, k_eff):
                    if transposed:
                        base = conv_transpose_output_length(i, k, s, p, d, 0)
                        a = o - base
                        if 0 <= a < max(s, d):
                            choices.append(GeometryChoice(k, s, p, a, d, k % s == 0))
                    elif i + 2 * p >= k_eff and conv_output_length(i, k, s, p, d) == o:
                        choices.append(GeometryChoice(k, s, p, 0, d, True))
    # checkerboard-free first, then the stride nearest the size ratio (the natural
    # up-/down-sampler), then the smallest kernel
    ratio = o / i if transposed else i / o
    choices.sort(
        key=lambda c: (not c.checkerboard_free, c.dilation, c.output_padding > 0, abs(c.stride - ratio), c.kernel_size, c.padding)
    )
    return choices
