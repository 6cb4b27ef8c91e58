"""Every bad argument raises TransconvError naming the operation and the parameter."""

from __future__ import annotations

import numpy as np
import pytest

import transconv as tc

x4 = np.ones((1, 2, 5, 5))
w_conv = np.ones((3, 2, 3, 3))  # conv: (C_out, C_in, k, k)
y4 = np.ones((1, 3, 4, 4))
w_t = np.ones((3, 2, 3, 3))  # conv_transpose: (C_in, C_out, k, k)

CONV_CASES = [
    # (kwargs or call, words the message must contain)
    (dict(x=np.ones((5, 5, 5, 5, 5)), w=w_conv), ["conv", "axes", "x"]),
    (dict(x=np.ones((5,)), w=w_conv), ["conv", "axes"]),
    (dict(x=np.ones((1, 4, 5, 5)), w=w_conv), ["channels", "4", "2"]),
    (dict(x=np.ones((1, 3, 5, 5)), w=np.ones((3, 1, 3, 3)), groups=2), ["groups", "divisible", "3"]),
    (dict(x=np.ones((1, 4, 5, 5)), w=np.ones((3, 2, 3, 3)), groups=2), ["output channels", "3", "groups"]),
    (dict(stride=0), ["stride", ">= 1", "0"]),
    (dict(stride=(1, -2)), ["stride[1]", "-2"]),
    (dict(dilation=0), ["dilation", "0"]),
    (dict(padding=-1), ["padding", ">= 0", "-1"]),
    (dict(padding=((0, 1), (-1, 0))), ["padding[1][0]", "-1"]),
    (dict(padding=(1, 1, 1)), ["padding", "2"]),
    (dict(padding="full"), ["padding", "'same'", "'full'"]),
    (dict(padding_mode="mirror"), ["padding_mode", "'reflect'", "'mirror'"]),
    (dict(w=np.ones((3, 2, 7, 3))), ["kernel", "larger", "7", "5"]),
    (dict(dilation=3), ["kernel", "effective size 7"]),
    (dict(w=np.ones((3, 2, 0, 3))), ["w", "empty"]),
    (dict(x=np.ones((1, 2, 0, 5))), ["x", "shape"]),
    (dict(stride=float("nan")), ["stride", "NaN"]),
    (dict(stride=1.5), ["stride", "1.5"]),
    (dict(padding=float("nan")), ["padding", "NaN"]),
    (dict(stride=True), ["stride", "True"]),
    (dict(groups=0), ["groups", "0"]),
    (dict(x=np.array([["a"]])), ["x", "numeric"]),
    (dict(x=x4 + 1j), ["x", "complex"]),
    (dict(w=np.ones((3, 2, 3, 3), dtype=object)), ["w", "numeric"]),
    (dict(bias=np.ones(2)), ["bias", "(3,)", "(2,)"]),
    (dict(method="fastest"), ["method", "'fastest'"]),
    (dict(x=[[1, 2], [3]], w=np.ones((2, 2))), ["x", "numeric"]),
    (dict(x=np.ones((4, 4)), w=np.ones((2, 2, 2))), ["4 channels", "C_out, C_in/groups"]),
    (dict(x=np.ones((4, 4, 4)), w=np.ones((2, 2)), plain=True), ["plain kernel", "same number"]),
    (dict(padding_mode="reflect", padding=1, x=np.ones((1, 2, 1, 5)), w=np.ones((3, 2, 1, 3))), ["reflect", "length"]),
]


@pytest.mark.parametrize("kwargs, words", CONV_CASES)
def test_conv_errors(kwargs, words):
    args = dict(x=x4, w=w_conv)
    args.update(kwargs)
    with pytest.raises(tc.TransconvError) as info:
        tc.conv(args.pop("x"), args.pop("w"), **args)
    message = str(info.value)
    assert message.startswith("conv:")
    for word in words:
        assert word in message, (word, message)


CONVT_CASES = [
    (dict(x=np.ones((1, 2, 4, 4))), ["channels", "2", "3"]),
    (dict(groups=2), ["groups", "divisible", "3"]),
    (dict(stride=2, output_padding=2), ["output_padding (2)", "stride (2)", "dilation (1)"]),
    (dict(stride=2, output_padding=-1), ["output_padding", "-1"]),
    (dict(output_padding=(0, 1)), ["output_padding (1)", "stride (1)"]),
    (dict(stride=2, output_size=(12, 9)), ["output size of 12", "valid sizes range from 9 to 10"]),
    (dict(output_size=(6, float("nan"))), ["output_size[1]", "NaN"]),
    (dict(output_size=(1, 2, 3, 4, 5)), ["output_size", "2 spatial"]),
    (dict(output_size="big"), ["output_size"]),
    (dict(padding=3), ["crops", "output shape", "(0, 0)"]),
    (dict(padding="same", output_padding=1, stride=2), ["output_padding", "same"]),
    (dict(padding_mode="wrap"), ["padding_mode", "'wrap'"]),
    (dict(bias=np.ones((2, 1))), ["bias", "(2,)"]),
    (dict(x=np.ones((1, 1, 3, 4, 4))), ["axes"]),
    (dict(w=np.ones((3, 2, 3))), ["axes", "1-d weight"]),
]


@pytest.mark.parametrize("kwargs, words", CONVT_CASES)
def test_conv_transpose_errors(kwargs, words):
    args = dict(x=y4, w=w_t)
    args.update(kwargs)
    with pytest.raises(tc.TransconvError) as info:
        tc.conv_transpose(args.pop("x"), args.pop("w"), **args)
    message = str(info.value)
    assert message.startswith("conv_transpose:")
    for word in words:
        assert word in message, (word, message)


def test_error_is_a_value_error_and_inputs_are_untouched():
    x = x4.copy()
    with pytest.raises(ValueError):
        tc.conv(x, w_conv, stride=0)
    np.testing.assert_array_equal(x, x4)


def test_choose_method_validates_too():
    with pytest.raises(tc.TransconvError, match="choose_method: stride"):
        tc.choose_method((1, 2, 5, 5), (3, 2, 3, 3), stride=0)
    with pytest.raises(tc.TransconvError, match="transposed=True"):
        tc.choose_method((1, 2, 5, 5), (3, 2, 3, 3), output_padding=1)


def test_choose_method_explains():
    choice = tc.choose_method((8, 64, 32, 32), (64, 32, 4, 4), transposed=True, stride=2, padding=1)
    assert choice.method in tc.METHODS and "cost" in choice.reason
    assert choice.method in str(choice)


# ---------------------------------------------------------------- fuzz: only results or TransconvError

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_values = st.one_of(
    st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
    st.text(max_size=3), st.sampled_from(["same", "valid", "SAME", "reflect"]),
    st.lists(st.integers(-2, 4), max_size=4).map(tuple),
    st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 3)), max_size=3).map(tuple),
)


@given(
    x_shape=st.lists(st.integers(0, 5), min_size=1, max_size=5).map(tuple),
    w_shape=st.lists(st.integers(0, 4), min_size=1, max_size=5).map(tuple),
    stride=_values, padding=_values, dilation=_values, groups=_values, output_padding=_values,
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular", "edge", 3]),
    transposed=st.booleans(),
)
def test_fuzzed_arguments_give_a_result_or_a_transconv_error(x_shape, w_shape, stride, padding, dilation, groups,
                                                               output_padding, mode, transposed):
    x = np.ones(x_shape)
    w = np.ones(w_shape)
    try:
        if transposed:
            out = tc.conv_transpose(x, w, None, stride, padding, output_padding, groups, dilation, padding_mode=mode)
        else:
            out = tc.conv(x, w, None, stride, padding, dilation, groups, padding_mode=mode)
    except tc.TransconvError as exc:
        assert str(exc).startswith("conv_transpose:" if transposed else "conv:")
        return
    assert np.isfinite(out).all() and out.size > 0
