"""Geometry: Dumoulin & Visin's 15 relationships, output_size, "same", the solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import transconv as tc
from transconv.spec import (
    conv_spec,
    conv_transpose_spec,
    effective_kernel,
    same_padding,
    transpose_same_padding,
    transposed_as_direct_conv,
)

sizes = st.integers(1, 40)
kernels = st.integers(1, 9)
strides = st.integers(1, 5)
pads = st.integers(0, 6)


# ------------------------------------------------------------- the guide, relationship by relationship
# Each relationship is checked against brute force: the window positions of an actual
# convolution, and for a transposed convolution the input length its convolution maps back.


def conv_positions(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Slide a kernel of ``k`` taps ``d`` apart over ``p`` zeros + ``i`` inputs + ``p`` zeros, ``s`` at a time."""
    padded = [0] * p + [1] * i + [0] * p
    count = 0
    for start in range(0, len(padded), s):
        taps = [start + t * d for t in range(k)]
        if all(q < len(padded) for q in taps):
            count += 1
    return count


def transposed_length(i_t: int, k: int, s: int = 1, p: int = 0, d: int = 1, a: int = 0) -> int:
    """The output length of the transposed convolution of ``i_t`` inputs: the shortest input its
    convolution maps to ``i_t`` outputs, plus ``a`` (which must map there too).  ``0`` means the
    padding alone gives ``i_t`` outputs: the geometry has no transposed output of its own."""
    n = next(n for n in range(0, s * i_t + d * k + 2 * p + 2) if conv_positions(n, k, s, p, d) == i_t)
    assert conv_positions(n + a, k, s, p, d) == i_t
    return n + a


def test_brute_force_counts_the_worked_example():
    assert conv_positions(4, 3) == 2 and transposed_length(2, 3) == 4
    assert conv_positions(5, 3, s=2, p=1) == 3 and transposed_length(3, 3, s=2, p=1, a=1) == 6


@given(sizes, kernels)
def test_relationship_1_no_padding_unit_stride(i, k):
    assume(k <= i)
    assert tc.dumoulin(1, i, k) == conv_positions(i, k) == tc.conv_output_length(i, k)


@given(sizes, kernels, pads)
def test_relationship_2_padding(i, k, p):
    assume(k <= i + 2 * p)
    assert tc.dumoulin(2, i, k, p=p) == conv_positions(i, k, p=p) == tc.conv_output_length(i, k, 1, p)


@given(sizes, st.integers(0, 4))
def test_relationship_3_half_padding(i, n):
    k = 2 * n + 1
    assert tc.dumoulin(3, i, k, p=n) == conv_positions(i, k, p=n) == i


@given(sizes, kernels)
def test_relationship_4_full_padding(i, k):
    assert tc.dumoulin(4, i, k, p=k - 1) == conv_positions(i, k, p=k - 1) == tc.conv_output_length(i, k, 1, k - 1)


@given(sizes, kernels, strides)
def test_relationships_5_and_7_strided_and_pooling(i, k, s):
    assume(k <= i)
    assert tc.dumoulin(5, i, k, s) == tc.dumoulin(7, i, k, s) == conv_positions(i, k, s) == tc.conv_output_length(i, k, s)


@given(sizes, kernels, strides, pads)
def test_relationship_6_padding_and_stride(i, k, s, p):
    assume(k <= i + 2 * p)
    assert tc.dumoulin(6, i, k, s, p) == conv_positions(i, k, s, p) == tc.conv_output_length(i, k, s, p)


@given(sizes, kernels)
def test_relationship_8_transpose_of_1(i_t, k):
    assert tc.dumoulin(8, i_t, k) == transposed_length(i_t, k) == tc.conv_transpose_output_length(i_t, k)
    # drawn as a direct convolution: full padding p' = k - 1
    assert transposed_as_direct_conv(conv_spec("t", (i_t + k - 1,), k)).padding == ((k - 1, k - 1),)


@given(sizes, kernels, pads)
def test_relationship_9_transpose_of_2(i_t, k, p):
    assume(2 * p < k + i_t - 1)  # the transposed output is not cropped away
    o = transposed_length(i_t, k, p=p)
    assert tc.dumoulin(9, i_t, k, p=p) == o == tc.conv_transpose_output_length(i_t, k, 1, p)
    if k - p - 1 >= 0:  # drawn as a direct convolution with p' = k - p - 1
        assert conv_positions(i_t, k, p=k - p - 1) == o


@given(sizes, st.integers(0, 4))
def test_relationship_10_half_padding_transposed(i_t, n):
    k = 2 * n + 1
    assert tc.dumoulin(10, i_t, k, p=n) == transposed_length(i_t, k, p=n) == i_t


@given(sizes, kernels)
def test_relationship_11_full_padding_transposed(i_t, k):
    assume(i_t > k - 1)
    assert tc.dumoulin(11, i_t, k, p=k - 1) == transposed_length(i_t, k, p=k - 1) == \
        tc.conv_transpose_output_length(i_t, k, 1, k - 1)


@given(sizes, kernels, strides)
def test_relationship_12_strided_transposed(i_t, k, s):
    assert tc.dumoulin(12, i_t, k, s) == transposed_length(i_t, k, s) == tc.conv_transpose_output_length(i_t, k, s)
    assert transposed_as_direct_conv(conv_spec("t", (s * (i_t - 1) + k,), k, s)).inserted_zeros == (s - 1,)


@given(sizes, kernels, strides, pads)
def test_relationship_13_strided_padded_transposed(i_t, k, s, p):
    assume(2 * p < s * (i_t - 1) + k)
    assert tc.dumoulin(13, i_t, k, s, p) == transposed_length(i_t, k, s, p) == tc.conv_transpose_output_length(i_t, k, s, p)


@given(sizes, kernels, strides, pads)
def test_relationship_14_adjustment_a(i, k, s, p):
    """Any conv input i maps to some o; the transpose of o recovers i with the right a."""
    assume(k <= i + 2 * p)
    o = conv_positions(i, k, s, p)
    assume(transposed_length(o, k, s, p) >= 1)  # else the padding alone makes o outputs
    a = i - transposed_length(o, k, s, p)  # how far i is past the shortest input mapping to o
    assert 0 <= a < s
    assert tc.dumoulin(14, o, k, s, p, a=a) == transposed_length(o, k, s, p, a=a) == i
    assert tc.conv_transpose_output_length(o, k, s, p, 1, a) == i
    assert conv_transpose_spec("t", (o,), k, s, p, output_size=[i]).output_padding == (a,)


@given(sizes, kernels, strides, pads, st.integers(1, 4))
def test_relationship_15_dilation(i, k, s, p, d):
    assume(effective_kernel(k, d) <= i + 2 * p)
    assert tc.dumoulin(15, i, k, s, p, d) == conv_positions(i, k, s, p, d) == tc.conv_output_length(i, k, s, p, d)


def test_dumoulin_rejects_unknown_relationship():
    with pytest.raises(tc.TransconvError, match="relationship"):
        tc.dumoulin(16, 4, 3)


@given(sizes, kernels, strides, st.tuples(pads, pads), st.integers(1, 3))
def test_transpose_inverts_conv_shape_for_every_output_padding(i, k, s, pad, d):
    """The s input lengths that a conv maps to the same o are exactly the transposed outputs."""
    k_eff = effective_kernel(k, d)
    assume(k_eff <= i + sum(pad))
    o = tc.conv_output_length(i, k, s, pad, d)
    smallest = tc.conv_transpose_output_length(o, k, s, pad, d, 0)
    assert smallest <= i < smallest + s
    for a in range(s):
        assert tc.conv_output_length(smallest + a, k, s, pad, d) == o


# ------------------------------------------------------------- output_size against PyTorch


@given(st.integers(1, 8), st.integers(1, 5), st.integers(1, 4), st.integers(0, 3), st.integers(1, 3), st.integers(0, 5))
def test_output_size_resolution_matches_torch(i, k, s, p, d, extra):
    layer = torch.nn.ConvTranspose1d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
    x = torch.zeros(1, 1, i)
    smallest = tc.conv_transpose_output_length(i, k, s, p, d)
    assume(smallest >= 1)
    target = smallest + extra
    try:
        expected = tuple(layer(x, output_size=[target]).shape[2:])
    except ValueError as exc:
        assert "valid sizes range" in str(exc)
        if extra < max(s, d):
            # PyTorch's output_size range stops at stride - 1 although F.conv_transpose1d
            # accepts output_padding < max(stride, dilation): ours follows the latter.
            spec = conv_transpose_spec("conv_transpose", (i,), k, s, p, dilation=d, output_size=[target])
            assert spec.output_padding == (extra,)
            out = torch.nn.functional.conv_transpose1d(x, layer.weight, None, s, p, extra, 1, d)
            assert spec.transpose_output_shape((i,)) == tuple(out.shape[2:])
        else:
            with pytest.raises(tc.TransconvError, match="valid sizes range"):
                conv_transpose_spec("conv_transpose", (i,), k, s, p, dilation=d, output_size=[target])
        return
    spec = conv_transpose_spec("conv_transpose", (i,), k, s, p, dilation=d, output_size=[target])
    assert spec.transpose_output_shape((i,)) == expected


def test_output_size_error_names_the_range():
    with pytest.raises(tc.TransconvError) as info:
        tc.conv_transpose(np.ones((3, 3)), np.ones((3, 3)), stride=2, padding=1, output_size=(8, 6))
    message = str(info.value)
    assert "conv_transpose" in message and "8" in message and "from 5 to 6" in message


def test_output_size_accepts_full_shapes():
    y = np.ones((2, 4, 3, 3))
    w = np.ones((4, 5, 3, 3))
    assert tc.conv_transpose(y, w, stride=2, padding=1, output_size=(2, 5, 6, 6)).shape == (2, 5, 6, 6)
    assert tc.conv_transpose(y, w, stride=2, padding=1, output_size=[6, 5]).shape == (2, 5, 6, 5)


# ------------------------------------------------------------- "same"


@given(sizes, kernels, strides, st.integers(1, 3))
def test_same_padding_keeps_ceil_input_over_stride(i, k, s, d):
    lo, hi = same_padding(i, k, s, d)
    assert hi - lo in (0, 1)
    assert tc.conv_output_length(i, k, s, (lo, hi), d) == -(-i // s)


@given(sizes, kernels, strides, st.integers(1, 3))
def test_transposed_same_is_input_times_stride(i, k, s, d):
    pad, a = transpose_same_padding(k, s, d)
    assert pad[1] - pad[0] in (0, 1) and 0 <= a < s
    assert tc.conv_transpose_output_length(i, k, s, pad, d, a) == i * s
    # and its crop is the padding of the "same" conv on the output
    assert same_padding(i * s, k, s, d) == pad


def test_padding_forms_normalise_to_pairs():
    assert conv_spec("conv", (5, 5), (3, 3), padding=1).padding == ((1, 1), (1, 1))
    assert conv_spec("conv", (5, 5), (3, 3), padding=(1, 2)).padding == ((1, 1), (2, 2))
    assert conv_spec("conv", (5, 5), (3, 3), padding=((0, 1), (2, 0))).padding == ((0, 1), (2, 0))
    assert conv_spec("conv", (5, 5), (3, 3), padding="VALID").padding == ((0, 0), (0, 0))
    assert conv_spec("conv", (5, 5), (4, 4), padding="same").padding == ((1, 2), (1, 2))
    assert conv_spec("conv", (5, 5), (3, 3), stride=[2]).stride == (2, 2)


def test_asymmetric_padding_equals_explicit_pad_then_valid():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 7))
    k = rng.standard_normal((3, 2))
    explicit = tc.conv(np.pad(x, ((0, 2), (1, 0))), k)
    np.testing.assert_allclose(tc.conv(x, k, padding=((0, 2), (1, 0))), explicit)


# ------------------------------------------------------------- the solver


@given(st.integers(1, 16), st.integers(1, 48))
def test_solver_choices_really_map_input_to_output(i, o):
    choices = tc.solve_geometry(i, o, max_kernel=6)
    for c in choices[:25]:
        out = tc.conv_transpose(np.ones(i), np.ones(c.kernel_size), stride=c.stride, padding=c.padding,
                                output_padding=c.output_padding, dilation=c.dilation)
        assert out.shape == (o,)
    flags = [c.checkerboard_free for c in choices]
    assert flags == sorted(flags, reverse=True)  # checkerboard-free first


def test_solver_seven_to_fourteen():
    choices = tc.solve_geometry(7, 14)
    assert choices[0].kernel_size % choices[0].stride == 0
    assert any((c.kernel_size, c.stride, c.padding) == (4, 2, 1) for c in choices)
    assert any((c.kernel_size, c.stride, c.padding, c.output_padding) == (3, 2, 1, 1) for c in choices)


def test_solver_direct_conv():
    for c in tc.solve_geometry(14, 7, transposed=False, max_kernel=5):
        assert tc.conv_output_length(14, c.kernel_size, c.stride, c.padding, c.dilation) == 7
