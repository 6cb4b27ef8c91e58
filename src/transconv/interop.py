"""Translation from other frameworks' transposed-convolution conventions.

Every ``from_*`` function takes a layer's arguments in that framework's own terms and
returns the keyword arguments for :func:`transconv.conv_transpose` (``stride``,
``padding`` as explicit ``(lo, hi)`` pairs, ``output_padding``, ``dilation`` and, where
the framework has it, ``groups``) that give the same numbers::

    y = tc.conv_transpose(x_nchw, w_ours, **tc.interop.from_onnx(x.shape[2:], (3, 3), strides=(2, 2), auto_pad="SAME_UPPER"))

The ``weight_from_*`` functions bring kernels into PyTorch's transposed layout
``(C_in, C_out / groups, *kernel)``; ``channels_first`` / ``channels_last`` move the
channel axis of NHWC data.  All shape arithmetic comes from :mod:`transconv.spec`.

How the frameworks differ, in transconv's terms (``full = (i - 1) * s + k_eff``):

* TensorFlow ``conv2d_transpose`` is the gradient of ``conv2d``: the crop is the
  forward padding of a conv on ``output_shape`` (SAME: odd pixel cropped at the end).
* Keras ``ConvXDTranspose`` computes the output length from ``padding`` and
  ``output_padding`` and pads the dilated input like JAX (TensorFlow's result wherever
  TensorFlow accepts that output shape).
* JAX ``lax.conv_transpose`` pads the stride-dilated input by ``(pad_a, pad_b)``; a
  crop is ``k_eff - 1 - pad``.  Without ``transpose_kernel`` the kernel is not flipped.
* ONNX ``ConvTranspose`` splits a total crop between begin and end: ``SAME_UPPER``
  puts the odd pixel at the end; ``SAME_LOWER`` and an explicit ``output_shape`` without
  auto_pad put it at the beginning.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .errors import TransconvError
from .spec import (
    checked_int,
    conv_transpose_output_length,
    effective_kernel,
    int_pairs,
    per_axis,
    per_axis_items,
    same_padding,
    spatial_shape,
)

__all__ = [
    "from_tensorflow",
    "from_keras",
    "from_jax",
    "from_onnx",
    "from_caffe",
    "from_mxnet",
    "weight_from_tensorflow",
    "weight_from_jax",
    "weight_from_onnx",
    "channels_first",
    "channels_last",
]

Pair = tuple[int, int]
_MAX_NDIM = 32  # NumPy's limit on the number of axes


# --------------------------------------------------------------------------------------
# Small validators.
# --------------------------------------------------------------------------------------


def _ints(op: str, name: str, value: Any, ndim: int, minimum: int, default: Optional[int] = None) -> tuple[int, ...]:
    """An int or ``ndim`` ints (the library's per-axis rule, :mod:`transconv.spec`); None takes ``default``."""
    if value is None:
        if default is None:
            raise TransconvError(f"{op}: {name} is required")
        value = default
    if per_axis_items(op, name, value) is None:  # one value for every axis: messages name the entry, strides[0]
        value = [value] * ndim
    return per_axis(op, name, value, ndim, minimum)


def _last(op: str, name: str, value: Any, ndim: int) -> tuple[int, ...]:
    """A spatial shape given alone or as the last ``ndim`` entries of a full shape."""
    items = per_axis_items(op, name, value)
    return _ints(op, name, value if items is None else items[-ndim:], ndim, 1)


def _shape(op: str, input_shape: Any) -> tuple[int, ...]:
    return spatial_shape(op, input_shape)


def _with_axes(op: str, name: str, value: Any, layout: str) -> np.ndarray:
    """``value`` as an array of at least 3 axes (``layout`` names them for the error)."""
    array = np.asarray(value)
    if array.ndim < 3:
        raise TransconvError(f"{op}: {name} must be {layout} with >= 3 axes, got shape {array.shape}")
    return array


def _split_output_padding(op: str, axis: int, lo: int, hi: int, extra: int, s: int, d: int) -> tuple[Pair, int]:
    """Express a crop ``(lo, hi)`` plus ``extra`` high-side samples in transconv's terms.

    A negative ``hi`` (the output reaches past the full result) becomes output_padding:
    those positions receive no kernel tap and hold zero, as in the other frameworks.
    """
    if lo < 0:
        raise TransconvError(
            f"{op}: the layer's output starts {-lo} sample(s) before the full transposed convolution on spatial "
            f"axis {axis}; transconv crops but does not extend at the beginning (needs a begin crop >= 0)"
        )
    output_padding = extra
    if hi < 0:
        output_padding, hi = output_padding - hi, 0
    if output_padding >= max(s, d):
        raise TransconvError(
            f"{op}: the layer's output extends {output_padding} sample(s) past the cropped result on spatial axis "
            f"{axis}; transconv's output_padding must be smaller than stride ({s}) or dilation ({d})"
        )
    return (lo, hi), output_padding


def _translated(op: str, stride, dilation, crops, extras, groups: Optional[int] = None) -> dict:
    """Per-axis crops ``(lo, hi)`` and extra high-side samples, through :func:`_split_output_padding`,
    as the dict every translator returns."""
    pads, output_padding = [], []
    for a, ((lo, hi), extra, s, d) in enumerate(zip(crops, extras, stride, dilation)):
        pair, opad = _split_output_padding(op, a, lo, hi, extra, s, d)
        pads.append(pair)
        output_padding.append(opad)
    return _result(stride, pads, output_padding, dilation, groups)


def _result(stride, pads, output_padding, dilation, groups: Optional[int] = None) -> dict:
    out = {"stride": tuple(stride), "padding": tuple(pads), "output_padding": tuple(output_padding),
           "dilation": tuple(dilation)}
    if groups is not None:
        out["groups"] = groups
    return out


def _padding_string(op: str, padding: Any, allowed: Sequence[str]) -> Optional[str]:
    if isinstance(padding, str):
        key = padding.upper()
        if key not in allowed:
            raise TransconvError(f"{op}: padding must be one of {', '.join(map(repr, allowed))} or explicit pairs, got {padding!r}")
        return key
    return None


# --------------------------------------------------------------------------------------
# TensorFlow and Keras.
# --------------------------------------------------------------------------------------


def from_tensorflow(
    input_shape: Sequence[int],
    kernel_size: Any,
    strides: Any = 1,
    padding: Any = "VALID",
    output_shape: Optional[Sequence[int]] = None,
    dilations: Any = 1,
) -> dict:
    """``tf.nn.conv{1,2,3}d_transpose`` / ``tf.nn.conv_transpose`` arguments in transconv's terms.

    TensorFlow's transposed convolution is the gradient of ``conv`` on ``output_shape``
    with the same ``padding`` ("SAME", "VALID" or explicit ``(lo, hi)`` pairs per spatial
    axis), so the crop is that convolution's padding and ``output_shape`` picks
    ``output_padding``.

    Parameters
    ----------
    input_shape : sequence of int
        Spatial shape of the input (no batch or channel axes).
    kernel_size : int or sequence of int
        Spatial kernel size (the filters are ``(*kernel, out, in)``; see
        :func:`weight_from_tensorflow`).
    strides, dilations : int or sequence of int
        Spatial values only.
    padding : {"SAME", "VALID"} or sequence of (lo, hi)
    output_shape : sequence of int
        Spatial output shape (required by TensorFlow, and here).

    Examples
    --------
    >>> from_tensorflow((4, 4), 3, strides=2, padding="SAME", output_shape=(8, 8))
    {'stride': (2, 2), 'padding': ((0, 1), (0, 1)), 'output_padding': (0, 0), 'dilation': (1, 1)}
    """
    op = "from_tensorflow"
    shape = _shape(op, input_shape)
    ndim = len(shape)
    kernel = _ints(op, "kernel_size", kernel_size, ndim, 1)
    stride = _ints(op, "strides", strides, ndim, 1)
    dilation = _ints(op, "dilations", dilations, ndim, 1)
    if output_shape is None:
        raise TransconvError(f"{op}: output_shape is required (TensorFlow's transposed convolution takes it explicitly)")
    out = _last(op, "output_shape", output_shape, ndim)
    key = _padding_string(op, padding, ("SAME", "VALID"))
    if key == "SAME":
        conv_pads = [same_padding(o, k, s, d) for o, k, s, d in zip(out, kernel, stride, dilation)]
    elif key == "VALID":
        conv_pads = [(0, 0)] * ndim
    else:
        conv_pads = list(int_pairs(op, "padding", padding, None, ndim))
        if any(v < 0 for p in conv_pads for v in p):
            raise TransconvError(f"{op}: explicit padding must be >= 0, got {padding!r}")
    extras = []
    for a, (i, o, k, s, d, pair) in enumerate(zip(shape, out, kernel, stride, dilation, conv_pads)):
        smallest = conv_transpose_output_length(i, k, s, pair, d, 0)
        if not smallest <= o < smallest + s:
            raise TransconvError(
                f"{op}: output_shape[{a}] = {o} is not an input length that a stride-{s} convolution with this "
                f"padding maps to {i}; valid lengths are {smallest} to {smallest + s - 1}"
            )
        extras.append(o - smallest)
    return _translated(op, stride, dilation, conv_pads, extras)


def keras_output_length(i: int, kernel: int, padding: str, output_padding: Optional[int], stride: int, dilation: int = 1) -> int:
    """Keras's ``deconv_output_length``: the output length of a ``ConvXDTranspose`` layer.

    ``valid``: ``(i-1)*s + k_eff + output_padding`` with ``output_padding = max(k_eff, s) - k_eff``
    when None; ``same``: ``i*s`` when None, else ``(i-1)*s + k_eff % 2 + output_padding``.

    >>> keras_output_length(4, 3, "valid", None, 2)
    9
    >>> keras_output_length(4, 3, "same", 1, 2)
    8
    """
    k_eff = effective_kernel(kernel, dilation)
    if output_padding is None:
        return i * stride + max(k_eff - stride, 0) if padding == "valid" else i * stride
    pad = k_eff // 2 if padding == "same" else 0
    return (i - 1) * stride + k_eff - 2 * pad + output_padding


def keras_padding(kernel: int, stride: int, padding: str, output_padding: Optional[int], dilation: int = 1) -> Pair:
    """The ``(pad_a, pad_b)`` on the stride-dilated input that Keras 3 uses to reach :func:`keras_output_length`.

    Keras states its transposed convolution as a stride-1 convolution over the dilated
    input (as JAX does); this is its padding rule, which agrees with TensorFlow's
    wherever TensorFlow accepts the output shape.

    >>> keras_padding(3, 2, "same", None), keras_padding(2, 2, "same", 0)
    ((2, 1), (0, 0))
    """
    k = effective_kernel(kernel, dilation)
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return k - 1, k - 1 + extra
    total = stride + k - 2 if output_padding is None else k + k % 2 - 2 + output_padding
    first = min(total // 2 + total % 2, k - 1)
    return first, total - first


def from_keras(
    input_shape: Sequence[int],
    kernel_size: Any,
    strides: Any = 1,
    padding: str = "valid",
    output_padding: Any = None,
    dilation_rate: Any = 1,
) -> dict:
    """``keras.layers.Conv{1,2,3}DTranspose`` arguments in transconv's terms.

    Keras 3 fixes the output length by :func:`keras_output_length` and places it with
    the padding of :func:`keras_padding` on the stride-dilated input; that padding is
    translated like JAX's (:func:`from_jax`).  Where TensorFlow accepts the same output
    shape the result is TensorFlow's.  The kernel is ``(*kernel, filters, in)``: use
    :func:`weight_from_tensorflow`.

    Examples
    --------
    >>> from_keras((5,), 4, strides=2, padding="same")
    {'stride': (2,), 'padding': ((1, 1),), 'output_padding': (0,), 'dilation': (1,)}
    """
    op = "from_keras"
    shape = _shape(op, input_shape)
    ndim = len(shape)
    kernel = _ints(op, "kernel_size", kernel_size, ndim, 1)
    stride = _ints(op, "strides", strides, ndim, 1)
    dilation = _ints(op, "dilation_rate", dilation_rate, ndim, 1)
    if not isinstance(padding, str) or padding.lower() not in ("same", "valid"):
        raise TransconvError(f"{op}: padding must be 'same' or 'valid', got {padding!r}")
    padding = padding.lower()
    extra = [None] * ndim if output_padding is None else list(_ints(op, "output_padding", output_padding, ndim, 0))
    for a, (e, s) in enumerate(zip(extra, stride)):
        if e is not None and e >= s:
            raise TransconvError(f"{op}: output_padding[{a}] ({e}) must be smaller than strides[{a}] ({s}), as Keras requires")
    pairs = [keras_padding(k, s, padding, e, d) for k, s, e, d in zip(kernel, stride, extra, dilation)]
    return _from_dilated_padding(op, kernel, stride, dilation, pairs)


def weight_from_tensorflow(filters: Any) -> np.ndarray:
    """TensorFlow/Keras transposed-conv filters ``(*kernel, out, in)`` -> transconv's ``(in, out, *kernel)``.

    No spatial flip: TensorFlow's transposed convolution uses the forward kernel.

    >>> weight_from_tensorflow(np.zeros((3, 5, 2, 7))).shape
    (7, 2, 3, 5)
    """
    f = _with_axes("weight_from_tensorflow", "filters", filters, "(*kernel, out, in)")
    return np.ascontiguousarray(np.moveaxis(f, (-1, -2), (0, 1)))


# --------------------------------------------------------------------------------------
# JAX.
# --------------------------------------------------------------------------------------


def jax_padding(kernel: int, stride: int, padding: str, dilation: int = 1) -> Pair:
    """The ``(pad_a, pad_b)`` that ``lax.conv_transpose`` applies to the stride-dilated input.

    >>> jax_padding(3, 2, "SAME"), jax_padding(3, 2, "VALID")
    ((2, 1), (2, 2))
    """
    k = effective_kernel(kernel, dilation)
    if padding == "SAME":
        total = k + stride - 2
        first = k - 1 if stride > k - 1 else -(-total // 2)
    else:  # VALID
        total = k + stride - 2 + max(k - stride, 0)
        first = k - 1
    return first, total - first


def from_jax(
    input_shape: Sequence[int],
    kernel_size: Any,
    strides: Any,
    padding: Any,
    rhs_dilation: Any = None,
) -> dict:
    """``jax.lax.conv_transpose`` arguments in transconv's terms.

    JAX pads the stride-dilated input by ``(pad_a, pad_b)`` (from "SAME"/"VALID", or
    explicit pairs) and runs a stride-1 convolution; a pad of ``k_eff - 1`` is no crop,
    so transconv's crop is ``k_eff - 1 - pad``.  Use :func:`weight_from_jax` for the kernel.

    Examples
    --------
    >>> from_jax((4,), 3, (2,), "SAME")
    {'stride': (2,), 'padding': ((0, 1),), 'output_padding': (0,), 'dilation': (1,)}
    """
    op = "from_jax"
    shape = _shape(op, input_shape)
    ndim = len(shape)
    kernel = _ints(op, "kernel_size", kernel_size, ndim, 1)
    stride = _ints(op, "strides", strides, ndim, 1)
    dilation = _ints(op, "rhs_dilation", rhs_dilation, ndim, 1, default=1)
    key = _padding_string(op, padding, ("SAME", "VALID"))
    if key is not None:
        dilated_pads = [jax_padding(k, s, key, d) for k, s, d in zip(kernel, stride, dilation)]
    else:
        dilated_pads = list(int_pairs(op, "padding", padding, None, ndim))
    return _from_dilated_padding(op, kernel, stride, dilation, dilated_pads)


def _from_dilated_padding(op: str, kernel, stride, dilation, dilated_pads) -> dict:
    """Padding ``(pad_a, pad_b)`` on the stride-dilated input (JAX, Keras 3) as transconv's crop:
    a pad of ``k_eff - 1`` is no crop."""
    crops = []
    for k, d, (pa, pb) in zip(kernel, dilation, dilated_pads):
        k_eff = effective_kernel(k, d)
        crops.append((k_eff - 1 - pa, k_eff - 1 - pb))
    return _translated(op, stride, dilation, crops, [0] * len(crops))


def weight_from_jax(rhs: Any, transpose_kernel: bool = False) -> np.ndarray:
    """A ``lax.conv_transpose`` kernel in ``HWIO`` layout -> transconv's ``(in, out, *kernel)``.

    With ``transpose_kernel=False`` (JAX's default) ``I`` is the transposed conv's input
    and the kernel is applied unflipped over the dilated input, which is transconv's
    kernel flipped.  With ``transpose_kernel=True`` (TensorFlow's convention) the layout is
    the forward conv's, ``(*kernel, out, in)``, exactly as :func:`weight_from_tensorflow`.

    >>> weight_from_jax(np.arange(6.0).reshape(3, 1, 2), transpose_kernel=False)[0].tolist()
    [[4.0, 2.0, 0.0], [5.0, 3.0, 1.0]]
    """
    r = _with_axes("weight_from_jax", "rhs", rhs, "(*kernel, I, O)")
    if transpose_kernel:
        return weight_from_tensorflow(r)
    spatial = tuple(range(r.ndim - 2))
    return np.ascontiguousarray(np.moveaxis(np.flip(r, axis=spatial), (-2, -1), (0, 1)))


# --------------------------------------------------------------------------------------
# ONNX.
# --------------------------------------------------------------------------------------


def from_onnx(
    input_shape: Sequence[int],
    kernel_shape: Any,
    strides: Any = None,
    pads: Optional[Sequence[int]] = None,
    auto_pad: str = "NOTSET",
    output_shape: Optional[Sequence[int]] = None,
    output_padding: Any = None,
    dilations: Any = None,
    group: int = 1,
    *,
    follow: str = "onnxruntime",
) -> dict:
    """ONNX ``ConvTranspose`` attributes in transconv's terms (W is already ``(C, M/group, *k)``).

    * ``pads`` is ``[begin_1, ..., begin_n, end_1, ..., end_n]``, used when ``auto_pad`` is
      NOTSET and there is no ``output_shape``.
    * ``output_shape`` (spatial, or a full shape): ``total = s*(i-1) + output_padding + k_eff - o``
      is cropped with the odd pixel at the end for SAME_UPPER and at the beginning
      otherwise; ``pads`` is ignored.  A negative total extends the end with zeros.
    * ``auto_pad`` SAME_UPPER / SAME_LOWER aim at ``o = i * s``.  When ``k_eff < s`` that is
      longer than the full result; the ONNX text still asks for ``i * s`` (``follow="spec"``)
      while onnxruntime returns the full ``s*(i-1) + k_eff`` (``follow="onnxruntime"``, the
      default, checked against onnxruntime in the tests).

    Examples
    --------
    >>> from_onnx((4, 4), (3, 3), strides=(2, 2), auto_pad="SAME_LOWER")
    {'stride': (2, 2), 'padding': ((1, 0), (1, 0)), 'output_padding': (0, 0), 'dilation': (1, 1), 'groups': 1}
    """
    op = "from_onnx"
    shape = _shape(op, input_shape)
    ndim = len(shape)
    kernel = _ints(op, "kernel_shape", kernel_shape, ndim, 1)
    stride = _ints(op, "strides", strides, ndim, 1, default=1)
    dilation = _ints(op, "dilations", dilations, ndim, 1, default=1)
    extra = _ints(op, "output_padding", output_padding, ndim, 0, default=0)
    group = checked_int(op, "group", group, 1)
    if auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise TransconvError(f"{op}: auto_pad must be 'NOTSET', 'SAME_UPPER', 'SAME_LOWER' or 'VALID', got {auto_pad!r}")
    if follow not in ("onnxruntime", "spec"):
        raise TransconvError(f"{op}: follow must be 'onnxruntime' or 'spec', got {follow!r}")
    full = [conv_transpose_output_length(i, k, s, 0, d, a) for i, k, s, d, a in zip(shape, kernel, stride, dilation, extra)]
    if output_shape is not None:
        target = _last(op, "output_shape", output_shape, ndim)
        totals = [f - o for f, o in zip(full, target)]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [f - i * s for f, i, s in zip(full, shape, stride)]
        if follow == "onnxruntime":
            totals = [max(t, 0) for t in totals]
    else:
        totals = None
    if totals is not None:
        upper = auto_pad == "SAME_UPPER"
        begin_end = []
        for t in totals:
            if t < 0:  # longer than the full result: zeros at the end
                begin_end.append((0, t))
            else:
                small, large = t // 2, t - t // 2
                begin_end.append((small, large) if upper else (large, small))
    elif auto_pad == "VALID" or pads is None:
        begin_end = [(0, 0)] * ndim
    else:
        flat = per_axis_items(op, "pads", pads)
        if flat is None or len(flat) != 2 * ndim:
            raise TransconvError(f"{op}: pads must be {2 * ndim} integers >= 0 (all begins, then all ends), got {pads!r}")
        flat = [checked_int(op, f"pads[{a}]", v, 0) for a, v in enumerate(flat)]
        begin_end = list(zip(flat[:ndim], flat[ndim:]))
    return _translated(op, stride, dilation, begin_end, extra, int(group))


def weight_from_onnx(W: Any) -> np.ndarray:
    """ONNX ConvTranspose's ``W`` is ``(C, M/group, *kernel)``, transconv's layout already.

    >>> weight_from_onnx(np.zeros((4, 2, 3, 3))).shape
    (4, 2, 3, 3)
    """
    return _with_axes("weight_from_onnx", "W", W, "(C, M/group, *kernel)")


# --------------------------------------------------------------------------------------
# Caffe, MXNet.
# --------------------------------------------------------------------------------------


def from_caffe(kernel_size: Any, stride: Any = 1, pad: Any = 0, dilation: Any = 1, ndim: int = 2) -> dict:
    """Caffe ``Deconvolution``: ``o = s*(i-1) + k_eff - 2*pad``, no output adjustment.

    >>> from_caffe(4, stride=2, pad=1)
    {'stride': (2, 2), 'padding': ((1, 1), (1, 1)), 'output_padding': (0, 0), 'dilation': (1, 1)}
    """
    op = "from_caffe"
    ndim = checked_int(op, "ndim", ndim, 1)
    if ndim > _MAX_NDIM:
        raise TransconvError(f"{op}: ndim must be from 1 to {_MAX_NDIM} spatial axes, got {ndim}")
    stride_t = _ints(op, "stride", stride, ndim, 1)
    pad_t = _ints(op, "pad", pad, ndim, 0)
    _ints(op, "kernel_size", kernel_size, ndim, 1)
    return _result(stride_t, [(p, p) for p in pad_t], (0,) * ndim, _ints(op, "dilation", dilation, ndim, 1))


def from_mxnet(
    input_shape: Sequence[int],
    kernel: Any,
    stride: Any = 1,
    dilate: Any = 1,
    pad: Any = 0,
    adj: Any = 0,
    target_shape: Optional[Sequence[int]] = None,
) -> dict:
    """MXNet ``Deconvolution``: ``adj`` is output_padding; ``target_shape`` overrides ``pad`` and ``adj``.

    With ``target_shape`` the total crop ``full - target`` is split evenly with the odd
    pixel as extra output (MXNet's rule: ``pad = ceil(total / 2)`` and ``adj = total % 2``).

    >>> from_mxnet((4,), 3, stride=2, target_shape=(8,))
    {'stride': (2,), 'padding': ((1, 1),), 'output_padding': (1,), 'dilation': (1,)}
    """
    op = "from_mxnet"
    shape = _shape(op, input_shape)
    ndim = len(shape)
    k = _ints(op, "kernel", kernel, ndim, 1)
    s = _ints(op, "stride", stride, ndim, 1)
    d = _ints(op, "dilate", dilate, ndim, 1)
    if target_shape is None:
        p = _ints(op, "pad", pad, ndim, 0)
        return _translated(op, s, d, [(pp, pp) for pp in p], _ints(op, "adj", adj, ndim, 0))
    target = _last(op, "target_shape", target_shape, ndim)
    totals = [conv_transpose_output_length(i, kk, ss, 0, dd, 0) - t for i, kk, ss, dd, t in zip(shape, k, s, d, target)]
    halves = [-(-total // 2) for total in totals]
    return _translated(op, s, d, [(h, h) for h in halves], [2 * h - t for h, t in zip(halves, totals)])


# --------------------------------------------------------------------------------------
# Data layouts.
# --------------------------------------------------------------------------------------


def channels_first(x: Any) -> np.ndarray:
    """``(N, *spatial, C)`` (NHWC, NDHWC, ...) -> ``(N, C, *spatial)``.

    >>> channels_first(np.zeros((2, 5, 6, 3))).shape
    (2, 3, 5, 6)
    """
    x = _with_axes("channels_first", "x", x, "(N, *spatial, C)")
    return np.moveaxis(x, -1, 1)


def channels_last(x: Any) -> np.ndarray:
    """``(N, C, *spatial)`` -> ``(N, *spatial, C)``.

    >>> channels_last(np.zeros((2, 3, 5, 6))).shape
    (2, 5, 6, 3)
    """
    x = _with_axes("channels_last", "x", x, "(N, C, *spatial)")
    return np.moveaxis(x, 1, -1)
