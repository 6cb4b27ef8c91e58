"""Repeated calls reuse their plan (dispatch._CALLS): never a stale one, and the same result as planning afresh."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import transconv as tc
from transconv.limits import ENV_VAR
from transconv.ops import compiled, dispatch

from _strategies import cases

X = np.arange(16, dtype=np.float32).reshape(4, 4)
K = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=np.float32)


def _planned_afresh(fn, *args, **kwargs):
    """``fn`` with every cache of the call path emptied first: the plan, the layout, the choice
    and the direct kernels' per-geometry arguments."""
    from transconv import spec

    dispatch._forget_plans()
    spec._LAYOUTS.clear()
    compiled._direct_conv_call.cache_clear()
    compiled._direct_transpose_call.cache_clear()
    return fn(*args, **kwargs)


def test_a_repeated_call_is_served_from_the_cache():
    dispatch._forget_plans()
    tc.conv(X, K)
    size = len(dispatch._CALLS)
    assert size == 1
    tc.conv(X + 1, K - 1)  # other values, the same call
    assert len(dispatch._CALLS) == size


@pytest.mark.parametrize("op", ["conv", "conv_transpose"])
def test_a_lowered_memory_limit_refuses_a_cached_call(op, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    fn = getattr(tc, op)
    fn(X, K)
    fn(X, K)  # planned and served from the cache under the default limit
    tc.set_memory_limit(64)
    try:
        with pytest.raises(tc.TransconvError) as cached:
            fn(X, K)
        with pytest.raises(tc.TransconvError) as fresh:
            _planned_afresh(fn, X, K)
    finally:
        tc.set_memory_limit(None)
    assert str(cached.value) == str(fresh.value)
    assert str(cached.value).startswith(f"{op}: the result and its work buffers would take")
    assert "memory limit of 64 bytes" in str(cached.value)
    fn(X, K)  # the limit restored, the cached plan runs again
    monkeypatch.setenv(ENV_VAR, "100")  # the environment variable, set after the plan was cached
    with pytest.raises(tc.TransconvError, match="memory limit of 100 bytes"):
        fn(X, K)
    monkeypatch.delenv(ENV_VAR)
    fn(X, K)


def test_the_matrix_free_operator_checks_the_limit_on_every_product():
    A = tc.conv_operator(np.ones((3, 3)), (40, 40))
    v = np.ones(A.shape[1])
    A @ v  # planned
    tc.set_memory_limit(1000)
    try:
        with pytest.raises(tc.TransconvError, match="conv_operator: .* memory limit of 1000 bytes"):
            A @ v
    finally:
        tc.set_memory_limit(None)


@pytest.mark.parametrize("dtype, expected", [(np.float64, np.float64), (np.float16, np.float16),
                                             (np.int32, np.float64), (bool, np.float64)])
def test_a_changed_dtype_gets_its_own_plan(dtype, expected):
    first = tc.conv(X, K)
    assert first.dtype == np.float32
    other = tc.conv(X.astype(dtype), K.astype(dtype))
    assert other.dtype == expected
    np.testing.assert_array_equal(other, _planned_afresh(tc.conv, X.astype(dtype), K.astype(dtype)))
    assert tc.conv(X, K).dtype == np.float32  # and the first plan is still the first dtype's


def test_mixed_dtypes_and_bias_dtypes_are_keyed_apart():
    b32, b64 = np.ones(1, np.float32), np.ones(1, np.float64)
    assert tc.conv(X[None, None], K[None, None], b32).dtype == np.float32
    assert tc.conv(X[None, None], K[None, None], b64).dtype == np.float64
    assert tc.conv(X[None, None], K[None, None].astype(np.float64)).dtype == np.float64


@pytest.mark.parametrize("change", [
    dict(stride=2), dict(padding=1), dict(padding=((0, 1), (1, 0))), dict(dilation=(1, 1)), dict(padding="same"),
    dict(padding_mode="circular", padding=1), dict(method="reference"), dict(method="direct"),
])
def test_a_changed_argument_gets_its_own_plan(change):
    tc.conv(X, K)
    tc.conv(X, K)
    np.testing.assert_array_equal(tc.conv(X, K, **change), tc.conv(X, K, method="reference", **{
        k: v for k, v in change.items() if k != "method"}))


def test_a_bool_is_not_the_int_it_hashes_like():
    tc.conv(X, K, stride=1)
    with pytest.raises(tc.TransconvError, match="stride"):
        tc.conv(X, K, stride=True)  # True == 1 and hash(True) == hash(1): must not find stride=1's plan
    with pytest.raises(tc.TransconvError, match="method"):
        tc.conv(X, K, method=["auto"])  # unhashable: planned (and refused) without the cache


def test_registering_a_method_drops_the_cached_plans():
    tc.conv(X, K)
    assert dispatch._CALLS
    original = tc.METHODS["direct"]
    try:
        dispatch.register_method(dispatch.Method("direct", original.conv, original.conv_transpose, lambda p: 0.0))
        assert not dispatch._CALLS
        tc.conv(X, K)
        assert [plan.method.name for _, _, plan in dispatch._CALLS.values()] == ["direct"]
    finally:
        dispatch.register_method(original)
    assert not dispatch._CALLS


def test_tuning_changes_reach_a_cached_plan(monkeypatch):
    seen = []
    serial = compiled._DIRECT_CONV[1]

    def spy(*args):
        seen.append(args[-5])  # the loop order: along the kernel row or not
        return serial(*args)

    monkeypatch.setattr(compiled, "_DIRECT_CONV", (spy, spy))
    x, w = np.ones((1, 2, 9, 40), np.float32), np.ones((3, 2, 2, 20), np.float32)
    tc.conv(x, w, method="compiled_direct")
    with compiled.tuned(along_kernel=1):  # read at call time, not planned
        tc.conv(x, w, method="compiled_direct")
    with compiled.tuned(along_kernel=100):
        tc.conv(x, w, method="compiled_direct")
    assert seen == [True, True, False]


@pytest.mark.parametrize("method", ["auto", "compiled_direct", "gemm", "direct"])
def test_a_nan_weight_after_finite_calls_still_poisons_the_padding(method):
    x = np.ones((1, 1, 5, 5))
    w = np.ones((1, 1, 3, 3))
    tc.conv(x, w, padding=1, method=method)
    tc.conv(x, w, padding=1, method=method)  # a cached plan, finite weights
    w[0, 0, 0, 0] = np.inf  # reaches padding on the first row and column (PyTorch: 0 x inf = NaN)
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    with np.errstate(invalid="ignore"):  # numpy's own products meet 0 x inf too
        out = tc.conv(x, w, padding=1, method=method)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_array_equal(out, expected)


def test_phase_with_an_infinite_weight_after_a_cached_call():
    y = np.ones((1, 1, 3, 3))
    w = np.ones((1, 1, 4, 4))
    kwargs = dict(stride=2, padding=1, method="phase")
    tc.conv_transpose(y, w, **kwargs)
    w[0, 0, 3, 3] = np.inf
    np.testing.assert_array_equal(tc.conv_transpose(y, w, **kwargs), tc.conv_transpose(y, w, stride=2, padding=1,
                                                                                        method="reference"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.longdouble])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("size, where", [(54, 37), (24003, 0), (24003, 12000), (24003, 24002)])
def test_all_finite_is_isfinite_all(dtype, bad, size, where):
    """At the start, the middle and in the tail a vectorised sum leaves to scalar code."""
    w = np.full(size, np.finfo(dtype).max, dtype=dtype)  # finite, with squares and sums past the range
    if bad is not None:
        w[where] = bad
    assert compiled.all_finite(w) is (bad is None) is bool(np.isfinite(w).all())


@settings(deadline=None, max_examples=60)
@given(case=cases(max_ndim=3), transposed=st.booleans(), method=st.sampled_from(["auto", "compiled_direct", "gemm"]))
def test_cached_results_equal_planning_afresh(case, transposed, method):
    x, w, b = case.arrays(transposed)
    if transposed:
        kwargs = dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding,
                      groups=case.groups, dilation=case.dilation, method=method)
        fn = tc.conv_transpose
    else:
        kwargs = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups,
                      method=method)
        fn = tc.conv
    fresh = _planned_afresh(fn, x, w, b, **kwargs)
    fn(x * 2, w, b, **kwargs)  # a call with other values leaves the plan in the cache
    cached = fn(x, w, b, **kwargs)
    assert cached.dtype == fresh.dtype and cached.shape == fresh.shape
    np.testing.assert_array_equal(cached, fresh)
