"""Framework translation, checked against the real runtimes: onnxruntime, JAX, Keras 3 (JAX backend)."""

from __future__ import annotations

import itertools
import os
import re

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported anywhere

import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

import transconv as tc
from transconv import interop

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as ORT_INVALID_ARGUMENT  # noqa: E402

ORT_REFUSALS = (
    "Computed output shape is inconsistent with input spatial dimensions",  # output_padding >= stride
    "Computed output dimension is <= 0",
    "Explicit output_shape is inconsistent with input spatial dimensions",
)


def _close(got, expected):
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


def _placements(expected, full):
    """Every per-axis start at which ``expected`` (channels first) is a window of ``full``, the
    uncropped transposed convolution, extended by zeros on both sides."""
    e, f = expected.shape[2:], full.shape[2:]
    padded = np.pad(full, [(0, 0), (0, 0)] + [(n, n) for n in e])
    tol = 1e-4 * max(1.0, float(np.abs(full).max(initial=0.0)))
    corner = (0, 0) + (0,) * len(e)
    found = []
    for start in itertools.product(*(range(-n, m + 1) for n, m in zip(e, f))):
        window = padded[(slice(None), slice(None)) + tuple(slice(s + n, s + 2 * n) for s, n in zip(start, e))]
        if abs(window[corner] - expected[corner]) <= tol and np.abs(window - expected).max() <= tol:
            found.append(start)
    return found


def _assert_refusal_is_honest(exc, expected, full, strides, dilations):
    """A translation may refuse only an output that transconv cannot express: one that starts
    before the full result, or ends max(stride, dilation) or more samples past it, and its
    message must name an axis where that is so."""
    placements = _placements(expected, full)
    assert placements, f"the runtime's output is no window of the full transposed convolution ({exc})"
    message = str(exc)
    axis = int(re.search(r"on spatial axis (\d+)", message).group(1))
    named = []
    for start in placements:
        past = [s + e - f for s, e, f in zip(start, expected.shape[2:], full.shape[2:])]
        before = [s < 0 for s in start]
        beyond = [p >= max(st, d) for p, st, d in zip(past, strides, dilations)]
        assert any(before) or any(beyond), f"refused an output transconv can express (starts at {start}): {message}"
        named.append((" starts " in message and before[axis]) or (" extends " in message and beyond[axis]))
    assert any(named), f"the refusal names the wrong reason or axis for starts {placements}: {message}"


# ---------------------------------------------------------------- ONNX


def _run_onnx(x, w, **attrs):
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, w.shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the refusals below are expected; keep their log lines out of the output
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x, "w": w})[0]


@st.composite
def onnx_cases(draw):
    ndim = draw(st.integers(1, 3))
    per_axis = lambda lo, hi: [draw(st.integers(lo, hi)) for _ in range(ndim)]  # noqa: E731
    group = draw(st.sampled_from([1, 1, 2]))
    shape = per_axis(1, {1: 7, 2: 5, 3: 3}[ndim])
    kernel = per_axis(1, 4 if ndim < 3 else 3)
    strides = per_axis(1, 3)
    dilations = per_axis(1, 2)
    output_padding = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(strides, dilations)]
    mode = draw(st.sampled_from(["NOTSET", "pads", "SAME_UPPER", "SAME_LOWER", "VALID", "output_shape"]))
    attrs = dict(kernel_shape=kernel, strides=strides, dilations=dilations, group=group)
    if any(output_padding) and mode != "output_shape":
        attrs["output_padding"] = output_padding
    if mode in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        attrs["auto_pad"] = mode
    elif mode == "pads":
        attrs["pads"] = per_axis(0, 2) + per_axis(0, 2)
    elif mode == "output_shape":
        full = [(i - 1) * s + d * (k - 1) + 1 for i, s, d, k in zip(shape, strides, dilations, kernel)]
        attrs["output_shape"] = [max(1, f + draw(st.integers(-3, 1))) for f in full]
        if draw(st.booleans()):
            attrs["auto_pad"] = "SAME_UPPER"
    c_in, c_out = group * draw(st.integers(1, 2)), group * draw(st.integers(1, 2))
    return shape, c_in, c_out, attrs, draw(st.integers(0, 2**31))


@given(onnx_cases())
def test_from_onnx_matches_onnxruntime(case):
    shape, c_in, c_out, attrs, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c_in) + tuple(shape)).astype(np.float32)
    w = rng.standard_normal((c_in, c_out // attrs["group"]) + tuple(attrs["kernel_shape"])).astype(np.float32)
    try:
        expected = _run_onnx(x, w, **attrs)
    except ORT_INVALID_ARGUMENT as exc:  # onnxruntime's own shape checks, named exactly
        assert any(reason in str(exc) for reason in ORT_REFUSALS), str(exc)
        assume(False)
    assume(expected.size > 0)
    kwargs = {k: v for k, v in attrs.items() if k in ("strides", "pads", "auto_pad", "output_shape", "output_padding",
                                                       "dilations", "group")}
    try:
        translated = interop.from_onnx(shape, attrs["kernel_shape"], **kwargs)
        got = tc.conv_transpose(x, interop.weight_from_onnx(w), **translated)
    except tc.TransconvError as exc:
        full = tc.conv_transpose(x, w, stride=attrs["strides"], dilation=attrs["dilations"], groups=attrs["group"])
        _assert_refusal_is_honest(exc, expected, full, attrs["strides"], attrs["dilations"])
        event("refused with a reason")
        return
    event("compared with the runtime")
    assert got.shape == expected.shape
    _close(got, expected)


def test_onnxruntime_same_padding_places_the_odd_pixel_as_the_spec_says():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, 4)).astype(np.float32)
    w = rng.standard_normal((1, 1, 3)).astype(np.float32)
    full = tc.conv_transpose(x, w, stride=2)  # length 9, crop 1 to reach 8
    upper = _run_onnx(x, w, strides=[2], auto_pad="SAME_UPPER")
    lower = _run_onnx(x, w, strides=[2], auto_pad="SAME_LOWER")
    _close(upper, full[..., :8])  # SAME_UPPER: the odd pixel is cropped at the end
    _close(lower, full[..., 1:])  # SAME_LOWER: at the beginning
    _close(upper, tc.conv_transpose(x, w, stride=2, padding="same"))  # transconv's "same" = SAME_UPPER


def test_onnxruntime_same_with_short_kernel_differs_from_the_spec_text():
    """kernel 1, stride 2: the ONNX text asks for i*s = 8; onnxruntime returns the full 7."""
    x = np.ones((1, 1, 4), np.float32)
    w = np.ones((1, 1, 1), np.float32)
    assert _run_onnx(x, w, strides=[2], auto_pad="SAME_UPPER").shape[-1] == 7
    assert tc.conv_transpose(x, w, **interop.from_onnx((4,), (1,), strides=(2,), auto_pad="SAME_UPPER")).shape[-1] == 7
    spec = interop.from_onnx((4,), (1,), strides=(2,), auto_pad="SAME_UPPER", follow="spec")
    assert tc.conv_transpose(x, w, **spec).shape[-1] == 8


# ---------------------------------------------------------------- JAX and TensorFlow's rule

jax = pytest.importorskip("jax")
from jax import lax  # noqa: E402

_DIMS = {1: ("NHC", "HIO", "NHC"), 2: ("NHWC", "HWIO", "NHWC"), 3: ("NDHWC", "DHWIO", "NDHWC")}


@st.composite
def jax_cases(draw):
    ndim = draw(st.integers(1, 3))
    per_axis = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(ndim))  # noqa: E731
    shape = per_axis(1, {1: 7, 2: 5, 3: 3}[ndim])
    kernel = per_axis(1, 4 if ndim < 3 else 3)
    strides = per_axis(1, 3)
    dilation = per_axis(1, 2)
    padding = draw(st.sampled_from(["SAME", "VALID", "explicit"]))
    if padding == "explicit":
        padding = [(draw(st.integers(0, 4)), draw(st.integers(0, 4))) for _ in range(ndim)]
    return shape, kernel, strides, dilation, padding, draw(st.booleans()), draw(st.integers(0, 2**31))


@given(jax_cases())
def test_from_jax_matches_lax_conv_transpose(case):
    shape, kernel, strides, dilation, padding, transpose_kernel, seed = case
    rng = np.random.default_rng(seed)
    c_in, c_out = 2, 3
    x = rng.standard_normal((2,) + shape + (c_in,)).astype(np.float32)
    # HWIO as JAX reads it: I is the input for transpose_kernel=False, the output otherwise
    rhs = rng.standard_normal(kernel + ((c_in, c_out) if not transpose_kernel else (c_out, c_in))).astype(np.float32)
    expected = np.asarray(lax.conv_transpose(x, rhs, strides, padding, rhs_dilation=dilation,
                                             dimension_numbers=_DIMS[len(shape)], transpose_kernel=transpose_kernel))
    assume(expected.size > 0)
    try:
        kwargs = interop.from_jax(shape, kernel, strides, padding, rhs_dilation=dilation)
        got = tc.conv_transpose(interop.channels_first(x), interop.weight_from_jax(rhs, transpose_kernel), **kwargs)
    except tc.TransconvError as exc:
        w = interop.weight_from_jax(rhs, transpose_kernel)
        full = tc.conv_transpose(interop.channels_first(x), w, stride=strides, dilation=dilation)
        _assert_refusal_is_honest(exc, interop.channels_first(expected), full, strides, dilation)
        event("refused with a reason")
        return
    event("compared with the runtime")
    _close(interop.channels_last(got), expected)


@given(jax_cases())
def test_from_tensorflow_matches_tf_semantics(case):
    """TensorFlow's conv_transpose = lax.conv_transpose(..., transpose_kernel=True) with its padding string."""
    shape, kernel, strides, dilation, padding, _, seed = case
    assume(isinstance(padding, str))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1,) + shape + (2,)).astype(np.float32)
    filters = rng.standard_normal(kernel + (3, 2)).astype(np.float32)  # TF: (*k, out, in)
    expected = np.asarray(lax.conv_transpose(x, filters, strides, padding, rhs_dilation=dilation,
                                             dimension_numbers=_DIMS[len(shape)], transpose_kernel=True))
    assume(expected.size > 0)
    kwargs = interop.from_tensorflow(shape, kernel, strides, padding, output_shape=expected.shape[1:-1], dilations=dilation)
    got = tc.conv_transpose(interop.channels_first(x), interop.weight_from_tensorflow(filters), **kwargs)
    _close(interop.channels_last(got), expected)


def test_tensorflow_output_shape_out_of_range():
    with pytest.raises(tc.TransconvError, match="output_shape\\[0\\] = 11"):
        interop.from_tensorflow((4,), 3, 2, "SAME", output_shape=(11,))
    with pytest.raises(tc.TransconvError, match="output_shape is required"):
        interop.from_tensorflow((4,), 3, 2, "SAME")


# ---------------------------------------------------------------- Keras 3


@st.composite
def keras_cases(draw, max_ndim: int = 2):
    ndim = draw(st.integers(1, max_ndim))
    per_axis = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(ndim))  # noqa: E731
    shape = per_axis(1, 6 if ndim < 3 else 3)
    kernel = per_axis(1, 5 if ndim < 3 else 3)
    strides = per_axis(1, 3)
    dilation = per_axis(1, 2) if all(s == 1 for s in strides) and draw(st.booleans()) else (1,) * ndim
    padding = draw(st.sampled_from(["same", "valid"]))
    output_padding = None if draw(st.booleans()) else tuple(draw(st.integers(0, s - 1)) for s in strides)
    return shape, kernel, strides, dilation, padding, output_padding, draw(st.integers(0, 2**31))


@given(keras_cases())
def test_from_keras_matches_keras_layers(case):
    import keras

    shape, kernel, strides, dilation, padding, output_padding, seed = case
    rng = np.random.default_rng(seed)
    cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose}[len(shape)]
    layer = cls(3, kernel, strides=strides, padding=padding, output_padding=output_padding, dilation_rate=dilation,
                use_bias=False)
    x = rng.standard_normal((1,) + shape + (2,)).astype(np.float32)
    layer.build(x.shape)
    kernel_value = rng.standard_normal(tuple(layer.kernel.shape)).astype(np.float32)
    layer.kernel.assign(kernel_value)
    expected = np.asarray(layer(x))
    assume(expected.size > 0)
    try:
        kwargs = interop.from_keras(shape, kernel, strides, padding, output_padding, dilation)
    except tc.TransconvError as exc:
        w = interop.weight_from_tensorflow(kernel_value)
        full = tc.conv_transpose(interop.channels_first(x), w, stride=strides, dilation=dilation)
        _assert_refusal_is_honest(exc, interop.channels_first(expected), full, strides, dilation)
        event("refused with a reason")
        return
    event("compared with the runtime")
    got = tc.conv_transpose(interop.channels_first(x), interop.weight_from_tensorflow(kernel_value), **kwargs)
    assert interop.channels_last(got).shape == expected.shape
    _close(interop.channels_last(got), expected)


@given(keras_cases(max_ndim=3))
def test_from_tensorflow_matches_keras_layers(case):
    """TensorFlow's rule against Keras 3's own ConvNDTranspose layers (JAX backend): a layer without
    output_padding has TensorFlow's default output shape, and tf.nn.conv_transpose with that
    output_shape computes the same values."""
    import keras

    shape, kernel, strides, dilation, padding, _, seed = case
    rng = np.random.default_rng(seed)
    cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}[len(shape)]
    layer = cls(3, kernel, strides=strides, padding=padding, dilation_rate=dilation, use_bias=False)
    x = rng.standard_normal((1,) + shape + (2,)).astype(np.float32)
    layer.build(x.shape)
    filters = rng.standard_normal(tuple(layer.kernel.shape)).astype(np.float32)  # (*k, out, in), TensorFlow's layout
    layer.kernel.assign(filters)
    expected = np.asarray(layer(x))
    assume(expected.size > 0)
    kwargs = interop.from_tensorflow(shape, kernel, strides, padding.upper(), output_shape=expected.shape[1:-1],
                                     dilations=dilation)
    got = tc.conv_transpose(interop.channels_first(x), interop.weight_from_tensorflow(filters), **kwargs)
    assert interop.channels_last(got).shape == expected.shape
    _close(interop.channels_last(got), expected)


# ---------------------------------------------------------------- Caffe, MXNet, PyTorch agree on the shared cases


def test_caffe_and_mxnet_rules():
    assert interop.from_caffe(4, stride=2, pad=1)["padding"] == ((1, 1), (1, 1))
    # MXNet target_shape: pad = ceil(total / 2), adj = total % 2
    for i, k, s, target in [(4, 3, 2, 8), (4, 4, 2, 8), (5, 3, 3, 15), (3, 5, 2, 6)]:
        kwargs = interop.from_mxnet((i,), k, stride=s, target_shape=(target,))
        assert tc.conv_transpose(np.ones((1, 1, i)), np.ones((1, 1, k)), **kwargs).shape[-1] == target
    kwargs = interop.from_mxnet((4,), 3, stride=2, pad=1, adj=1)
    assert kwargs["padding"] == ((1, 1),) and kwargs["output_padding"] == (1,)


@pytest.mark.parametrize("call, words", [
    (lambda: interop.from_onnx((4,), (3,), auto_pad="SAME"), ["auto_pad", "'SAME'"]),
    (lambda: interop.from_onnx((4,), (3,), pads=[1]), ["pads", "2 integers"]),
    (lambda: interop.from_onnx((4,), (3,), strides=(2,), output_shape=(14,)), ["extends", "output_padding"]),
    (lambda: interop.from_jax((4,), 3, (2,), [(5, 0)]), ["starts", "before"]),
    (lambda: interop.from_keras((4,), 3, 2, "same", output_padding=2), ["output_padding[0]", "strides[0]"]),
    (lambda: interop.from_keras((4,), 3, 2, "full"), ["padding", "'full'"]),
    (lambda: interop.from_tensorflow((4,), 3, 0, "SAME", (8,)), ["strides[0]", ">= 1"]),
    (lambda: interop.weight_from_tensorflow(np.ones((3, 3))), ["filters", "(3, 3)"]),
    (lambda: interop.channels_first(np.ones((3, 3))), ["channels_first"]),
])
def test_translation_errors(call, words):
    with pytest.raises(tc.TransconvError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
