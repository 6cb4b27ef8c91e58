"""transconv.nn layers against PyTorch autograd, finite differences and the adjoint identities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, strategies as st

import transconv as tc
from transconv import TransconvError

MODES = ("zeros", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class LayerCase:
    ndim: int
    batch: int | None
    groups: int
    c_in: int
    c_out: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    output_padding: tuple[int, ...]
    size: tuple[int, ...]
    mode: str
    bias: bool
    seed: int


@st.composite
def layer_cases(draw, transposed: bool = False, modes=MODES) -> LayerCase:
    ndim = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    axis = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(ndim))  # noqa: E731
    kernel = axis(1, 3)
    stride = axis(1, 3)
    dilation = axis(1, 2)
    size = axis(1, {1: 9, 2: 6, 3: 4}[ndim])
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(ndim))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)) if transposed else (0,) * ndim
    return LayerCase(
        ndim, draw(st.sampled_from([None, 1, 2])), groups, c_in, c_out, kernel, stride, dilation, padding,
        output_padding, size, draw(st.sampled_from(modes)), draw(st.booleans()), draw(st.integers(0, 2**31)),
    )


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _torch_pad_widths(padding):
    return [v for lo, hi in reversed(padding) for v in (lo, hi)]


def _torch_conv(case: LayerCase, x, w, b):
    """Oracle: torch pads explicitly (every mode, per side), then a padding-free torch conv."""
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[case.ndim]
    mode = "constant" if case.mode == "zeros" else case.mode
    batched = x if case.batch is not None else x.unsqueeze(0)
    xp = F.pad(batched, _torch_pad_widths(case.padding), mode=mode)
    y = fn(xp, w, b, case.stride, 0, case.dilation, case.groups)
    return y if case.batch is not None else y[0]


def _torch_conv_transpose(case: LayerCase, x, w, b):
    """Oracle: torch's transposed conv without padding, then the per-side crop that padding means."""
    fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[case.ndim]
    full = fn(x, w, b, case.stride, 0, case.output_padding, case.groups, case.dilation)
    crop = tuple(slice(lo, full.shape[-case.ndim + a] - hi) for a, (lo, hi) in enumerate(case.padding))
    return full[(Ellipsis,) + crop]


def _conv_layer(case: LayerCase, dtype):
    return tc.nn.Conv(case.c_in, case.c_out, case.kernel, case.stride, case.padding, case.dilation, case.groups,
                      case.bias, case.mode, seed=case.seed, dtype=dtype)


def _transpose_layer(case: LayerCase, dtype):
    return tc.nn.ConvTranspose(case.c_in, case.c_out, case.kernel, case.stride, case.padding, case.output_padding,
                               case.groups, case.bias, case.dilation, case.mode, seed=case.seed, dtype=dtype)


def _conv_fits(case: LayerCase) -> bool:
    ok = all(i + lo + hi >= d * (k - 1) + 1 for i, (lo, hi), k, d in zip(case.size, case.padding, case.kernel, case.dilation))
    if case.mode == "reflect":  # torch's own limit (transconv reflects further)
        ok &= all(max(lo, hi) < i for i, (lo, hi) in zip(case.size, case.padding))
    if case.mode == "circular":
        ok &= all(max(lo, hi) <= i for i, (lo, hi) in zip(case.size, case.padding))
    return ok


def _transpose_out(case: LayerCase) -> tuple[int, ...]:
    return tuple((i - 1) * s - lo - hi + d * (k - 1) + 1 + a for i, s, (lo, hi), d, k, a in
                 zip(case.size, case.stride, case.padding, case.dilation, case.kernel, case.output_padding))


def _run_ours(layer, x, g):
    layer.zero_grad()
    y = layer(x)
    gx = layer.backward(g)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    return y, gx, grads


def _run_torch(oracle, case, x, w, b, g, dtype):
    xt = _t(x.astype(dtype)).requires_grad_()
    wt = _t(w.astype(dtype)).requires_grad_()
    bt = None if b is None else _t(b.astype(dtype)).requires_grad_()
    y = oracle(case, xt, wt, bt)
    y.backward(_t(g.astype(dtype)))
    grads = {"weight": wt.grad.numpy()}
    if bt is not None:
        grads["bias"] = bt.grad.numpy()
    return y.detach().numpy(), xt.grad.numpy(), grads


def _check_against_torch(case, layer64, layer32, oracle, x_shape, y_shape):
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal(x_shape)
    g = rng.standard_normal(y_shape)
    w, b = layer64.weight, layer64.bias
    layer32.load_state_dict(layer64.state_dict())
    ours64 = _run_ours(layer64, x, g)
    ref = _run_torch(oracle, case, x, w, b, g, np.float64)
    ours32 = _run_ours(layer32, x.astype(np.float32), g.astype(np.float32))
    torch32 = _run_torch(oracle, case, x, w, b, g, np.float32)
    for label, o64, r64, o32, t32 in [
        ("output", ours64[0], ref[0], ours32[0], torch32[0]),
        ("grad_x", ours64[1], ref[1], ours32[1], torch32[1]),
    ] + [(f"grad_{k}", ours64[2][k], ref[2][k], ours32[2][k], torch32[2][k]) for k in ref[2]]:
        assert o64.shape == r64.shape, label
        scale = max(1.0, float(np.abs(r64).max(initial=0)))
        np.testing.assert_allclose(o64, r64, rtol=0, atol=1e-10 * scale, err_msg=label)
        assert o32.dtype == np.float32, label
        torch_error = float(np.abs(t32 - r64).max(initial=0))
        our_error = float(np.abs(o32 - r64).max(initial=0))
        assert our_error <= 4 * torch_error + 1e-6 * scale, (label, our_error, torch_error)


@given(layer_cases())
def test_conv_layer_matches_torch_autograd(case: LayerCase):
    assume(_conv_fits(case))
    layer64 = _conv_layer(case, np.float64)
    layer32 = _conv_layer(case, np.float32)
    out = layer64.output_shape(case.size)
    lead = () if case.batch is None else (case.batch,)
    _check_against_torch(case, layer64, layer32, _torch_conv, lead + (case.c_in,) + case.size, lead + (case.c_out,) + out)


@given(layer_cases(transposed=True, modes=("zeros",)))
def test_conv_transpose_layer_matches_torch_autograd(case: LayerCase):
    out = _transpose_out(case)
    assume(all(o >= 1 for o in out))
    layer64 = _transpose_layer(case, np.float64)
    layer32 = _transpose_layer(case, np.float32)
    lead = () if case.batch is None else (case.batch,)
    _check_against_torch(case, layer64, layer32, _torch_conv_transpose, lead + (case.c_in,) + case.size,
                         lead + (case.c_out,) + out)


def _finite_difference_check(layer, x, rng, points=4, h=1e-6):
    """Central differences of L = <layer(x), G> at a few input and weight coordinates against backward."""
    y = layer(x)
    g = rng.standard_normal(y.shape)
    layer.zero_grad()
    grad_x = layer.backward(g)

    def loss():
        return float(np.sum(layer(x) * g))

    for _ in range(points):
        idx = tuple(rng.integers(0, n) for n in x.shape)
        saved = x[idx]
        x[idx] = saved + h
        up = loss()
        x[idx] = saved - h
        down = loss()
        x[idx] = saved
        assert abs((up - down) / (2 * h) - grad_x[idx]) <= 1e-6 * max(1.0, abs(grad_x[idx]))
    for name, param in layer.parameters():
        for _ in range(points):
            idx = tuple(rng.integers(0, n) for n in param.shape)
            saved = param[idx]
            param[idx] = saved + h
            up = loss()
            param[idx] = saved - h
            down = loss()
            param[idx] = saved
            expected = layer.grads[name][idx]
            assert abs((up - down) / (2 * h) - expected) <= 1e-6 * max(1.0, abs(expected)), name


@given(layer_cases())
def test_conv_layer_finite_differences(case: LayerCase):
    assume(all(i + lo + hi >= d * (k - 1) + 1 for i, (lo, hi), k, d in zip(case.size, case.padding, case.kernel, case.dilation)))
    assume(case.mode != "reflect" or all(i >= 2 or lo == hi == 0 for i, (lo, hi) in zip(case.size, case.padding)))
    rng = np.random.default_rng(case.seed)
    layer = _conv_layer(case, np.float64)
    lead = () if case.batch is None else (case.batch,)
    _finite_difference_check(layer, rng.standard_normal(lead + (case.c_in,) + case.size), rng)


@given(layer_cases(transposed=True))
def test_conv_transpose_layer_finite_differences_every_mode(case: LayerCase):
    """Including the padding modes PyTorch refuses for the transpose (there the layer is the adjoint)."""
    out = _transpose_out(case)
    assume(all(o >= 1 for o in out))
    assume(case.mode != "reflect" or all(o >= 2 or lo == hi == 0 for o, (lo, hi) in zip(out, case.padding)))
    rng = np.random.default_rng(case.seed)
    layer = _transpose_layer(case, np.float64)
    lead = () if case.batch is None else (case.batch,)
    _finite_difference_check(layer, rng.standard_normal(lead + (case.c_in,) + case.size), rng)


@given(layer_cases(transposed=True, modes=("reflect", "replicate", "circular")))
def test_conv_transpose_layer_is_the_adjoint_of_conv_every_mode(case: LayerCase):
    """Dot tests: <T x, g> = <x, backward(g)> and <dW, V> = <g, T_V x> for the modes PyTorch refuses."""
    out = _transpose_out(case)
    assume(all(o >= 1 for o in out))
    assume(case.mode != "reflect" or all(o >= 2 or lo == hi == 0 for o, (lo, hi) in zip(out, case.padding)))
    rng = np.random.default_rng(case.seed)
    layer = tc.nn.ConvTranspose(case.c_in, case.c_out, case.kernel, case.stride, case.padding, case.output_padding,
                                case.groups, False, case.dilation, case.mode, seed=case.seed, dtype=np.float64)
    x = rng.standard_normal((2, case.c_in) + case.size)
    y = layer(x)
    g = rng.standard_normal(y.shape)
    grad_x = layer.backward(g)
    assert np.isclose(np.vdot(y, g), np.vdot(x, grad_x), rtol=1e-10, atol=1e-10)
    # the layer's input gradient is the convolution with the same spec and mode (cropped to x)
    conv_g = tc.conv(g, layer.weight, None, case.stride, case.padding, case.dilation, case.groups, padding_mode=case.mode)
    np.testing.assert_allclose(grad_x, conv_g[(Ellipsis,) + tuple(slice(0, n) for n in case.size)], atol=1e-10)
    v = rng.standard_normal(layer.weight.shape)
    t_v = tc.conv_transpose(x, v, None, case.stride, case.padding, case.output_padding, case.groups, case.dilation,
                            padding_mode=case.mode)
    assert np.isclose(np.vdot(layer.grads["weight"], v), np.vdot(g, t_v), rtol=1e-10, atol=1e-10)


def test_conv_same_padding_stride_two_resolves_per_input():
    layer = tc.nn.Conv(2, 3, 4, stride=2, padding="same", seed=0, dtype=np.float64)
    for n in (7, 8):
        x = np.random.default_rng(n).standard_normal((1, 2, n, n))
        y = layer(x)
        assert y.shape == (1, 3, 4, 4)
        assert layer.backward(np.ones_like(y)).shape == x.shape
    with pytest.raises(TransconvError, match="spec_for"):
        layer.spec  # noqa: B018
    assert layer.spec_for((7, 7)).padding == ((1, 2), (1, 2))


def test_conv_transpose_same_padding_gives_input_times_stride():
    layer = tc.nn.ConvTranspose(2, 1, 3, stride=2, padding="same", padding_mode="reflect", seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 4))
    assert layer(x).shape == (1, 1, 10, 8)
    assert layer.config()["padding"] == [[0, 1], [0, 1]]


def test_conv_aliases_fix_ndim_and_match_torch_modules():
    for ndim, ours, theirs in [(1, tc.nn.Conv1d, torch.nn.Conv1d), (3, tc.nn.ConvTranspose3d, torch.nn.ConvTranspose3d)]:
        layer = ours(2, 4, 3, stride=2, dtype=np.float64, seed=1)
        assert layer.ndim == ndim and layer.kernel_size == (3,) * ndim
        ref = theirs(2, 4, 3, stride=2).double()
        ref.load_state_dict({k: _t(v) for k, v in layer.state_dict().items()})
        x = np.random.default_rng(0).standard_normal((1, 2) + (5,) * ndim)
        np.testing.assert_allclose(layer(x), ref(_t(x)).detach().numpy(), atol=1e-12)
    assert tc.nn.Conv(1, 1, 3).ndim == 2 and tc.nn.Conv(1, 1, (3,)).ndim == 1
    with pytest.raises(TransconvError, match="Conv1d: kernel_size must have 1 entries"):
        tc.nn.Conv1d(1, 1, (3, 3))


# ---- parameter-free and small layers --------------------------------------------------------------------------


def _autograd(fn, x, g):
    xt = _t(x).requires_grad_()
    y = fn(xt)
    y.backward(_t(g))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (tc.nn.ReLU(), torch.relu),
        (tc.nn.LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)),
        (tc.nn.Tanh(), torch.tanh),
        (tc.nn.Sigmoid(), torch.sigmoid),
        (tc.nn.PixelShuffle(2), lambda t: F.pixel_shuffle(t, 2)),
        (tc.nn.PixelShuffle(3), lambda t: F.pixel_shuffle(t, 3)),
        (tc.nn.PixelUnshuffle(3), lambda t: F.pixel_unshuffle(t, 3)),
        (tc.nn.Upsample(2), lambda t: F.interpolate(t, scale_factor=2, mode="nearest")),
        (tc.nn.Upsample((3, 2)), lambda t: F.interpolate(t, scale_factor=(3, 2), mode="nearest")),
        (tc.nn.Upsample(2, mode="bilinear"), lambda t: F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)),
        (tc.nn.Upsample((3, 4), mode="bilinear"),
         lambda t: F.interpolate(t, scale_factor=(3, 4), mode="bilinear", align_corners=False)),
    ],
    ids=repr,
)
def test_small_layers_match_torch_autograd(ours, theirs):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 36, 6, 6))
    x[0, 0, 0, :2] = 0.0  # the kink of the ReLUs: PyTorch's gradient there is 0
    y = ours(x)
    g = rng.standard_normal(y.shape)
    ref_y, ref_gx = _autograd(theirs, x, g)
    np.testing.assert_allclose(y, ref_y, atol=1e-12)
    np.testing.assert_allclose(ours.backward(g), ref_gx, atol=1e-12)


@pytest.mark.parametrize("ndim, mode", [(1, "linear"), (3, "trilinear")])
def test_upsample_bilinear_is_multilinear_in_any_ndim(ndim, mode):
    rng = np.random.default_rng(ndim)
    x = rng.standard_normal((1, 2) + (4,) * ndim)
    layer = tc.nn.Upsample(2, mode="bilinear")
    y = layer(x)
    g = rng.standard_normal(y.shape)
    ref_y, ref_gx = _autograd(lambda t: F.interpolate(t, scale_factor=2, mode=mode, align_corners=False), x, g)
    np.testing.assert_allclose(y, ref_y, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), ref_gx, atol=1e-12)


def test_pixel_shuffle_round_trip_3d():
    x = np.arange(2 * 16 * 2 * 3 * 1, dtype=float).reshape(2, 16, 2, 3, 1)
    shuffled = tc.nn.PixelShuffle(2)(x)
    assert shuffled.shape == (2, 2, 4, 6, 2)
    np.testing.assert_array_equal(tc.nn.PixelUnshuffle(2)(shuffled), x)


@pytest.mark.parametrize("num_parameters", [1, 3])
def test_prelu_matches_torch(num_parameters):
    rng = np.random.default_rng(num_parameters)
    layer = tc.nn.PReLU(num_parameters, init=0.1, dtype=np.float64)
    layer.load_state_dict({"weight": rng.uniform(0, 0.5, num_parameters)})
    ref = torch.nn.PReLU(num_parameters).double()
    ref.load_state_dict({k: _t(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((2, 3, 4, 5))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    xt = _t(x).requires_grad_()
    yt = ref(xt)
    yt.backward(_t(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(layer.grads["weight"], ref.weight.grad.numpy(), atol=1e-12)


# ---- checkerboard diagnosis and repr --------------------------------------------------------------------------


def test_overlap_diagnosis_and_repr_flag_uneven_kernels():
    uneven = tc.nn.ConvTranspose(64, 32, 3, stride=2, padding=1, output_padding=1)
    assert repr(uneven).startswith("ConvTranspose(64, 32, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))")
    assert "checkerboard-prone" in repr(uneven)
    diagnosis = uneven.overlap_diagnosis((8, 8))
    assert diagnosis == tc.overlap_diagnosis((8, 8), 3, stride=2, padding=1, output_padding=1)
    assert not diagnosis.uniform
    even = tc.nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
    assert "checkerboard" not in repr(even) and even.overlap_diagnosis((8, 8)).uniform
    assert repr(tc.nn.Conv(3, 8, 3, groups=1, bias=False, padding_mode="reflect", padding=(1, 2))) == (
        "Conv(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 2), bias=False, padding_mode='reflect')"
    )


@given(
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.sampled_from(["nearest", "bilinear"]),
    st.lists(st.integers(1, 5), min_size=3, max_size=3), st.lists(st.integers(1, 3), min_size=3, max_size=3),
)
def test_upsample_matches_torch_interpolate(ndim, batch, channels, mode, sizes, scales):
    rng = np.random.default_rng(sum(sizes) + 7 * sum(scales))
    x = rng.standard_normal((batch, channels) + tuple(sizes[:ndim]))
    layer = tc.nn.Upsample(scales[:ndim], mode=mode)
    y = layer(x)
    g = rng.standard_normal(y.shape)
    torch_mode = mode if mode == "nearest" else {1: "linear", 2: "bilinear", 3: "trilinear"}[ndim]
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    ref_y, ref_gx = _autograd(lambda t: F.interpolate(t, scale_factor=tuple(scales[:ndim]), mode=torch_mode, **kwargs), x, g)
    np.testing.assert_allclose(y, ref_y, atol=1e-12)
    np.testing.assert_allclose(layer.backward(g), ref_gx, atol=1e-12)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 2))
def test_pixel_shuffle_and_unshuffle_match_torch(r, channels, h, w, batch):
    rng = np.random.default_rng(r * 100 + channels * 10 + h + w)
    x = rng.standard_normal((batch, channels * r * r, h, w))
    shuffle = tc.nn.PixelShuffle(r)
    y = shuffle(x)
    g = rng.standard_normal(y.shape)
    ref_y, ref_gx = _autograd(lambda t: F.pixel_shuffle(t, r), x, g)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(shuffle.backward(g), ref_gx)
    unshuffle = tc.nn.PixelUnshuffle(r)
    z = unshuffle(y)
    ref_z, ref_gy = _autograd(lambda t: F.pixel_unshuffle(t, r), y, x)
    np.testing.assert_array_equal(z, ref_z)
    np.testing.assert_array_equal(unshuffle.backward(x), ref_gy)
