"""The connectivity tables against a brute-force loop and against every consumer that reads them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from transconv.connectivity import (
    axis_forward_tables,
    axis_inverse_csr,
    axis_tap_indices,
    forward_table,
    inverse_csr,
    transpose_axis_tap_indices,
)
from transconv.spec import ConvSpec

NUMPY_PAD = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@st.composite
def geometries(draw, modes=("zeros", "reflect", "replicate", "circular")):
    """A spec and its two grids: small (transposed input) and big (transposed output)."""
    ndim = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(modes))
    axes = []
    for _ in range(ndim):
        k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        small = draw(st.integers(1, 5))
        a = draw(st.integers(0, max(s, d) - 1))
        full = (small - 1) * s + d * (k - 1) + 1 + a  # the big axis before cropping
        lo = draw(st.integers(0, 3))
        hi = draw(st.integers(0, 3))
        assume(full - lo - hi >= 1)
        big = full - lo - hi
        if mode != "zeros":
            assume(lo <= big - 1 and hi <= big - 1 if mode == "reflect" else lo <= big and hi <= big)
        axes.append((k, s, d, lo, hi, a, small))
    k, s, d, lo, hi, a, small = zip(*axes)
    spec = ConvSpec(k, s, d, tuple(zip(lo, hi)), a, 1, mode)
    return spec, small, spec.transpose_output_shape(small)


def brute_force(spec: ConvSpec, small, big):
    """All (small, tap, big) triples by looping over positions and taps, padding through numpy.pad."""
    padded = []
    for n, (lo, hi) in zip(big, spec.padding):
        kw = {"constant_values": -1} if spec.padding_mode == "zeros" else {}
        padded.append(np.pad(np.arange(n), (lo, hi), mode=NUMPY_PAD[spec.padding_mode], **kw))
    triples = []
    for i in itertools.product(*map(range, small)):
        for t in itertools.product(*map(range, spec.kernel_size)):
            b = tuple(int(p[ia * s + ta * d]) for p, ia, ta, s, d in zip(padded, i, t, spec.stride, spec.dilation))
            if min(b) >= 0:
                triples.append((i, t, b))
    return triples


@settings(max_examples=150, deadline=None)
@given(geometries())
def test_forward_and_inverse_equal_brute_force(geometry):
    spec, small, big = geometry
    triples = brute_force(spec, small, big)
    flat = lambda index, shape: int(np.ravel_multi_index(index, shape))  # noqa: E731
    expected_table = np.full((int(np.prod(small)), int(np.prod(spec.kernel_size))), -1)
    expected_pairs = {b: [] for b in range(int(np.prod(big)))}
    for i, t, b in triples:
        fi, ft, fb = flat(i, small), flat(t, spec.kernel_size), flat(b, big)
        expected_table[fi, ft] = fb
        expected_pairs[fb].append((fi, ft))
    np.testing.assert_array_equal(forward_table(spec, small), expected_table)
    inverse = inverse_csr(spec, small)
    assert inverse.indptr[-1] == len(triples)
    for b, pairs in expected_pairs.items():
        assert inverse.pairs(b) == sorted(pairs, key=lambda p: (p[1], p[0]))


@settings(max_examples=150, deadline=None)
@given(geometries())
def test_per_axis_tables_equal_the_existing_maps_and_invert(geometry):
    spec, small, big = geometry
    tables = axis_forward_tables(spec, small)
    for table, existing in zip(tables, transpose_axis_tap_indices(spec, small)):
        np.testing.assert_array_equal(table, existing)
    for table, inverse, n in zip(tables, axis_inverse_csr(spec, small), big):
        assert len(inverse.indptr) == n + 1
        for b in range(n):
            expected = sorted(((int(i), int(t)) for i, t in zip(*np.nonzero(table == b))), key=lambda p: (p[1], p[0]))
            assert inverse.pairs(b) == expected


@settings(max_examples=100, deadline=None)
@given(geometries(), st.integers(0, 2))
def test_a_convolution_on_any_big_grid(geometry, extra):
    """The conv's own grid: small = conv_output_shape(big), also when big is not a transposed output size."""
    spec, _, big = geometry
    big = tuple(n + extra for n in big)
    small = spec.conv_output_shape(big)
    assume(min(small) >= 1)
    for table, existing in zip(axis_forward_tables(spec, small, big), axis_tap_indices(spec, big)):
        np.testing.assert_array_equal(table, existing)
    expected = np.full((int(np.prod(small)), int(np.prod(spec.kernel_size))), -1)
    for i, t, b in brute_force(spec, small, big):
        expected[np.ravel_multi_index(i, small), np.ravel_multi_index(t, spec.kernel_size)] = np.ravel_multi_index(b, big)
    np.testing.assert_array_equal(forward_table(spec, small, big), expected)


def test_tables_are_cached_and_read_only():
    spec = ConvSpec((3, 3), (2, 2), (1, 1), ((1, 1), (1, 1)), (1, 1))
    assert forward_table(spec, (4, 4)) is forward_table(spec, [4, 4])
    assert inverse_csr(spec, (4, 4)) is inverse_csr(spec, (4, 4))
    for array in (forward_table(spec, (4, 4)), *inverse_csr(spec, (4, 4)), *axis_forward_tables(spec, (4, 4)),
                  *axis_inverse_csr(spec, (4, 4))[0]):
        assert not array.flags.writeable
