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
import operator
from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

import numpy as np

from .errors import TransconvError

__all__ = [
    "ConvSpec",
    "Layout",
    "validate_call",
    "as_numeric",
    "compute_dtypes",
    "integer_or_none",
    "checked_int",
    "checked_real",
    "per_axis_items",
    "per_axis",
    "int_pairs",
    "describe_value",
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
# Small validators, the package's one way to read integers and per-axis arguments.
# Each raises TransconvError naming op, parameter, value and range.
# --------------------------------------------------------------------------------------


def integer_or_none(value: Any) -> int | None:
    """``value`` as a Python int if it is an integer (Python or NumPy int, 0-d integer array or
    tensor, anything with ``__index__``) and not a bool; otherwise None.

    >>> integer_or_none(np.int64(3)), integer_or_none(True), integer_or_none(3.0)
    (3, None, None)
    """
    if type(value) is int:
        return value
    if isinstance(value, (bool, np.bool_, np.ma.MaskedArray)) or "bool" in str(getattr(value, "dtype", "")):
        return None
    if getattr(type(value), "__index__", None) is None:
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _is_int(value: Any) -> bool:
    return integer_or_none(value) is not None


def describe_value(value: Any) -> str:
    """How a refused value is shown in a message: its repr, and what it is when that is the reason.

    >>> describe_value(2.5)
    '2.5 (a non-integer)'
    """
    if isinstance(value, np.ma.MaskedArray):
        return f"a masked array of shape {value.shape} (transconv applies no mask: pass value.filled(...) or value.data)"
    if isinstance(value, (bool, np.bool_)):
        return f"{value!r} (a bool)"
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return "NaN"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return f"{value!r} (a non-integer)"
    if isinstance(value, (set, frozenset)):
        return f"the set {value!r} (a set has no order: use a tuple)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def checked_int(op: str, name: str, value: Any, minimum: Optional[int]) -> int:
    """``value`` as an int ``>= minimum`` (no bound for None), or a :class:`TransconvError` naming ``op`` and ``name``.

    >>> checked_int("conv", "groups", np.int32(2), 1)
    2
    """
    number = integer_or_none(value)
    if number is None:
        bound = "" if minimum is None else f" >= {minimum}"
        raise TransconvError(f"{op}: {name} must be an integer{bound}, got {describe_value(value)}")
    if minimum is not None and number < minimum:
        raise TransconvError(f"{op}: {name} must be >= {minimum}, got {number}")
    return number


def checked_real(op: str, name: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 high_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` with ``high_open``), or a
    :class:`TransconvError` naming ``op`` and ``name``.

    >>> checked_real("Adam", "betas[0]", 0.9, 0.0, 1.0, high_open=True)
    0.9
    """
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)) or not math.isfinite(value):
        raise TransconvError(f"{op}: {name} must be a finite number, got {value!r}")
    if value < low or value > high or (high_open and value >= high):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise TransconvError(f"{op}: {name} must be >= {low}" + (f" and {bound}" if high != math.inf else "") + f", got {value}")
    return float(value)


def per_axis_items(op: str, name: str, value: Any) -> list | None:
    """The entries of a per-axis argument, or None when it is one value (checked by the caller).

    >>> per_axis_items("conv", "stride", (1, 2)), per_axis_items("conv", "stride", 2)
    ([1, 2], None)
    """
    if isinstance(value, (tuple, list)):
        return list(value)
    if isinstance(value, (str, bytes, set, frozenset, dict, np.ma.MaskedArray)):
        return None
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return None
        if value.ndim == 1:
            return list(value)
        raise TransconvError(f"{op}: {name} must be an int or a flat sequence of ints, got an array of shape {value.shape}")
    if integer_or_none(value) is not None:
        return None
    if hasattr(value, "__len__") and hasattr(value, "__getitem__"):  # torch.Size, 1-d tensors, ...
        return list(value)
    return None


def per_axis(op: str, name: str, value: Any, ndim: int, minimum: int) -> tuple[int, ...]:
    """An int (same on every axis) or a sequence of ``ndim`` ints, each ``>= minimum``.

    >>> per_axis("conv", "stride", 2, 3, 1), per_axis("conv", "stride", [1, 2], 2, 1)
    ((2, 2, 2), (1, 2))
    """
    items = per_axis_items(op, name, value)
    if items is None:
        return (checked_int(op, name, value, minimum),) * ndim
    if len(items) == 1 and ndim != 1:
        items = items * ndim
    if len(items) != ndim:
        raise TransconvError(
            f"{op}: {name} must be an int or a sequence of {ndim} ints (one per spatial axis), "
            f"got {tuple(items)!r} of length {len(items)}"
        )
    return tuple(checked_int(op, f"{name}[{a}]", v, minimum) for a, v in enumerate(items))


def int_pairs(op: str, name: str, value: Any, minimum: Optional[int], ndim: Optional[int] = None) -> tuple[Pair, ...]:
    """``value`` as ``(lo, hi)`` integer pairs ``>= minimum``, one per spatial axis (``ndim`` of them when given).

    >>> int_pairs("ZeroInsert", "padding", [[1, -1], (0, 2)], None)
    ((1, -1), (0, 2))
    """
    items = per_axis_items(op, name, value)
    pairs = None if items is None else [per_axis_items(op, f"{name}[{a}]", p) for a, p in enumerate(items)]
    if not pairs or (ndim is not None and len(pairs) != ndim) or any(p is None or len(p) != 2 for p in pairs):
        count = "" if ndim is None else f"{ndim} "
        raise TransconvError(f"{op}: {name} must be {count}(lo, hi) pairs of ints, one per spatial axis, got {value!r}")
    return tuple((checked_int(op, f"{name}[{a}][0]", lo, minimum), checked_int(op, f"{name}[{a}][1]", hi, minimum))
                 for a, (lo, hi) in enumerate(pairs))


def _padding(op: str, padding: Any, ndim: int) -> tuple[Pair, ...] | str:
    """Normalise padding to ``(lo, hi)`` pairs, or the strings ``"same"`` / ``"valid"``."""
    if isinstance(padding, str):
        key = padding.lower()
        if key not in ("same", "valid"):
            raise TransconvError(
                f"{op}: padding string must be 'same' or 'valid', got {padding!r}"
            )
        return key
    items = per_axis_items(op, "padding", padding)
    if items is None:
        p = checked_int(op, "padding", padding, 0)
        return ((p, p),) * ndim
    if len(items) != ndim:
        raise TransconvError(
            f"{op}: padding must be an int, 'same', 'valid', {ndim} ints or {ndim} (lo, hi) pairs "
            f"(one per spatial axis), got {padding!r}"
        )
    pairs = []
    for a, item in enumerate(items):
        pair = per_axis_items(op, f"padding[{a}]", item)
        if pair is not None:
            if len(pair) != 2:
                raise TransconvError(
                    f"{op}: padding[{a}] must be an int or a (lo, hi) pair, got {tuple(pair)!r}"
                )
            pairs.append((checked_int(op, f"padding[{a}][0]", pair[0], 0), checked_int(op, f"padding[{a}][1]", pair[1], 0)))
        else:
            p = checked_int(op, f"padding[{a}]", item, 0)
            pairs.append((p, p))
    return tuple(pairs)


def spatial_shape(op: str, input_shape: Any, ndim: int | None = None) -> tuple[int, ...]:
    """Validate a spatial shape: a sequence of ints >= 1 (an int is one axis, or ``ndim`` axes).

    >>> spatial_shape("conv_matrix", (4, 4))
    (4, 4)
    >>> spatial_shape("overlap_map", 5, ndim=2)
    (5, 5)
    """
    items = per_axis_items(op, "input_shape", input_shape)
    if items is None:
        if not _is_int(input_shape):
            raise TransconvError(
                f"{op}: input_shape must be an int or a sequence of ints, got {describe_value(input_shape)}"
            )
        items = [input_shape] * (ndim or 1)
    if not items:
        raise TransconvError(f"{op}: input_shape must have at least one spatial axis, got {input_shape!r}")
    return tuple(checked_int(op, f"input_shape[{a}]", n, 1) for a, n in enumerate(items))


def _padding_mode(op: str, padding_mode: Any) -> str:
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
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


def _length_args(op: str, i: Any, kernel: Any, stride: Any, padding: Any, dilation: Any,
                 names: Sequence[str] = ("i", "kernel", "stride", "padding", "dilation")) -> tuple[int, int, int, Pair, int]:
    """The scalar arguments of the one-axis length functions, validated (``names`` as the caller spells them)."""
    items = per_axis_items(op, names[3], padding)
    if items is None:
        lo = hi = checked_int(op, names[3], padding, 0)
    elif len(items) == 2:
        lo, hi = checked_int(op, f"{names[3]}[0]", items[0], 0), checked_int(op, f"{names[3]}[1]", items[1], 0)
    else:
        raise TransconvError(f"{op}: {names[3]} must be an int or a (lo, hi) pair, got {padding!r}")
    return (checked_int(op, names[0], i, None), checked_int(op, names[1], kernel, 1), checked_int(op, names[2], stride, 1), (lo, hi),
            checked_int(op, names[4], dilation, 1))


def _conv_length(i: int, kernel: int, stride: int, padding: Pair, dilation: int) -> int:
    return (i + padding[0] + padding[1] - effective_kernel(kernel, dilation)) // stride + 1


def _transpose_length(i: int, kernel: int, stride: int, padding: Pair, dilation: int, output_padding: int) -> int:
    return (i - 1) * stride - padding[0] - padding[1] + effective_kernel(kernel, dilation) + output_padding


def conv_output_length(i: int, kernel: int, stride: int = 1, padding: int | Pair = 0, dilation: int = 1) -> int:
    """Output length of a convolution along one axis.

    ``o = floor((i + lo + hi - k_eff) / stride) + 1``; a non-positive result means the
    (dilated) kernel does not fit in the padded input.

    >>> conv_output_length(4, 3)        # the worked example: 4x4 input, 3x3 kernel
    2
    >>> conv_output_length(5, 3, stride=2, padding=1)
    3
    """
    return _conv_length(*_length_args("conv_output_length", i, kernel, stride, padding, dilation))


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
    op = "conv_transpose_output_length"
    return _transpose_length(*_length_args(op, i, kernel, stride, padding, dilation), checked_int(op, "output_padding", output_padding, 0))


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
    smallest = _transpose_length(i, kernel, stride, padding, dilation, 0)
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

    def padded_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial shape of ``input_shape`` with the padding added on both sides.

        >>> conv_spec("conv", (4, 5), 3, padding=(1, 2)).padded_shape((4, 5))
        (6, 9)
        """
        return tuple(i + lo + hi for i, (lo, hi) in zip(input_shape, self.padding))

    def conv_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape of the convolution on ``input_shape``."""
        return tuple(
            _conv_length(i, k, s, p, d)
            for i, k, s, p, d in zip(input_shape, self.kernel_size, self.stride, self.padding, self.dilation)
        )

    def transpose_output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape of the transposed convolution on ``input_shape``."""
        return tuple(
            _transpose_length(i, k, s, p, d, a)
            for i, k, s, p, d, a in zip(
                input_shape, self.kernel_size, self.stride, self.padding, self.dilation, self.output_padding
            )
        )

    def output_shape(self, input_shape: Sequence[int], transposed: bool) -> tuple[int, ...]:
        """Spatial output shape on ``input_shape`` of the convolution, or of the transposed one.

        >>> conv_spec("conv", (4, 4), 3).output_shape((2, 2), transposed=True)
        (4, 4)
        """
        return self.transpose_output_shape(input_shape) if transposed else self.conv_output_shape(input_shape)

    def adjoint_for(self, input_shape: Sequence[int]) -> "ConvSpec":
        """This convolution's adjoint on ``input_shape``: the spec whose transposed convolution maps
        the output back to exactly ``input_shape`` (what a stride leaves unread is its output_padding).

        >>> conv_spec("conv", (6,), 3, stride=2).adjoint_for((6,)).output_padding
        (1,)
        """
        out = self.conv_output_shape(input_shape)
        fed = tuple(_transpose_length(o, k, s, p, d, 0)
                    for o, k, s, p, d in zip(out, self.kernel_size, self.stride, self.padding, self.dilation))
        return replace(self, output_padding=tuple(i - f for i, f in zip(input_shape, fed)))


def _common(op, ndim, kernel_size, stride, padding, dilation, groups, padding_mode):
    """The arguments conv and conv_transpose share, validated in one place."""
    return (
        per_axis(op, "kernel_size", kernel_size, ndim, 1),
        per_axis(op, "stride", stride, ndim, 1),
        per_axis(op, "dilation", dilation, ndim, 1),
        _padding(op, padding, ndim),
        checked_int(op, "groups", groups, 1),
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
    out_pad = per_axis(op, "output_padding", output_padding, ndim, 0)
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
    items = per_axis_items(op, "output_size", output_size)
    if items is None:
        return (checked_int(op, "output_size", output_size, 1),) * ndim
    if len(items) < ndim or len(items) > ndim + 2:
        raise TransconvError(
            f"{op}: output_size must have {ndim} spatial entries (or {ndim + 2} with batch and channel), "
            f"got {tuple(items)!r}"
        )
    return tuple(checked_int(op, f"output_size[{a}]", v, 1) for a, v in enumerate(items[-ndim:]))


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
# The boundary: arrays' shapes and every argument of a call, validated in one place.
# --------------------------------------------------------------------------------------


def as_numeric(op: str, name: str, value: Any) -> np.ndarray:
    """``value`` as a real numeric array (bool, int, float), or a :class:`TransconvError` naming ``name``.

    >>> as_numeric("conv", "x", [[1, 2], [3, 4]]).shape
    (2, 2)
    """
    if type(value) is np.ndarray:
        array = value
    elif isinstance(value, np.ma.MaskedArray):
        raise TransconvError(f"{op}: {name} is {describe_value(value)}")
    else:
        try:
            array = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise TransconvError(f"{op}: {name} must be a numeric array, could not convert it ({exc})") from None
    if array.dtype.kind not in "biuf":
        kind = "complex" if array.dtype.kind == "c" else "non-numeric"
        raise TransconvError(
            f"{op}: {name} must have a real numeric dtype (bool, int, float), got {kind} dtype {array.dtype}"
        )
    return array


def compute_dtypes(*dtypes: Optional[np.dtype]) -> tuple[np.dtype, np.dtype]:
    """The result dtype of a call on arrays of these dtypes (None entries are skipped), and the dtype to compute in.

    Float inputs keep their dtype (mixed float32/float64 promote to float64, as NumPy
    does); integer and bool inputs give float64; float16 is computed in float32 and
    returned as float16.

    >>> compute_dtypes(np.dtype(np.float16), None)
    (dtype('float16'), dtype('float32'))
    >>> compute_dtypes(np.dtype(np.int64), np.dtype(np.float32))
    (dtype('float64'), dtype('float64'))
    """
    result = np.result_type(*[d for d in dtypes if d is not None])
    if result.kind != "f":
        result = np.dtype(np.float64)
    compute = np.dtype(np.float32) if result.itemsize < 4 else result
    return result, compute


@dataclass(frozen=True)
class Layout:
    """A validated call: the spec, the batched shapes, the channel counts and how the arrays were read.

    Attributes
    ----------
    spec : ConvSpec
    transposed : bool
    x_shape : tuple of int
        The operation's input, batched: ``(N, C_in, *spatial)``.
    w_shape : tuple of int
        ``(C_a, C_b, *kernel)``: with a plain kernel, two unit axes in front.
    c_in, c_out : int
        Channels of the operation's input and output.
    squeeze : int
        Leading axes the caller's arrays lack: 0 batched, 1 unbatched, 2 plain.
    """

    spec: ConvSpec
    transposed: bool
    x_shape: tuple[int, ...]
    w_shape: tuple[int, ...]
    c_in: int
    c_out: int
    squeeze: int

    @property
    def plain(self) -> bool:
        return self.squeeze == 2

    @property
    def input_spatial(self) -> tuple[int, ...]:
        return self.x_shape[2:]

    @property
    def output_spatial(self) -> tuple[int, ...]:
        return self.spec.output_shape(self.x_shape[2:], self.transposed)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The result, batched: ``(N, C_out, *out)``."""
        return (self.x_shape[0], self.c_out) + self.output_spatial


def _plain_flag(op: str, plain: Any) -> Optional[bool]:
    if plain is None or isinstance(plain, (bool, np.bool_)):
        return None if plain is None else bool(plain)
    raise TransconvError(f"{op}: plain must be True, False or None, got {describe_value(plain)}")


_LAYOUTS: dict = {}  # validate_call's results for repeated identical arguments of plain ints and strings


def _cache_key(args: tuple) -> Optional[tuple]:
    """``args`` if every leaf is an exact int, str or None (so equal keys mean equal arguments:
    True == 1 and 2.0 == 2 hash alike and must not share an entry), else None."""
    for v in args:
        t = type(v)
        if t is int or t is str or v is None:
            continue
        if t is not tuple:
            return None
        for item in v:
            ti = type(item)
            if ti is int:
                continue
            if ti is not tuple or any(type(e) is not int for e in item):
                return None
    return args


def validate_call(
    op: str,
    transposed: bool,
    x_shape: Optional[Sequence[int]],
    w_shape: Sequence[int],
    *,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    padding_mode: Any = "zeros",
    output_padding: Any = 0,
    output_size: Any = None,
    plain: Any = None,
    bias_shape: Optional[Sequence[int]] = None,
    input_shape: Any = None,
) -> Layout:
    """The one boundary: validate a call's shapes and arguments, return its :class:`Layout`.

    Every public entry point calls this (operators, matrices, spectra, overlap, CLI,
    interop).  ``x_shape`` is the operation's input as the caller gave it (batched,
    unbatched, or plain with a plain kernel); the matrix functions pass ``x_shape=None``
    and a spatial ``input_shape`` instead, and the channels come from the weight.

    A weight with fewer than 3 axes is a plain kernel (no channel axes) unless ``plain``
    says otherwise; with ``input_shape``, a weight with as many axes as ``input_shape``.

    >>> lay = validate_call("conv_transpose", True, (2, 2), (3, 3))
    >>> lay.plain, lay.output_shape, lay.spec.kernel_size
    (True, (1, 1, 4, 4), (3, 3))
    >>> validate_call("conv", False, (8, 3, 32, 32), (16, 3, 3, 3), padding="same").output_shape
    (8, 16, 32, 32)
    """
    key = None
    if type(transposed) is bool and (plain is None or type(plain) is bool):
        key = _cache_key((op, x_shape, w_shape, stride, padding, dilation, groups, padding_mode,
                          output_padding, output_size, bias_shape, input_shape))
        key = key and (key, transposed, plain)
    if key is not None:
        found = _LAYOUTS.get(key)
        if found is not None:
            return found
    layout = _validate_call(op, transposed, x_shape, w_shape, stride, padding, dilation, groups, padding_mode,
                            output_padding, output_size, plain, bias_shape, input_shape)
    if key is not None:
        if len(_LAYOUTS) >= 256:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout
    return layout


def _validate_call(op, transposed, x_shape, w_shape, stride, padding, dilation, groups, padding_mode,
                   output_padding, output_size, plain, bias_shape, input_shape) -> Layout:
    x_shape, w_shape, squeeze = _read_shapes(op, x_shape, tuple(w_shape), _plain_flag(op, plain), input_shape)
    spatial = spatial_shape(op, input_shape) if x_shape is None else x_shape[2:]
    kernel = w_shape[2:]
    if transposed:
        spec = conv_transpose_spec(op, spatial, kernel, stride, padding, output_padding, groups, dilation,
                                   padding_mode, output_size)
    else:
        spec = conv_spec(op, spatial, kernel, stride, padding, dilation, groups, padding_mode)
    c_in, c_out = _channels(op, transposed, x_shape, w_shape, spec.groups)
    if x_shape is None:
        x_shape = (1, c_in) + spatial
    if bias_shape is not None:
        bias_shape = tuple(bias_shape)
        if bias_shape != (c_out,) and not (squeeze == 2 and bias_shape in ((), (1,))):
            raise TransconvError(f"{op}: bias must have shape ({c_out},) (one per output channel), got {bias_shape}")
    return Layout(spec, bool(transposed), x_shape, w_shape, c_in, c_out, squeeze)


def _read_shapes(op, x_shape, w_shape, plain, input_shape) -> tuple:
    """How the arrays are read: ``(x_shape batched or None, w_shape with channel axes, squeeze)``.

    Without ``x_shape`` (the matrix functions) the spatial axes come from ``input_shape``
    and the weight is plain when it has as many axes."""
    if x_shape is None:
        d = len(spatial_shape(op, input_shape))
        if plain is None:
            plain = len(w_shape) == d
        if plain and len(w_shape) != d or not plain and len(w_shape) != d + 2:
            raise TransconvError(
                f"{op}: w must have {d} axes (a plain kernel) or {d + 2} axes (C_a, C_b, *kernel) for an input_shape "
                f"with {d} spatial axes, got w of shape {w_shape}"
            )
        squeeze = 2 if plain else 0
    else:
        x_shape = tuple(x_shape)
        if plain is None:
            plain = len(w_shape) < 3
        if plain:
            if len(w_shape) < 1 or len(x_shape) != len(w_shape):
                raise TransconvError(
                    f"{op}: a plain kernel (no channel axes) of shape {w_shape} needs an input with the same number "
                    f"of axes ({len(w_shape)}), got x of shape {x_shape}; for channels use w of shape "
                    f"(C_out, C_in/groups, *kernel) and x of shape (N, C_in, *spatial) or (C_in, *spatial)"
                )
            x_shape, squeeze = (1, 1) + x_shape, 2
        else:
            d = len(w_shape) - 2
            if d < 1:
                raise TransconvError(
                    f"{op}: with plain=False, w must have at least 3 axes (C_a, C_b, *kernel), got w of shape {w_shape}"
                )
            if len(x_shape) not in (d + 1, d + 2):
                raise TransconvError(
                    f"{op}: x must have {d + 1} axes (C, *spatial) or {d + 2} axes (N, C, *spatial) for a {d}-d "
                    f"weight of shape {w_shape}, got x of shape {x_shape}"
                )
            squeeze = 1 if len(x_shape) == d + 1 else 0
            if squeeze:
                x_shape = (1,) + x_shape
        if any(n < 1 for n in x_shape[1:]):
            raise TransconvError(
                f"{op}: x must have at least one channel and one sample per spatial axis, got shape {x_shape[squeeze:]}"
            )
    if plain:
        w_shape = (1, 1) + w_shape
    if any(n < 1 for n in w_shape):
        raise TransconvError(f"{op}: w must have no empty axis, got shape {w_shape[2 if plain else 0:]}")
    return x_shape, w_shape, squeeze


def _channels(op, transposed, x_shape, w_shape, g) -> tuple[int, int]:
    """``(c_in, c_out)`` of the operation, checked against ``x`` and ``groups``."""
    if transposed:
        c_in, c_out = w_shape[0], w_shape[1] * g
        if x_shape is not None and x_shape[1] != c_in:
            raise TransconvError(
                f"{op}: x has {x_shape[1]} channels but w of shape {w_shape} expects {c_in} "
                f"(w is (C_in, C_out/groups, *kernel))"
            )
        if c_in % g:
            raise TransconvError(f"{op}: input channels ({c_in}) must be divisible by groups ({g})")
        return c_in, c_out
    c_in, c_out = w_shape[1] * g, w_shape[0]
    if x_shape is not None:
        if x_shape[1] % g:
            raise TransconvError(f"{op}: input channels ({x_shape[1]}) must be divisible by groups ({g})")
        if x_shape[1] != c_in:
            raise TransconvError(
                f"{op}: x has {x_shape[1]} channels but w of shape {w_shape} with groups={g} expects "
                f"{c_in} (w is (C_out, C_in/groups, *kernel))"
            )
    if c_out % g:
        raise TransconvError(f"{op}: output channels ({c_out}) must be divisible by groups ({g})")
    return c_in, c_out


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
    op = "dumoulin"
    if integer_or_none(relationship) is None or not 1 <= integer_or_none(relationship) <= 15:
        raise TransconvError(f"{op}: relationship must be an integer from 1 to 15, got {describe_value(relationship)}")
    relationship = integer_or_none(relationship)
    i, k, s, (p, _), d = _length_args(op, i, k, s, p, d, ("i", "k", "s", "p", "d"))
    a = checked_int(op, "a", a, 0)
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


_SOLVER_BUDGET = 100_000  # geometries (and kernel/padding combinations) the solver may list


def _stride_interval(i: int, o: int, k_eff: int, p: int, d: int, transposed: bool) -> tuple[int, int]:
    """The strides ``[lo, hi]`` (maybe empty, maybe ``hi`` unbounded) mapping ``i`` to ``o`` with
    symmetric padding ``p``; transposed ones need ``0 <= output_padding < max(stride, dilation)``."""
    unbounded = 1 << 62
    if transposed:
        room = o + 2 * p - k_eff  # = (i - 1) * stride + output_padding
        if room < 0:
            return 1, 0
        hi = room // (i - 1) if i > 1 else unbounded
        # output_padding = room - (i - 1) * stride < stride  <=>  stride > room / i;
        # < dilation  <=>  (i - 1) * stride > room - d
        by_stride = room // i + 1
        by_dilation = (room - d) // (i - 1) + 1 if i > 1 else (1 if room < d else unbounded)
        return min(by_stride, by_dilation), hi
    span = i + 2 * p - k_eff  # floor(span / stride) = o - 1
    if span < 0:
        return 1, 0
    return span // o + 1, (span // (o - 1) if o > 1 else unbounded)


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
    i = checked_int(op, "input_size", input_size, 1)
    o = checked_int(op, "output_size", output_size, 1)
    max_kernel = checked_int(op, "max_kernel", max_kernel, 1)
    max_dilation = checked_int(op, "max_dilation", max_dilation, 1)
    if max_stride is None:
        max_stride = max(2, (o // i + 1) if transposed else (i // o + 1))
    max_stride = checked_int(op, "max_stride", max_stride, 1)
    # (dilation, kernel, padding) triples are enumerated; the strides of each form one
    # interval, solved in closed form, so max_stride costs nothing
    triples = max_dilation * max_kernel * effective_kernel(max_kernel, max_dilation)
    if triples > _SOLVER_BUDGET:
        raise TransconvError(
            f"{op}: max_kernel={max_kernel} and max_dilation={max_dilation} ask for about {triples} kernel/padding "
            f"combinations; the solver enumerates at most {_SOLVER_BUDGET} (lower max_kernel or max_dilation)"
        )
    found = []
    for d in range(1, max_dilation + 1):
        for k in range(1, max_kernel + 1):
            if d > 1 and k == 1:
                continue
            k_eff = effective_kernel(k, d)
            for p in range(0, k_eff):
                lo, hi = _stride_interval(i, o, k_eff, p, d, transposed)
                lo, hi = max(lo, 1), min(hi, max_stride)
                if lo <= hi:
                    found.append((d, k, p, lo, hi))
    total = sum(hi - lo + 1 for *_, lo, hi in found)
    if total > _SOLVER_BUDGET:
        raise TransconvError(
            f"{op}: {total} geometries map {i} to {o} with strides up to max_stride={max_stride} "
            f"(the solver lists at most {_SOLVER_BUDGET}); lower max_stride"
        )
    choices = []
    for d, k, p, lo, hi in found:
        for s in range(lo, hi + 1):
            if transposed:
                choices.append(GeometryChoice(k, s, p, o - _transpose_length(i, k, s, (p, p), d, 0), d, k % s == 0))
            else:
                choices.append(GeometryChoice(k, s, p, 0, d, True))
    # checkerboard-free first, then the stride nearest the size ratio (the natural
    # up-/down-sampler), then the smallest kernel
    ratio = o / i if transposed else i / o
    choices.sort(
        key=lambda c: (not c.checkerboard_free, c.dilation, c.output_padding > 0, abs(c.stride - ratio), c.kernel_size, c.padding)
    )
    return choices
