"""from_torch / to_torch against PyTorch autograd, and the exact equivalences (outputs and gradients)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import transconv as tc

nn = tc.nn
TOL = dict(rtol=1e-10, atol=1e-10)


# ---- random PyTorch models ------------------------------------------------------------------


def _torch_conv(rng, ndim, transposed):
    """A random torch conv layer (valid for a spatial input of length 7 on every axis)."""
    groups = int(rng.choice([1, 2]))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    k = tuple(int(v) for v in rng.integers(1, 4, ndim))
    s = tuple(int(v) for v in rng.integers(1, 4, ndim))
    d = tuple(int(v) for v in rng.integers(1, 3, ndim))
    bias = bool(rng.integers(2))
    cls = getattr(torch.nn, f"{'ConvTranspose' if transposed else 'Conv'}{ndim}d")
    if transposed:
        p = tuple(int(rng.integers(0, (kk - 1) * dd + 1)) for kk, dd in zip(k, d))
        op = tuple(int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d))
        return cls(c_in, c_out, k, s, p, op, groups, bias, d, dtype=torch.float64)
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    if rng.integers(4) == 0:
        s, padding = (1,) * ndim, str(rng.choice(["same", "valid"]))
    else:
        padding = tuple(int(rng.integers(0, 3)) for _ in range(ndim))
    return cls(c_in, c_out, k, s, padding, d, groups, bias, mode, dtype=torch.float64)


def _torch_model(seed):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    ndim = int(rng.integers(1, 4))
    conv = _torch_conv(rng, ndim, transposed=bool(rng.integers(2)))
    c = conv.out_channels
    act = [torch.nn.ReLU(), torch.nn.LeakyReLU(0.3), torch.nn.Tanh(), torch.nn.Sigmoid(),
           torch.nn.PReLU(c, init=0.2, dtype=torch.float64), torch.nn.PReLU(dtype=torch.float64)][int(rng.integers(6))]
    with torch.no_grad():
        for p in act.parameters():
            p.uniform_(-1, 1)
    up = torch.nn.Upsample(scale_factor=2, mode=str(rng.choice(["nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[ndim]])))
    layers = [conv, torch.nn.Sequential(act, up)]
    if ndim == 2:
        layers += [torch.nn.Conv2d(c, 4, 3, padding=1, dtype=torch.float64), torch.nn.PixelShuffle(2), torch.nn.PixelUnshuffle(2)]
    return torch.nn.Sequential(*layers), ndim, conv.in_channels


def _compare_with_autograd(net, model, x):
    xt = torch.tensor(x, requires_grad=True)
    yt = net(xt)
    y = model(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), **TOL)
    g = np.random.default_rng(99).standard_normal(y.shape)
    yt.backward(torch.from_numpy(g))
    model.zero_grad()
    np.testing.assert_allclose(model.backward(g), xt.grad.numpy(), **TOL)
    torch_grads = {name: p.grad.numpy() for name, p in net.named_parameters()}
    assert sorted(model.grads) == sorted(torch_grads)
    for name, value in torch_grads.items():
        np.testing.assert_allclose(model.grads[name], value, **TOL, err_msg=name)


@pytest.mark.parametrize("seed", range(40))
def test_from_torch_matches_autograd(seed):
    net, ndim, c_in = _torch_model(seed)
    model = nn.from_torch(net)
    assert list(model.state_dict()) == list(net.state_dict())
    x = np.random.default_rng(seed).standard_normal((2, c_in) + (7,) * ndim)
    _compare_with_autograd(net, model, x)


@pytest.mark.parametrize("seed", range(40))
def test_to_torch_of_from_torch_matches_autograd(seed):
    net, ndim, c_in = _torch_model(seed)
    back = nn.to_torch(nn.from_torch(net))
    model = nn.from_torch(back)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, rtol=0, atol=0)
    x = np.random.default_rng(seed + 1).standard_normal((2, c_in) + (7,) * ndim)
    _compare_with_autograd(back, model, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_torch_from_our_layers(dtype):
    model = nn.Sequential(
        nn.Conv(3, 8, (3, 3), padding="same", padding_mode="reflect", seed=0, dtype=dtype),
        nn.PReLU(8, dtype=dtype),
        nn.Sequential(nn.ConvTranspose(8, 4, 4, stride=2, padding=1, groups=2, bias=False, seed=1, dtype=dtype), nn.Tanh()),
        nn.Upsample(2, mode="bilinear"),
        nn.Conv(4, 2, 3, stride=2, dilation=2, padding=(1, 2), padding_mode="circular", seed=2, dtype=dtype),
        nn.Sigmoid(),
    )
    net = nn.to_torch(model)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7)).astype(dtype)
    if dtype == np.float64:
        _compare_with_autograd(net, model, x)
    else:
        np.testing.assert_allclose(model(x), net(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_from_torch_keeps_float32():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.PReLU())
    model = nn.from_torch(net)
    assert model[0].dtype == np.float32 and model[1].weight.dtype == np.float32


def test_unsupported_torch_modules_are_named():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Sequential(torch.nn.ReLU(), torch.nn.BatchNorm2d(2)))
    with pytest.raises(tc.TransconvError, match=r"module 1.1 \(BatchNorm2d\) is not supported"):
        nn.from_torch(net)
    with pytest.raises(tc.TransconvError, match=r"align_corners=True"):
        nn.from_torch(torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True))
    with pytest.raises(tc.TransconvError, match="scale_factor must be integers"):
        nn.from_torch(torch.nn.Upsample(scale_factor=1.5))
    with pytest.raises(tc.TransconvError, match="float16"):
        nn.from_torch(torch.nn.Conv2d(1, 1, 3, dtype=torch.float16))


def test_to_torch_refuses_what_torch_cannot_express():
    with pytest.raises(tc.TransconvError, match=r"layer 0 \(Conv\) has asymmetric padding"):
        nn.to_torch(nn.Sequential(nn.Conv(1, 1, 3, padding=((0, 1), (1, 1)))))
    with pytest.raises(tc.TransconvError, match="padding_mode='reflect'"):
        nn.to_torch(nn.ConvTranspose(1, 1, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(tc.TransconvError, match="4 spatial axes"):
        nn.to_torch(nn.Conv(1, 1, (1, 1, 1, 1)))
    with pytest.raises(tc.TransconvError, match="same' with stride"):
        nn.to_torch(nn.Conv(1, 1, 3, stride=2, padding="same"))
    with pytest.raises(tc.TransconvError, match=r"layer <root> \(Crop\) has no PyTorch equivalent"):
        nn.to_torch(nn.Crop([[1, 1]]))


def test_missing_torch_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(tc.TransconvError, match="from_torch: PyTorch is not installed"):
        nn.from_torch(object())
    with pytest.raises(tc.TransconvError, match="to_torch: PyTorch is not installed"):
        nn.to_torch(nn.ReLU())


# ---- equivalences ---------------------------------------------------------------------------


def _random_transposed(seed, same_stride=False):
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(1, 3))
    groups = int(rng.choice([1, 2]))
    c_in, c_out = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    k = tuple(int(v) for v in rng.integers(1, 6, ndim))
    s = (int(rng.integers(1, 4)),) * ndim if same_stride else tuple(int(v) for v in rng.integers(1, 4, ndim))
    d = tuple(int(v) for v in rng.integers(1, 3, ndim))
    pads = tuple((int(rng.integers(0, (kk - 1) * dd + 1)), int(rng.integers(0, (kk - 1) * dd + 1))) for kk, dd in zip(k, d))
    op = tuple(int(rng.integers(0, max(ss, dd))) for ss, dd in zip(s, d))
    layer = nn.ConvTranspose(c_in, c_out, k, s, pads, op, groups, bool(rng.integers(2)), d, seed=seed, dtype=np.float64)
    if layer.bias is not None:
        layer.bias[...] = rng.standard_normal(layer.bias.shape)
    # long enough that the largest crop leaves an output: (L - 1) s >= k_eff - 1
    x = rng.standard_normal((2, c_in) + tuple(int(rng.integers((kk - 1) * dd + 1, (kk - 1) * dd + 4)) for kk, dd in zip(k, d)))
    return layer, x


def _run(model, x, g):
    model.zero_grad()
    y = model(x)
    return y, model.backward(g)


def _with_params(layer, weight, bias):
    """A copy of ``layer`` (same config) holding the given parameters."""
    twin = type(layer)(**layer.config())
    state = {"weight": weight}
    if layer.bias is not None:
        state["bias"] = np.zeros_like(layer.bias) if bias is None else bias
    twin.load_state_dict(state)
    return twin


@pytest.mark.parametrize("seed", range(60))
def test_convtranspose_to_pixelshuffle(seed):
    layer, x = _random_transposed(seed, same_stride=True)
    model = nn.convtranspose_to_pixelshuffle(layer)
    g = np.random.default_rng(seed + 1).standard_normal(layer(x).shape)
    y_ref, gx_ref = _run(layer, x, g)
    y, gx = _run(model, x, g)
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(gx, gx_ref, **TOL)
    # the weight map is a selection: converting the gradient gives the gradient on every mapped tap
    s, nd = layer.stride[0], layer.ndim
    mapped = nn.convtranspose_to_pixelshuffle(_with_params(layer, np.ones_like(layer.weight), None if layer.bias is None else np.ones_like(layer.bias)))[0].weight != 0
    moved = nn.convtranspose_to_pixelshuffle(_with_params(layer, layer.grads["weight"], layer.grads.get("bias")))[0]
    np.testing.assert_allclose(np.where(mapped, model.grads["0.weight"], 0), np.where(mapped, moved.weight, 0), **TOL)
    assert int(mapped.sum()) == layer.weight.size
    if layer.bias is not None:
        np.testing.assert_allclose(model.grads["0.bias"].reshape(-1, s**nd).sum(1), layer.grads["bias"], **TOL)


def test_convtranspose_to_pixelshuffle_omits_the_crop_when_aligned():
    layer = nn.ConvTranspose(2, 3, 4, stride=2, padding=1, seed=0)
    assert [type(m).__name__ for m in nn.convtranspose_to_pixelshuffle(layer)] == ["Conv", "PixelShuffle", "Crop"]
    layer = nn.ConvTranspose(2, 3, 4, stride=2, seed=0)
    assert [type(m).__name__ for m in nn.convtranspose_to_pixelshuffle(layer)] == ["Conv", "PixelShuffle"]
    layer = nn.ConvTranspose(2, 3, 4, stride=2, padding=2, seed=0)
    assert [type(m).__name__ for m in nn.convtranspose_to_pixelshuffle(layer)] == ["Conv", "PixelShuffle"]
    layer = nn.ConvTranspose(2, 3, 2, stride=2, seed=0)
    model = nn.convtranspose_to_pixelshuffle(layer)
    assert [type(m).__name__ for m in model] == ["Conv", "PixelShuffle"] and model[0].kernel_size == (1, 1)


@pytest.mark.parametrize("seed", range(60))
def test_pixelshuffle_to_convtranspose(seed):
    rng = np.random.default_rng(seed)
    nd, r = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2]))
    c_in, c = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    k = tuple(int(v) for v in rng.integers(1, 5, nd))
    dil = tuple(int(v) for v in rng.integers(1, 3, nd))
    pads = tuple((int(rng.integers(0, (kk - 1) * dd + 1)), int(rng.integers(0, (kk - 1) * dd + 1))) for kk, dd in zip(k, dil))
    conv = nn.Conv(c_in, c * r**nd, k, 1, pads, dil, groups, bool(rng.integers(2)), seed=seed, dtype=np.float64)
    if conv.bias is not None:
        conv.bias[...] = np.repeat(rng.standard_normal(c), r**nd)
    shuffle = nn.PixelShuffle(r)
    layer = nn.pixelshuffle_to_convtranspose(conv, shuffle)
    pair = nn.Sequential(conv, shuffle)
    x = rng.standard_normal((2, c_in) + tuple(int(rng.integers((kk - 1) * dd + 1, (kk - 1) * dd + 4)) for kk, dd in zip(k, dil)))
    g = rng.standard_normal(pair(x).shape)
    y_ref, gx_ref = _run(pair, x, g)
    y, gx = _run(layer, x, g)
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(gx, gx_ref, **TOL)
    bias_grad = pair.grads.get("0.bias")
    moved = nn.pixelshuffle_to_convtranspose(_with_params(conv, pair.grads["0.weight"], None), shuffle)
    mapped = nn.pixelshuffle_to_convtranspose(_with_params(conv, np.ones_like(conv.weight), None), shuffle).weight != 0
    np.testing.assert_allclose(np.where(mapped, layer.grads["weight"], 0), moved.weight, **TOL)
    if bias_grad is not None:
        np.testing.assert_allclose(layer.grads["bias"], bias_grad.reshape(c, r**nd).sum(1), **TOL)
    # and back: the round trip reproduces the original pair
    again = nn.convtranspose_to_pixelshuffle(layer)
    np.testing.assert_allclose(again(x), y_ref, **TOL)


def test_pixelshuffle_to_convtranspose_refusals():
    with pytest.raises(tc.TransconvError, match="stride 1"):
        nn.pixelshuffle_to_convtranspose(nn.Conv(1, 4, 3, stride=2), nn.PixelShuffle(2))
    with pytest.raises(tc.TransconvError, match="bias differs between the 4 phases"):
        nn.pixelshuffle_to_convtranspose(nn.Conv(1, 4, 3, seed=0), nn.PixelShuffle(2))
    with pytest.raises(tc.TransconvError, match="exceeds kernel - 1"):
        nn.pixelshuffle_to_convtranspose(nn.Conv(1, 4, 3, padding=3, bias=False), nn.PixelShuffle(2))
    with pytest.raises(tc.TransconvError, match="padding_mode='reflect'"):
        nn.pixelshuffle_to_convtranspose(nn.Conv(1, 4, 3, padding=1, padding_mode="reflect", bias=False), nn.PixelShuffle(2))
    with pytest.raises(tc.TransconvError, match="divisible by r"):
        nn.pixelshuffle_to_convtranspose(nn.Conv(1, 6, 3, bias=False), nn.PixelShuffle(2))
    with pytest.raises(tc.TransconvError, match=r"stride \(2, 1\) differs"):
        nn.convtranspose_to_pixelshuffle(nn.ConvTranspose(1, 1, 3, stride=(2, 1)))


@pytest.mark.parametrize("seed", range(60))
def test_convtranspose_as_conv(seed):
    layer, x = _random_transposed(seed)
    model = nn.convtranspose_as_conv(layer)
    g = np.random.default_rng(seed + 1).standard_normal(layer(x).shape)
    y_ref, gx_ref = _run(layer, x, g)
    y, gx = _run(model, x, g)
    np.testing.assert_allclose(y, y_ref, **TOL)
    np.testing.assert_allclose(gx, gx_ref, **TOL)
    moved = nn.convtranspose_as_conv(_with_params(layer, layer.grads["weight"], layer.grads.get("bias")))[1]
    np.testing.assert_allclose(model.grads["1.weight"], moved.weight, **TOL)
    if layer.bias is not None:
        np.testing.assert_allclose(model.grads["1.bias"], layer.grads["bias"], **TOL)


def test_equivalences_refuse_other_padding_modes():
    layer = nn.ConvTranspose(1, 1, 3, stride=2, padding=1, padding_mode="reflect")
    for convert in (nn.convtranspose_as_conv, nn.convtranspose_to_pixelshuffle):
        with pytest.raises(tc.TransconvError, match="only 'zeros' is exact"):
            convert(layer)


@pytest.mark.parametrize("layer", [nn.Crop([[1, 2], [0, 3]]), nn.ZeroInsert([2, 3], [[1, 2], [0, 1]]),
                                   nn.ZeroInsert([3, 1], [[-2, -1], [-1, 2]])])
def test_geometry_layers_dot_test(layer):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7))
    y = layer(x)
    g = rng.standard_normal(y.shape)
    assert np.isclose(np.vdot(y, g), np.vdot(x, layer.backward(g)), rtol=1e-12)


def test_zero_insert_crops_with_negative_padding():
    x = np.arange(1.0, 5.0).reshape(1, 1, 4)
    np.testing.assert_array_equal(nn.ZeroInsert([2], [[-1, -2]])(x)[0, 0], [0, 2, 0, 3])


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("kernel", [3, 5])
def test_resize_conv_matches_torch(mode, kernel):
    model = nn.resize_conv(2, 3, scale=2, kernel_size=kernel, mode=mode, seed=0, dtype=np.float64)
    net = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2, mode=mode),
                              torch.nn.Conv2d(2, 3, kernel, padding="same", dtype=torch.float64))
    net.load_state_dict({"1.weight": torch.from_numpy(model[1].weight), "1.bias": torch.from_numpy(model[1].bias)})
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 4))
    assert model(x).shape == (2, 3, 10, 8)
    _compare_with_autograd(net, model, x)


def test_resize_conv_is_checkerboard_free_where_convtranspose_is_not():
    x = np.ones((1, 1, 6, 6))
    resize = nn.resize_conv(1, 1, 2, 3, padding_mode="replicate", bias=False, dtype=np.float64)
    resize[1].load_state_dict({"weight": np.ones((1, 1, 3, 3))})
    np.testing.assert_allclose(resize(x), 9.0, rtol=1e-14)  # every output pixel: the same 9 taps
    up = nn.ConvTranspose(1, 1, 3, stride=2, padding=1, output_padding=1, bias=False, dtype=np.float64)
    up.load_state_dict({"weight": np.ones((1, 1, 3, 3))})
    assert len(np.unique(up(x)[0, 0, 2:-2, 2:-2])) > 1  # uneven overlap: the checkerboard
