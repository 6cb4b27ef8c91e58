"""transconv.dask: chunked conv / conv_transpose equal the in-memory operators, chunk borders included."""

from __future__ import annotations

import re

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import transconv as tc
import transconv.dask as tcd
from transconv import TransconvError

from _strategies import Case, cases, tolerance

MODES = ["zeros", "reflect", "replicate", "circular"]


@pytest.fixture(autouse=True)
def _synchronous():
    # one thread: the property tests build hundreds of tiny graphs; threads only add overhead
    with dask.config.set(scheduler="sync"):
        yield


@st.composite
def chunkings(draw, shape: tuple[int, ...], channel_axis: int | None) -> tuple[tuple[int, ...], ...]:
    """A random partition of every axis except the channel axis (one chunk)."""
    out = []
    for axis, n in enumerate(shape):
        if axis == channel_axis or n == 1:
            out.append((n,))
            continue
        cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=min(n - 1, 5))))
        edges = [0, *cuts, n]
        out.append(tuple(b - a for a, b in zip(edges[:-1], edges[1:])))
    return tuple(out)


@st.composite
def paddings(draw, case: Case):
    kind = draw(st.sampled_from(["symmetric", "pairs", "same"]))
    if kind == "symmetric":
        return case.padding
    if kind == "same":
        return "same"
    extra = [draw(st.integers(0, 2)) for _ in case.padding]
    return tuple((p, p + e) for p, e in zip(case.padding, extra))


def _chunked(x: np.ndarray, batch: int | None, data) -> da.Array:
    chunks = data.draw(chunkings(x.shape, 0 if batch is None else 1), label="chunks")
    return da.from_array(x, chunks=chunks)


def _same_error_or_equal(memory, chunked, dtype, x, w, b):
    """The chunked call equals the in-memory one, or raises the very same TransconvError."""
    try:
        expected = memory()
    except TransconvError as exc:
        expected = exc
    if isinstance(expected, TransconvError):
        event("refused by the in-memory operator")
        with pytest.raises(TransconvError, match=re.escape(str(expected))):
            chunked()
    else:
        got = chunked()
        assert isinstance(got, da.Array)
        result = got.compute()
        assert result.shape == expected.shape and result.dtype == expected.dtype
        np.testing.assert_allclose(result, expected, **tolerance(dtype, x, w, b))


@settings(max_examples=100)
@given(cases(), st.sampled_from(MODES), st.data())
def test_conv_equals_in_memory_on_random_specs_and_chunkings(case: Case, mode: str, data):
    x, w, b = case.arrays(transposed=False)
    kwargs = dict(stride=case.stride, padding=data.draw(paddings(case)), dilation=case.dilation,
                  groups=case.groups, padding_mode=mode)
    xd = _chunked(x, case.batch, data)
    _same_error_or_equal(lambda: tc.conv(x, w, b, **kwargs), lambda: tcd.conv(xd, w, b, **kwargs), case.dtype, x, w, b)


@settings(max_examples=100)
@given(cases(), st.sampled_from(MODES), st.booleans(), st.data())
def test_conv_transpose_equals_in_memory_on_random_specs_and_chunkings(case: Case, mode: str, by_size: bool, data):
    y, w, b = case.arrays(transposed=True)
    padding = data.draw(paddings(case))
    kwargs = dict(stride=case.stride, padding=padding, groups=case.groups, dilation=case.dilation, padding_mode=mode)
    if padding == "same":
        pass  # output_padding is implied
    elif by_size:  # output_size names the case's output length; resolved to the same output_padding
        kwargs["output_size"] = [b_ + sum(p) - 2 * p0 if isinstance(p, tuple) else b_
                                 for b_, p, p0 in zip(case.big, padding, case.padding)]
    else:
        kwargs["output_padding"] = case.output_padding
    yd = _chunked(y, case.batch, data)
    _same_error_or_equal(lambda: tc.conv_transpose(y, w, b, **kwargs), lambda: tcd.conv_transpose(yd, w, b, **kwargs),
                         case.dtype, y, w, b)


# --------------------------------------------------------------------------------------
# Chunk borders, halos wider than a chunk, output chunk layout.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_halo_spanning_several_chunks_in_3d(mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8, 7))
    w = rng.standard_normal((4, 3, 5, 4, 3))
    kwargs = dict(stride=(1, 2, 1), padding=((4, 2), 3, (0, 2)), dilation=(2, 1, 1), padding_mode=mode)
    got = tcd.conv(da.from_array(x, chunks=(1, 3, 1, 2, 3)), w, **kwargs)
    np.testing.assert_allclose(got.compute(), tc.conv(x, w, **kwargs), rtol=1e-12, atol=1e-10)
    y = rng.standard_normal((2, 4, 5, 4, 3))
    kwargs = dict(stride=(3, 2, 1), padding=((4, 2), 3, (0, 2)), output_padding=(2, 1, 0), dilation=(1, 1, 2),
                  padding_mode=mode)
    got = tcd.conv_transpose(da.from_array(y, chunks=(2, 4, 1, 1, 2)), w, **kwargs)
    np.testing.assert_allclose(got.compute(), tc.conv_transpose(y, w, **kwargs),
                               rtol=1e-12, atol=1e-10)


def test_circular_padding_wraps_around_the_whole_array():
    x = np.arange(10.0)
    w = np.array([1.0, 0.0, 0.0, 0.0, 0.0])  # picks the sample 2 to the left
    got = tcd.conv(da.from_array(x, chunks=3), w, padding=2, padding_mode="circular").compute()
    np.testing.assert_array_equal(got, np.roll(x, 2))
    # and the adjoint of that shift is the opposite shift
    back = tcd.conv_transpose(da.from_array(got, chunks=4), w, padding=2, padding_mode="circular").compute()
    np.testing.assert_array_equal(back, x)


def test_output_chunks_are_aligned_with_the_input_chunks():
    x = da.zeros((1, 2, 20, 9), chunks=(1, 2, (6, 6, 6, 2), (4, 5)))
    w = np.ones((3, 2, 3, 3))
    # conv: output o's window starts at input o * stride - pad
    y = tcd.conv(x, w, stride=2, padding=1)
    assert y.shape == (1, 3, 10, 5)
    assert y.chunks[2:] == ((4, 3, 3, 0), (3, 2))
    # transpose: stride x the input chunks, crop at the outer edges, output_padding at the end
    z = tcd.conv_transpose(x, w.transpose(1, 0, 2, 3), stride=2, padding=1, output_padding=1)
    assert z.shape == (1, 3, 40, 18)
    assert z.chunks[2:] == ((11, 12, 12, 5), (7, 11))


def test_unbatched_plain_and_uneven_chunks():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 17, 10)).astype(np.float32)
    w = rng.standard_normal((2, 3, 4, 3)).astype(np.float32)
    got = tcd.conv(da.from_array(x, chunks=(3, 5, 7)), w, padding="same", padding_mode="reflect")
    np.testing.assert_allclose(got.compute(), tc.conv(x, w, padding="same", padding_mode="reflect"), rtol=1e-5, atol=1e-5)
    k = rng.standard_normal((3, 3))
    plain = rng.standard_normal((11, 7))
    got = tcd.conv_transpose(da.from_array(plain, chunks=(4, 3)), k, stride=3, padding=(2, (0, 1)))
    np.testing.assert_allclose(got.compute(), tc.conv_transpose(plain, k, stride=3, padding=(2, (0, 1))), rtol=1e-12)


def test_threaded_scheduler_gives_the_same_numbers():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 8, 40, 33)).astype(np.float32)
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    lazy = tcd.conv_transpose(da.from_array(x, chunks=(2, 8, 11, 10)), w, b, stride=2, padding=1)
    with dask.config.set(scheduler="threads", num_workers=2):
        got = lazy.compute()
    np.testing.assert_allclose(got, tc.conv_transpose(x, w, b, stride=2, padding=1), rtol=1e-5, atol=1e-4)


def test_conv_transpose_is_the_adjoint_of_conv_on_chunks():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 2, 3, 4))
    kwargs = dict(stride=(2, 3), padding=((2, 1), 1), dilation=(1, 2), padding_mode="reflect")
    x = rng.standard_normal((2, 2, 14, 15))
    cx = tcd.conv(da.from_array(x, chunks=(1, 2, 3, 4)), w, **kwargs)
    y = rng.standard_normal(cx.shape)
    cty = tcd.conv_transpose(da.from_array(y, chunks=(2, 3, 2, 1)), w, output_size=x.shape, **kwargs)
    assert np.isclose(float((cx * y).sum().compute()), float((x * cty).sum().compute()), rtol=1e-12)


# --------------------------------------------------------------------------------------
# Default chunks, NumPy input.
# --------------------------------------------------------------------------------------


def test_numpy_input_gets_auto_chunks_aiming_at_the_output_chunk_size():
    x = np.zeros((1, 2, 300, 200), np.float32)
    w = np.zeros((2, 2, 2, 2), np.float32)
    y = tcd.conv_transpose(x, w, stride=2)
    assert y.shape == (1, 2, 600, 400) and len(y.chunks[2]) == 1  # 1.9 MB: one chunk
    chunks = tcd.auto_chunks((1, 3, 4096, 4096), np.float32, 4 * 3 * 8192 * 8192, target=2**24)
    assert chunks[:2] == ((1,), (3,))
    assert chunks[2] == chunks[3] == (586,) * 6 + (580,)  # near-square, balanced
    assert 0.5 < 4 * 3 * (2 * 586) ** 2 / 2**24 < 1.1  # output chunks of about the target
    small = tcd.auto_chunks((64, 3, 32, 32), np.float32, 64 * 3 * 64 * 64 * 4, target=2**20)
    assert small == ((21, 21, 21, 1), (3,), (32,), (32,))  # whole samples, grouped
    z = tcd.conv(da.zeros((1, 2, 300, 200), chunks=(1, 2, 7, 7), dtype=np.float32), w, chunks="auto")
    assert len(z.chunks[2]) == 1


# --------------------------------------------------------------------------------------
# Bad input: TransconvError before any work is scheduled.
# --------------------------------------------------------------------------------------


def _untouchable(shape, chunks, dtype=np.float64):
    """A Dask array whose every block raises when computed."""

    def explode(block):
        raise AssertionError("a block was computed")

    return da.zeros(shape, chunks=chunks, dtype=dtype).map_blocks(explode, dtype=dtype)


def test_channel_axis_in_several_chunks_is_refused():
    x = _untouchable((1, 4, 10, 10), (1, 2, 5, 5))
    with pytest.raises(TransconvError, match=r"transconv.dask.conv: x is split into 2 chunks \(2, 2\) along the "
                                             r"channel axis.*x.rechunk\(\{1: -1\}\)"):
        tcd.conv(x, np.ones((1, 4, 3, 3)))
    with pytest.raises(TransconvError, match=r"rechunk\(\{0: -1\}\)"):  # unbatched: the channel axis is 0
        tcd.conv_transpose(_untouchable((4, 10, 10), (2, 5, 5)), np.ones((4, 1, 3, 3)))


def test_unknown_chunk_sizes_are_refused():
    x = da.zeros((1, 1, 10), chunks=5)[:, :, da.from_array(np.arange(10), chunks=5) > 3]
    assert any(np.isnan(c) for c in x.chunks[2])
    with pytest.raises(TransconvError, match="unknown chunk sizes on axis 2"):
        tcd.conv(x, np.ones((1, 1, 3)))


def test_mismatched_float_dtypes_are_refused_with_both_named():
    x = _untouchable((1, 2, 10, 10), (1, 2, 5, 5), np.float32)
    with pytest.raises(TransconvError, match=r"w has dtype float64 but x has dtype float32.*float64"):
        tcd.conv(x, np.ones((1, 2, 3, 3)))
    with pytest.raises(TransconvError, match=r"bias has dtype float64 but x has dtype float32"):
        tcd.conv_transpose(x, np.ones((2, 1, 3, 3), np.float32), np.ones(1))


def test_dask_weight_of_unknown_shape_is_refused_and_of_known_shape_computed():
    x = da.ones((1, 1, 8, 8), chunks=4)
    w = da.ones(9, chunks=9)
    unknown = w[w > 0]
    with pytest.raises(TransconvError, match="w is a Dask array of unknown shape"):
        tcd.conv(x, unknown)
    got = tcd.conv(x, w.reshape(1, 1, 3, 3), padding=1).compute()
    np.testing.assert_allclose(got, tc.conv(np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3)), padding=1))


@pytest.mark.parametrize(
    "name, args, kwargs",
    [
        ("conv", [np.ones((1, 2, 12, 3))], {}),  # kernel longer than the input
        ("conv", [np.ones((1, 2, 3, 3))], dict(padding=-1)),
        ("conv", [np.ones((1, 3, 3, 3))], {}),  # channels
        ("conv", [np.ones((1, 2, 3, 3)), np.ones(2)], {}),  # bias
        ("conv_transpose", [np.ones((2, 1, 3, 3))], dict(stride=2, output_padding=2)),
        ("conv_transpose", [np.ones((2, 1, 3, 3))], dict(padding=11)),
        ("conv_transpose", [np.ones((2, 1, 3, 3))], dict(output_size=(40, 40))),
        ("conv", [np.ones((1, 2, 3, 3))], dict(method="nonesuch")),
        ("conv_transpose", [np.ones((2, 1, 3, 3))], dict(padding_mode="mirror")),
    ],
)
def test_a_spec_that_does_not_fit_raises_the_in_memory_error_first(name, args, kwargs):
    with pytest.raises(TransconvError) as memory:
        getattr(tc, name)(np.zeros((1, 2, 10, 10)), *args, **kwargs)
    with pytest.raises(TransconvError) as lazy:
        getattr(tcd, name)(_untouchable((1, 2, 10, 10), (1, 2, 5, 5)), *args, **kwargs)
    assert str(lazy.value) == str(memory.value)


@pytest.mark.parametrize("x", [[[1.0, 2.0], [3.0]], np.array([["a", "b"], ["c", "d"]]),
                               da.from_array(np.ones((4, 4), complex), chunks=2)])
def test_non_numeric_input_raises_the_in_memory_error(x):
    k = np.ones((2, 2))
    with pytest.raises(TransconvError) as memory:
        tc.conv(x.compute() if isinstance(x, da.Array) else x, k)
    with pytest.raises(TransconvError) as lazy:
        tcd.conv(x, k)
    assert str(lazy.value) == str(memory.value)


def test_bench_prints_its_table(capsys):
    assert tcd.bench(["--size", "64", "--channels", "2", "--chunks", "32", "64", "--workers", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "in-memory:" in out and "auto_chunks for this layer" in out
    assert len([line for line in out.splitlines() if line.split()[:1] in (["32"], ["64"])]) == 2
