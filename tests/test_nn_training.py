"""Losses, optimisers, initialisation and containers of transconv.nn against PyTorch and identities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import transconv as tc
from transconv import TransconvError


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ---- losses ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (tc.nn.mse_loss, F.mse_loss),
        (tc.nn.l1_loss, F.l1_loss),
        (lambda p, t: tc.nn.charbonnier_loss(p, t, eps=1e-3), lambda p, t: torch.sqrt((p - t) ** 2 + 1e-3**2).mean()),
        (lambda p, t: tc.nn.charbonnier_loss(p, t, eps=0.5), lambda p, t: torch.sqrt((p - t) ** 2 + 0.5**2).mean()),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_losses_match_torch(ours, theirs, dtype):
    rng = np.random.default_rng(0)
    pred = rng.standard_normal((2, 3, 5, 4)).astype(dtype)
    target = rng.standard_normal(pred.shape).astype(dtype)
    target[0, 0, 0, 0] = pred[0, 0, 0, 0]  # l1's kink: PyTorch's gradient is 0 there
    value, grad = ours(pred, target)
    pt = _t(pred).requires_grad_()
    ref = theirs(pt, _t(target))
    ref.backward()
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert isinstance(value, float) and abs(value - ref.item()) <= tol * max(1.0, abs(value))
    assert grad.dtype == dtype
    np.testing.assert_allclose(grad, pt.grad.numpy(), rtol=tol, atol=tol * 1e-3)


def test_losses_reject_mismatched_shapes():
    with pytest.raises(TransconvError, match=r"mse_loss: pred and target must have the same shape, got \(2,\) and \(3,\)"):
        tc.nn.mse_loss(np.zeros(2), np.zeros(3))
    with pytest.raises(TransconvError, match="charbonnier_loss: eps must be a number > 0"):
        tc.nn.charbonnier_loss(np.zeros(2), np.zeros(2), eps=0)


# ---- optimisers -----------------------------------------------------------------------------------------------


def _models(dtype):
    ours = tc.nn.Sequential(
        tc.nn.Conv(1, 4, 3, padding=1, seed=0, dtype=dtype), tc.nn.PReLU(4, dtype=dtype),
        tc.nn.ConvTranspose(4, 1, 4, stride=2, padding=1, seed=1, dtype=dtype),
    )
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.PReLU(4), torch.nn.ConvTranspose2d(4, 1, 4, 2, 1))
    theirs = theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    theirs.load_state_dict({k: _t(v) for k, v in ours.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make_ours, make_theirs",
    [
        (lambda m: tc.nn.SGD(m, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
        (lambda m: tc.nn.SGD(m, lr=0.05, momentum=0.9, weight_decay=1e-2),
         lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-2)),
        (lambda m: tc.nn.Adam(m, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
        (lambda m: tc.nn.Adam(m, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
         lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ],
    ids=["sgd", "sgd-momentum-wd", "adam", "adam-wd"],
)
def test_optimiser_steps_match_torch_optim(dtype, make_ours, make_theirs):
    ours, theirs = _models(dtype)
    opt, ref_opt = make_ours(ours), make_theirs(theirs.parameters())
    rng = np.random.default_rng(0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for step in range(5):
        x = rng.standard_normal((2, 1, 6, 6)).astype(dtype)
        target = rng.standard_normal((2, 1, 12, 12)).astype(dtype)
        opt.zero_grad()
        _, grad = tc.nn.mse_loss(ours(x), target)
        ours.backward(grad)
        opt.step()
        ref_opt.zero_grad()
        F.mse_loss(theirs(_t(x)), _t(target)).backward()
        ref_opt.step()
        for name, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=tol, atol=tol, err_msg=f"{name} step {step}")


def test_optimiser_state_dict_round_trip_continues_identically():
    a, _ = _models(np.float64)
    b, _ = _models(np.float64)
    x = np.random.default_rng(0).standard_normal((1, 1, 6, 6))
    opt_a = tc.nn.Adam(a, lr=1e-2)

    def train(model, opt):
        opt.zero_grad()
        _, grad = tc.nn.mse_loss(model(x), np.zeros((1, 1, 12, 12)))
        model.backward(grad)
        opt.step()

    train(a, opt_a)
    b.load_state_dict(a.state_dict())
    opt_b = tc.nn.Adam(b, lr=1e-2)
    opt_b.load_state_dict(opt_a.state_dict())
    assert opt_b.steps == 1
    train(a, opt_a)
    train(b, opt_b)
    for name, value in a.state_dict().items():
        np.testing.assert_array_equal(b.state_dict()[name], value)


def test_optimisers_reject_bad_hyperparameters():
    model = tc.nn.Conv(1, 1, 3)
    with pytest.raises(TransconvError, match="Adam: betas\\[1\\] must be >= 0.0 and < 1.0, got 1.0"):
        tc.nn.Adam(model, betas=(0.9, 1.0))
    with pytest.raises(TransconvError, match="SGD: lr must be >= 0.0, got -1"):
        tc.nn.SGD(model, lr=-1)


# ---- initialisation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transposed", [False, True])
def test_torch_init_has_pytorchs_bounds_and_spread(transposed):
    ours = (tc.nn.ConvTranspose if transposed else tc.nn.Conv)(24, 12, 3, seed=0)
    torch.manual_seed(0)
    theirs = (torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d)(24, 12, 3)
    fan_in = (12 if transposed else 24) * 9  # PyTorch reads fan_in from weight.shape[1]
    bound = 1 / np.sqrt(fan_in)
    for name in ("weight", "bias"):
        mine, ref = ours.params[name], theirs.state_dict()[name].numpy()
        assert mine.shape == ref.shape
        assert np.abs(mine).max() <= bound and np.abs(ref).max() <= bound
        assert np.abs(mine).max() > 0.8 * bound
    assert abs(ours.weight.std() / theirs.weight.detach().numpy().std() - 1) < 0.1


def test_init_is_deterministic_with_seed_and_kaiming_has_he_spread():
    a = tc.nn.Conv(32, 64, 3, init="kaiming", seed=3)
    b = tc.nn.Conv(32, 64, 3, init="kaiming", seed=3)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(a.weight, tc.nn.Conv(32, 64, 3, init="kaiming", seed=4).weight)
    assert abs(a.weight.std() / np.sqrt(2 / (32 * 9)) - 1) < 0.05
    assert not a.bias.any()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bilinear_init_reproduces_bilinear_interpolation_inside_the_border(scale):
    kernel = 2 * scale - scale % 2
    layer = tc.nn.ConvTranspose(3, 3, kernel, stride=scale, padding=scale // 2, init="bilinear", dtype=np.float64)
    x = np.random.default_rng(scale).standard_normal((2, 3, 7, 6))
    y = layer(x)
    ref = F.interpolate(_t(x), scale_factor=scale, mode="bilinear", align_corners=False).numpy()
    assert y.shape == ref.shape == (2, 3, 7 * scale, 6 * scale)
    inner = (Ellipsis, slice(scale, -scale), slice(scale, -scale))
    np.testing.assert_allclose(y[inner], ref[inner], atol=1e-12)
    assert layer.overlap_diagnosis((7, 6)).uniform == (kernel % scale == 0)


def test_icnr_init_makes_conv_plus_pixel_shuffle_nearest_upsampling():
    r = 3
    conv = tc.nn.Conv(2, 4 * r * r, 3, padding=1, init="icnr", icnr_scale=r, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 6))
    y = tc.nn.PixelShuffle(r)(conv(x))
    low = tc.conv(x, conv.weight[:: r * r], conv.bias[:: r * r], padding=1)
    np.testing.assert_allclose(y, tc.nn.Upsample(r)(low), atol=1e-12)


def test_init_rejects_what_it_cannot_do():
    with pytest.raises(TransconvError, match="ConvTranspose: init='bilinear' maps every channel to itself"):
        tc.nn.ConvTranspose(2, 3, 4, stride=2, init="bilinear")
    with pytest.raises(TransconvError, match="Conv: init='bilinear' is for transposed layers"):
        tc.nn.Conv(2, 2, 3, init="bilinear")
    with pytest.raises(TransconvError, match="divisible by 2\\*\\*2 = 4"):
        tc.nn.Conv(2, 6, 3, init="icnr")
    with pytest.raises(TransconvError, match="init must be one of"):
        tc.nn.Conv(2, 2, 3, init="xavier")


# ---- containers, state dicts, configs, errors -----------------------------------------------------------------


def test_sequential_names_match_torch_including_nested():
    ours = tc.nn.Sequential(tc.nn.Conv(1, 2, 3), tc.nn.Sequential(tc.nn.Conv(2, 2, 1), tc.nn.ReLU()), tc.nn.PReLU())
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Sequential(torch.nn.Conv2d(2, 2, 1), torch.nn.ReLU()), torch.nn.PReLU())
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "2.weight"]
    assert list(ours.grads) == list(ours.state_dict())
    assert [name for name, _ in ours.parameters()] == list(ours.state_dict())
    assert len(ours) == 3 and isinstance(ours[1], tc.nn.Sequential) and len(list(ours)) == 3


def test_gradients_accumulate_and_zero_grad_clears_them():
    layer = tc.nn.Conv(1, 2, 3, seed=0, dtype=np.float64)
    x = np.ones((1, 1, 4, 4))
    layer.backward(np.ones_like(layer(x)))
    once = layer.grads["weight"].copy()
    layer.backward(np.ones_like(layer(x)))
    np.testing.assert_allclose(layer.grads["weight"], 2 * once)
    layer.zero_grad()
    assert not layer.grads["weight"].any() and not layer.grads["bias"].any()


def test_load_state_dict_checks_keys_shapes_and_keeps_dtype():
    model = tc.nn.Sequential(tc.nn.Conv(1, 2, 3), tc.nn.ReLU())
    state = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model[0].weight.dtype == np.float32
    with pytest.raises(TransconvError, match=r"missing \['0.bias'\]"):
        model.load_state_dict({"0.weight": state["0.weight"]})
    with pytest.raises(TransconvError, match=r"'0.weight'\] has shape \(2, 1, 5, 5\), this layer needs \(2, 1, 3, 3\)"):
        model.load_state_dict({**state, "0.weight": np.zeros((2, 1, 5, 5))})
    with pytest.raises(TransconvError, match=r"unexpected \['9.weight'\]"):
        model.load_state_dict({**state, "9.weight": np.zeros(1)})


@pytest.mark.parametrize(
    "layer",
    [
        tc.nn.Conv(3, 6, (3, 5), stride=(2, 1), padding=((1, 2), (0, 0)), dilation=2, groups=3, bias=False, padding_mode="circular"),
        tc.nn.Conv(3, 6, 3, padding="same"),
        tc.nn.Conv1d(2, 2, 3),
        tc.nn.ConvTranspose3d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2, dtype=np.float64),
        tc.nn.ConvTranspose(2, 2, 1, stride=3, padding="same", padding_mode="reflect"),
        tc.nn.ReLU(), tc.nn.LeakyReLU(0.3), tc.nn.PReLU(3, init=0.1), tc.nn.Tanh(), tc.nn.Sigmoid(),
        tc.nn.PixelShuffle(2), tc.nn.PixelUnshuffle(3), tc.nn.Upsample((2, 3), mode="bilinear"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_config_rebuilds_the_architecture(layer):
    config = json.loads(json.dumps(layer.config()))
    rebuilt = tc.nn.LAYERS[type(layer).__name__](**config)
    assert type(rebuilt) is type(layer) and rebuilt.config() == layer.config()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in layer.state_dict().items()}


def test_bad_input_names_the_layer():
    layer = tc.nn.Conv2d(3, 4, 3)
    with pytest.raises(TransconvError, match="Conv2d: backward called before forward"):
        layer.backward(np.zeros((1, 4, 2, 2)))
    with pytest.raises(TransconvError, match=r"Conv2d: input has 2 channels, this layer takes in_channels=3"):
        layer(np.zeros((1, 2, 5, 5)))
    with pytest.raises(TransconvError, match="Conv2d: input must have shape \\(N, C, \\*spatial\\) or \\(C, \\*spatial\\) with 2 spatial axes"):
        layer(np.zeros((1, 3, 5, 5, 5)))
    with pytest.raises(TransconvError, match="Conv2d: the kernel .* is larger than the padded input"):
        layer(np.zeros((1, 3, 2, 2)))
    layer(np.zeros((1, 3, 5, 5)))
    with pytest.raises(TransconvError, match=r"Conv2d: grad_out must have the output's shape \(1, 4, 3, 3\)"):
        layer.backward(np.zeros((1, 4, 2, 2)))
    with pytest.raises(TransconvError, match="ConvTranspose: output_padding \\(2\\) must be smaller than stride \\(2\\)"):
        tc.nn.ConvTranspose(1, 1, 3, stride=2, output_padding=2)
    with pytest.raises(TransconvError, match="Conv: out_channels \\(5\\) must be divisible by groups \\(2\\)"):
        tc.nn.Conv(4, 5, 3, groups=2)
    with pytest.raises(TransconvError, match="Conv: padding_mode must be one of"):
        tc.nn.Conv(4, 4, 3, padding_mode="mirror")
    with pytest.raises(TransconvError, match="ReLU: backward called before forward"):
        tc.nn.ReLU().backward(np.zeros(3))
    with pytest.raises(TransconvError, match="Sequential: layer 1 must be a transconv.nn.Module"):
        tc.nn.Sequential(tc.nn.ReLU(), torch.nn.ReLU())
    with pytest.raises(TransconvError, match="Conv: dtype must be float32 or float64"):
        tc.nn.Conv(1, 1, 3, dtype=np.int32)


def test_unbatched_input_round_trips():
    layer = tc.nn.ConvTranspose(2, 3, 3, stride=2, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 4, 4))
    y = layer(x)
    assert y.shape == (3, 9, 9)
    batched = tc.nn.ConvTranspose(2, 3, 3, stride=2, seed=0, dtype=np.float64)
    np.testing.assert_array_equal(batched(x[None])[0], y)
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)), batched.backward(np.ones((1,) + y.shape))[0])
    np.testing.assert_array_equal(layer.grads["weight"], batched.grads["weight"])
