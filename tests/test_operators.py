"""conv / conv_transpose: the worked example, PyTorch as oracle, identities, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import transconv as tc
from _strategies import Case, cases, tolerance

X = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]])
K = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]])
Y = np.array([[2, 1], [4, 4]])
CONV_X = [[122, 148], [126, 134]]
CONVT_Y = [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]]

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MODES = ["zeros", "reflect", "replicate", "circular"]


def _t(a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


# ---------------------------------------------------------------- the worked example


@pytest.mark.parametrize("method", sorted(tc.METHODS))
def test_worked_example_conv(method):
    np.testing.assert_array_equal(tc.conv(X, K, method=method), CONV_X)


@pytest.mark.parametrize("method", sorted(tc.METHODS))
def test_worked_example_conv_transpose(method):
    np.testing.assert_array_equal(tc.conv_transpose(Y, K, method=method), CONVT_Y)


def test_worked_example_with_channels_matches_plain():
    batched = tc.conv(X[None, None], K[None, None])
    assert batched.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(batched[0, 0], CONV_X)
    unbatched = tc.conv_transpose(Y[None], K[None, None])
    assert unbatched.shape == (1, 4, 4)
    np.testing.assert_array_equal(unbatched[0], CONVT_Y)


def test_one_input_value_reaches_nine_outputs():
    impulse = np.zeros((2, 2))
    impulse[1, 0] = 1.0
    out = tc.conv_transpose(impulse, K)
    assert np.count_nonzero(out) == 9
    np.testing.assert_array_equal(out[1:4, 0:3], K)


# ---------------------------------------------------------------- PyTorch as the oracle


@given(cases())
def test_conv_matches_torch(case: Case):
    x, w, b = case.arrays(transposed=False)
    expected = TORCH_CONV[case.ndim](_t(x), _t(w), _t(b), case.stride, case.padding, case.dilation, case.groups).numpy()
    for method in ("auto", "reference"):
        got = tc.conv(x, w, b, case.stride, case.padding, case.dilation, case.groups, method=method)
        assert got.dtype == x.dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **tolerance(case.dtype, x, w, b))


@given(cases())
def test_conv_transpose_matches_torch(case: Case):
    y, w, b = case.arrays(transposed=True)
    expected = TORCH_CONVT[case.ndim](
        _t(y), _t(w), _t(b), case.stride, case.padding, case.output_padding, case.groups, case.dilation
    ).numpy()
    for method in ("auto", "reference"):
        got = tc.conv_transpose(
            y, w, b, case.stride, case.padding, case.output_padding, case.groups, case.dilation, method=method
        )
        assert got.dtype == y.dtype and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, **tolerance(case.dtype, y, w, b))


@given(cases(max_ndim=3), st.sampled_from(MODES[1:]))
def test_conv_padding_modes_match_torch(case: Case, mode: str):
    x, w, b = case.arrays(transposed=False)
    if x.ndim == case.ndim + 1:
        x = x[None]
    widths = []
    for p in reversed(case.padding):  # F.pad lists the last axis first
        widths += [p, p]
    if mode == "reflect" and any(p >= n for p, n in zip(case.padding, case.big)):
        return  # PyTorch refuses reflect padding as wide as the input (ours reflects again)
    if mode == "circular" and any(p > n for p, n in zip(case.padding, case.big)):
        return  # PyTorch refuses circular padding wider than the input (ours wraps again)
    torch_mode = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}[mode]
    padded = F.pad(_t(x), widths, mode=torch_mode) if any(case.padding) else _t(x)
    expected = TORCH_CONV[case.ndim](padded, _t(w), _t(b), case.stride, 0, case.dilation, case.groups).numpy()
    got = tc.conv(x, w, b, case.stride, case.padding, case.dilation, case.groups, padding_mode=mode)
    np.testing.assert_allclose(got, expected, **tolerance(case.dtype, x, w, b))


@pytest.mark.parametrize("mode", MODES)
def test_torch_conv_module_padding_mode(mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 7, 6))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    layer = torch.nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(2, 1), padding_mode=mode, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(_t(w))
        layer.bias.copy_(_t(b))
        expected = layer(_t(x)).numpy()
    got = tc.conv(x, w, b, stride=(2, 1), padding=(2, 1), padding_mode=mode)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@given(cases(dtypes=("float64",)))
def test_conv_transpose_is_the_gradient_of_conv(case: Case):
    """d<conv(x), g>/dx computed by torch.autograd equals conv_transpose(g)."""
    x, w, _ = case.arrays(transposed=False)
    xt = _t(x).requires_grad_(True)
    out = TORCH_CONV[case.ndim](xt, _t(w), None, case.stride, case.padding, case.dilation, case.groups)
    g = np.random.default_rng(case.seed + 1).standard_normal(out.shape)
    out.backward(_t(g))
    got = tc.conv_transpose(g, w, None, case.stride, case.padding, groups=case.groups, dilation=case.dilation,
                            output_size=x.shape[-case.ndim:])
    np.testing.assert_allclose(got, xt.grad.numpy(), **tolerance("float64", g, w))


@given(cases(dtypes=("float64",)))
def test_conv_is_the_gradient_of_conv_transpose(case: Case):
    y, w, _ = case.arrays(transposed=True)
    yt = _t(y).requires_grad_(True)
    out = TORCH_CONVT[case.ndim](yt, _t(w), None, case.stride, case.padding, case.output_padding, case.groups, case.dilation)
    g = np.random.default_rng(case.seed + 1).standard_normal(out.shape)
    out.backward(_t(g))
    got = tc.conv(g, w, None, case.stride, case.padding, case.dilation, case.groups)
    # With output_padding >= stride (allowed when dilation > stride) the conv of the
    # output grid has more positions than the transposed input fed: those rows are unused.
    got = got[(Ellipsis,) + tuple(slice(0, n) for n in case.small)]
    np.testing.assert_allclose(got, yt.grad.numpy(), **tolerance("float64", g, w))


# ---------------------------------------------------------------- identities, every padding mode


def _spec_padding(draw_pairs, case: Case):
    return tuple((p, p + q) for p, q in zip(case.padding, draw_pairs))


@given(cases(dtypes=("float64",)), st.sampled_from(MODES), st.lists(st.integers(0, 2), min_size=3, max_size=3))
def test_dot_test_every_mode_and_asymmetric_padding(case: Case, mode: str, extra):
    """<conv(x), y> == <x, conv_transpose(y)>: conv_transpose is the adjoint, whatever the mode."""
    pads = _spec_padding(extra, case)
    x, w, _ = case.arrays(transposed=False)
    big = x.shape[-case.ndim:]
    assume(all(n + lo + hi >= d * (k - 1) + 1 for n, (lo, hi), d, k in zip(big, pads, case.dilation, case.kernel)))
    assume(mode != "reflect" or min(big) >= 2)
    y_shape = tc.conv(x, w, None, case.stride, pads, case.dilation, case.groups, padding_mode=mode).shape
    y = np.random.default_rng(case.seed + 2).standard_normal(y_shape)
    for method in ("auto", "reference"):
        cx = tc.conv(x, w, None, case.stride, pads, case.dilation, case.groups, padding_mode=mode, method=method)
        cty = tc.conv_transpose(y, w, None, case.stride, pads, groups=case.groups, dilation=case.dilation,
                                output_size=big, padding_mode=mode, method=method)
        assert cty.shape == x.shape
        lhs, rhs = np.vdot(cx, y), np.vdot(x, cty)
        assert abs(lhs - rhs) <= 1e-9 * (1 + np.abs(cx).sum() * np.abs(y).max())


@given(cases(), st.sampled_from(MODES))
def test_methods_agree_with_reference(case: Case, mode: str):
    x, w, b = case.arrays(transposed=True)
    kwargs = dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding,
                  groups=case.groups, dilation=case.dilation, padding_mode=mode)
    assume(mode != "reflect" or min(case.big) >= 2 or not any(case.padding))
    expected = tc.conv_transpose(x, w, b, method="reference", **kwargs)
    for name, method in tc.METHODS.items():
        if name == "reference":
            continue
        got = tc.conv_transpose(x, w, b, method=name, **kwargs) if _accepts(name, x, w, True, kwargs) else None
        if got is not None:
            np.testing.assert_allclose(got, expected, **tolerance(case.dtype, x, w, b))
    xc, _, _ = case.arrays(transposed=False)
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "output_padding"}
    expected = tc.conv(xc, w, None, method="reference", **conv_kwargs)
    for name in tc.METHODS:
        if name != "reference" and _accepts(name, xc, w, False, conv_kwargs):
            np.testing.assert_allclose(tc.conv(xc, w, None, method=name, **conv_kwargs), expected,
                                       **tolerance(case.dtype, xc, w))


def _accepts(name, x, w, transposed, kwargs) -> bool:
    """A method either runs the call or declines it with a TransconvError giving its reason."""
    run = tc.conv_transpose if transposed else tc.conv
    try:
        run(x, w, method=name, **kwargs)
    except tc.TransconvError as exc:
        assert "cannot run this call" in str(exc) and name in str(exc)
        return False
    return True


# ---------------------------------------------------------------- "same" padding


@given(st.integers(1, 3), st.integers(1, 12), st.integers(1, 6), st.integers(1, 4), st.integers(1, 3))
@settings(max_examples=40)
def test_transposed_same_gives_input_times_stride_and_is_adjoint_of_conv_same(ndim, n, k, s, d):
    rng = np.random.default_rng(n * 100 + k * 10 + s)
    shape = (n,) * ndim
    w = rng.standard_normal((2, 3) + (k,) * ndim)
    y = rng.standard_normal((2,) + shape)
    out = tc.conv_transpose(y, w, stride=s, dilation=d, padding="same")
    assert out.shape == (3,) + tuple(v * s for v in shape)
    x = rng.standard_normal(out.shape)
    cx = tc.conv(x, w, stride=s, dilation=d, padding="same")
    assert cx.shape == y.shape
    np.testing.assert_allclose(np.vdot(cx, y), np.vdot(x, out), rtol=1e-10, atol=1e-9)


@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 5), st.integers(1, 3))
@settings(max_examples=30)
def test_conv_same_matches_torch_stride_one(ndim, n, k, d):
    rng = np.random.default_rng(n + 10 * k + 100 * d)
    x = rng.standard_normal((1, 2) + (n,) * ndim)
    w = rng.standard_normal((3, 2) + (k,) * ndim)
    expected = TORCH_CONV[ndim](_t(x), _t(w), None, 1, "same", d).numpy()
    np.testing.assert_allclose(tc.conv(x, w, padding="same", dilation=d), expected, rtol=1e-12, atol=1e-11)


# ---------------------------------------------------------------- dtypes, layouts, IEEE values


@pytest.mark.parametrize(
    "x_dtype, w_dtype, expected",
    [
        (np.float32, np.float32, np.float32),
        (np.float64, np.float64, np.float64),
        (np.float32, np.float64, np.float64),
        (np.int64, np.int64, np.float64),
        (np.int32, np.float32, np.float64),  # NumPy's promotion: int32 + float32 -> float64
        (np.uint8, np.uint8, np.float64),
        (bool, np.int64, np.float64),
        (np.float16, np.float16, np.float16),
    ],
)
def test_dtype_rules(x_dtype, w_dtype, expected):
    for fn, arg in ((tc.conv, X), (tc.conv_transpose, Y)):
        out = fn(np.asarray(arg).astype(x_dtype), K.astype(w_dtype))
        assert out.dtype == expected
        reference = fn(np.asarray(arg).astype(x_dtype).astype(float), K.astype(w_dtype).astype(float))
        np.testing.assert_allclose(out.astype(float), reference, rtol=1e-3 if expected == np.float16 else 1e-6)


def test_float32_result_close_to_float64():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 9, 9))
    w = rng.standard_normal((8, 4, 3, 3))
    hi = tc.conv_transpose(x, w, stride=2, padding=1)
    lo = tc.conv_transpose(x.astype(np.float32), w.astype(np.float32), stride=2, padding=1)
    assert lo.dtype == np.float32
    np.testing.assert_allclose(lo, hi, rtol=1e-4, atol=1e-4)


def test_nan_and_inf_propagate_only_where_they_reach():
    y = np.zeros((3, 3))
    y[0, 0] = np.nan
    y[2, 2] = np.inf
    out = tc.conv_transpose(y, np.ones((2, 2)), stride=2)
    assert np.isnan(out[:2, :2]).all()
    assert np.isposinf(out[4:, 4:]).all()
    finite = np.ones_like(out, dtype=bool)
    finite[:2, :2] = finite[4:, 4:] = False
    assert (out[finite] == 0).all()
    conv_out = tc.conv(out, np.ones((2, 2)), stride=2)
    assert np.isnan(conv_out[0, 0]) and np.isposinf(conv_out[2, 2]) and (conv_out[1, 1] == 0)


def test_unbatched_equals_batched_and_plain_flag_for_3d():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 6, 7))
    k = rng.standard_normal((2, 3, 2))
    plain = tc.conv(x, k, plain=True, stride=(1, 2, 1))
    channels = tc.conv(x[None, None], k[None, None], stride=(1, 2, 1))[0, 0]
    np.testing.assert_allclose(plain, channels)
    # without plain=True a 3-axis kernel is a 1-d weight (C_out, C_in, k): x is then (N, C, L)
    assert tc.conv(x, rng.standard_normal((2, 6, 2))).shape == (5, 2, 6)
    with pytest.raises(tc.TransconvError, match="channels"):
        tc.conv(x, k)  # read as a 1-d weight with 3 input channels, x has 6


def test_bias_is_added_per_output_channel():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    b = np.array([1.0, -2.0, 3.0])
    np.testing.assert_allclose(
        tc.conv_transpose(x, w, b, stride=2) - tc.conv_transpose(x, w, stride=2), np.broadcast_to(b[:, None, None], (2, 3, 11, 11))
    )


def test_depthwise_transpose_is_per_channel():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 3, 6))
    w = rng.standard_normal((3, 1, 4))
    out = tc.conv_transpose(x, w, stride=2, padding=1, groups=3)
    for c in range(3):
        np.testing.assert_allclose(out[0, c], tc.conv_transpose(x[0, c], w[c, 0], stride=2, padding=1))


def test_output_padding_at_least_stride_with_dilation_matches_torch():
    rng = np.random.default_rng(7)
    y = rng.standard_normal((1, 2, 5))
    w = rng.standard_normal((2, 3, 3))
    expected = F.conv_transpose1d(_t(y), _t(w), stride=1, padding=1, output_padding=2, dilation=3).numpy()
    np.testing.assert_allclose(tc.conv_transpose(y, w, stride=1, padding=1, output_padding=2, dilation=3), expected,
                               rtol=1e-12, atol=1e-12)


def test_large_inputs_run():
    """The default path handles a 512x512 image and a 64-channel batch (speed is in benchmarks/)."""
    rng = np.random.default_rng(8)
    image = rng.standard_normal((512, 512)).astype(np.float32)
    assert tc.conv_transpose(image, np.ones((4, 4), np.float32), stride=2, padding=1).shape == (1024, 1024)
    batch = rng.standard_normal((4, 64, 64, 64)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32) * 0.05
    out = tc.conv_transpose(batch, w, stride=2, padding=1, output_padding=1)
    assert out.shape == (4, 64, 128, 128)
    np.testing.assert_allclose(
        out[:1, :, :8, :8],
        tc.conv_transpose(batch[:1, :, :5, :5], w, stride=2, padding=1, output_padding=1, method="reference")[..., :8, :8],
        rtol=1e-4, atol=1e-4,
    )


def test_four_spatial_dimensions_need_no_special_case():
    """No code path counts spatial axes: a 4-d conv is checked by the reference and the dot test."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 2, 5, 4, 6, 5))
    w = rng.standard_normal((4, 1, 2, 3, 2, 2))
    kwargs = dict(stride=(2, 1, 3, 1), padding=((1, 0), 1, 0, (0, 2)), dilation=(1, 1, 2, 1), groups=2)
    cx = tc.conv(x, w, **kwargs)
    np.testing.assert_allclose(cx, tc.conv(x, w, method="reference", **kwargs), rtol=1e-12, atol=1e-12)
    y = rng.standard_normal(cx.shape)
    cty = tc.conv_transpose(y, w, output_size=x.shape[2:], **kwargs)
    np.testing.assert_allclose(np.vdot(cx, y), np.vdot(x, cty), rtol=1e-12)
