"""The up-sampler's data pipeline and trainer: held-out separation, alignment, determinism,
learning, bit-for-bit resume, and equality of the network with its PyTorch twin."""

import argparse
import importlib

import numpy as np
import pytest

import transconv as tc
from transconv import TransconvError

from transconv.data import HELD_OUT_PHOTOS, TRAIN_PHOTOS, PatchSampler, bicubic_resize, load_photo, lr_hr_pair
from transconv.train import bicubic_kernel, fsrcnn, load_model, transpose_geometry, train

train_module = importlib.import_module("transconv.train")  # tc.train is the function

torch = pytest.importorskip("torch")


def test_held_out_never_in_training():
    from skimage import data as skdata

    assert not set(TRAIN_PHOTOS) & set(HELD_OUT_PHOTOS)
    # chelsea is scikit-image's cat: the same photograph may sit in neither list under another name
    assert np.array_equal(skdata.cat(), skdata.chelsea())
    assert "cat" not in TRAIN_PHOTOS + HELD_OUT_PHOTOS
    with pytest.raises(TransconvError, match="held out"):
        PatchSampler(2, 8, ("camera", HELD_OUT_PHOTOS[0]))
    sampler = PatchSampler(2, 8)
    assert [p[1].shape for p in sampler.pairs] == [lr_hr_pair(load_photo(n), 2)[1].shape for n in TRAIN_PHOTOS]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_lr_is_bicubic_of_hr_at_exact_scale(scale):
    y = load_photo("camera")[:101, :98]
    lr, hr = lr_hr_pair(y, scale)
    assert hr.shape == (scale * lr.shape[0], scale * lr.shape[1])
    assert np.array_equal(hr, y[: hr.shape[0], : hr.shape[1]])
    assert np.array_equal(lr, bicubic_resize(hr, lr.shape))


@pytest.mark.parametrize("scale", [2, 4])
def test_patches_are_aligned_through_the_augmentation(scale):
    """Each LR patch equals the bicubic down-scale of its HR patch away from the patch border
    (rotations and flips commute with the symmetric kernel)."""
    lr, hr = PatchSampler(scale, 16, ("camera", "moon")).batch(np.random.default_rng(3), 8)
    assert hr.shape[2:] == (16 * scale, 16 * scale)
    for a, b in zip(lr[:, 0], hr[:, 0]):
        down = bicubic_resize(b, a.shape)
        assert np.abs(down - a)[3:-3, 3:-3].max() < 1e-5
        assert np.abs(down - a).max() > 0 or np.ptp(b) == 0  # the border differs: the crop, not the image, was resized


def test_batches_are_deterministic_by_seed():
    sampler = PatchSampler(2, 8, ("camera", "text"))
    a = sampler.batch(np.random.default_rng(7), 16)
    b = sampler.batch(np.random.default_rng(7), 16)
    c = sampler.batch(np.random.default_rng(8), 16)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_geometry_and_bicubic_path_init(scale):
    padding, output_padding = transpose_geometry(scale)
    assert (16 - 1) * scale - 2 * padding + 9 + output_padding == 16 * scale
    k = bicubic_kernel(scale, padding)
    assert np.allclose([k[p::scale].sum() for p in range(scale)], 1)
    # with only the bicubic path (other up-sampling channels zeroed), the untrained net is that interpolation
    net = fsrcnn(scale, 8, 4, 1)
    net[-1].params["weight"][1:] = 0
    x = np.random.default_rng(0).random((1, 1, 12, 12), dtype=np.float32)
    ref = torch.nn.functional.conv_transpose2d(torch.tensor(x), torch.tensor(np.outer(k, k)[None, None], dtype=torch.float32),
                                               stride=scale, padding=padding, output_padding=output_padding)
    assert np.allclose(net(x), ref.numpy(), atol=1e-6)


def _torch_twin(net):
    layers = []
    for layer in net:
        name = type(layer).__name__
        if name == "Conv":
            t = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=layer.padding)
        elif name == "ConvTranspose":
            t = torch.nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                                         padding=layer.padding, output_padding=layer.output_padding)
        else:
            t = torch.nn.PReLU(layer.params["weight"].size)
        layers.append(t)
    twin = torch.nn.Sequential(*layers).double()
    twin.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in net.state_dict().items()})
    return twin


@pytest.mark.parametrize("scale", [2, 4])
def test_network_and_gradients_equal_torch_twin(scale):
    net = fsrcnn(scale, 12, 5, 2, seed=4)
    twin = _torch_twin(net)
    rng = np.random.default_rng(1)
    x = rng.random((3, 1, 9, 11), dtype=np.float32)
    target = rng.random((3, 1, 9 * scale, 11 * scale), dtype=np.float32)
    net.zero_grad()
    y = net(x)
    loss, grad = tc.nn.mse_loss(y, target)
    gx = net.backward(grad)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    lt = torch.nn.functional.mse_loss(twin(xt), torch.tensor(target, dtype=torch.float64))
    lt.backward()
    assert y.shape == (3, 1, 9 * scale, 11 * scale)
    assert np.allclose(y, twin(xt).detach().numpy(), atol=1e-5)
    assert loss == pytest.approx(lt.item(), rel=1e-5)
    assert np.allclose(gx, xt.grad.numpy(), rtol=1e-4, atol=1e-9 + 1e-4 * np.abs(gx).max())
    for (name, g), (tname, p) in zip(net.grads.items(), twin.named_parameters()):
        assert name == tname
        assert np.allclose(g, p.grad.numpy(), rtol=1e-4, atol=1e-4 * np.abs(p.grad.numpy()).max()), name


def test_quick_training_decreases_the_loss_and_saves(tmp_path):
    out = tmp_path / "m.npz"
    r = train(2, steps=30, seed=1, out=out, quick=True, progress=False)
    assert np.mean(r["losses"][-5:]) < np.mean(r["losses"][:5])
    model, arch, meta = load_model(out)
    assert arch == {"scale": 2, "d": 32, "s": 5, "m": 1}
    assert np.array_equal(tc.nn.load(out).state_dict()["8.weight"], model.state_dict()["8.weight"])
    assert meta["seed"] == 1 and meta["steps"] == 30 and meta["held_out_photos"] == list(HELD_OUT_PHOTOS)
    x = np.random.default_rng(0).random((1, 1, 6, 7), dtype=np.float32)
    assert np.array_equal(model(x), r["model"](x))
    with np.load(out, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)


def test_resume_is_bit_for_bit(tmp_path, monkeypatch):
    whole = train(2, steps=20, seed=5, out=tmp_path / "a.npz", quick=True, progress=False, eval_every=10)
    calls = {"n": 0}
    batch = PatchSampler.batch

    def interrupted(self, rng, size):
        calls["n"] += 1
        if calls["n"] > 12:
            raise KeyboardInterrupt
        return batch(self, rng, size)

    monkeypatch.setattr(PatchSampler, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(2, steps=20, seed=5, out=tmp_path / "b.npz", quick=True, progress=False, eval_every=10)
    assert not (tmp_path / "b.npz").exists() and (tmp_path / "b.npz.ckpt.npz").exists()
    monkeypatch.setattr(PatchSampler, "batch", batch)
    resumed = train(2, steps=20, seed=5, out=tmp_path / "b.npz", quick=True, progress=False, eval_every=10, resume=True)
    assert resumed["losses"] == whole["losses"]
    a, b = whole["model"].state_dict(), resumed["model"].state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(TransconvError, match="other settings"):
        train(2, steps=21, seed=5, out=tmp_path / "b.npz", quick=True, progress=False, eval_every=10, resume=True)


def _args(**kw):
    parser = argparse.ArgumentParser()
    train_module.add_arguments(parser)
    argv = []
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return parser.parse_args(argv)


def test_train_run_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "m.npz"
    out.write_bytes(b"keep")
    assert train_module.run(_args(out=out, quick=True, steps=3, no_progress=True)) == 2
    assert out.read_bytes() == b"keep"
    assert "--force" in capsys.readouterr().err
    assert train_module.run(_args(out=out, quick=True, steps=3, no_progress=True, force=True)) == 0
    assert load_model(out)[2]["steps"] == 3
    assert train_module.run(_args(out=tmp_path / "no" / "m.npz", quick=True, no_progress=True)) == 2
    assert train_module.run(_args(out=tmp_path / "x.npz", quick=True, no_progress=True, resume=True)) == 2


def test_load_model_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(TransconvError, match="bad.npz"):
        load_model(bad)
    pickled = tmp_path / "p.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TransconvError):
        load_model(pickled)
    plain = tmp_path / "plain.npz"
    tc.nn.save(fsrcnn(2, 8, 4, 1), plain)
    with pytest.raises(TransconvError, match="not an up-sampler"):
        load_model(plain)


# ---------------------------------------------------------------- the up-sampling heads (docs/checkerboard.md)

HEAD_NAMES = list(train_module.HEADS)


def _torch_head_twin(net):
    """_torch_twin extended to the Upsample / PixelShuffle of the resize and sub-pixel heads."""
    layers = []
    for layer in net:
        name = type(layer).__name__
        if name == "Upsample":
            layers.append(torch.nn.Upsample(scale_factor=layer.scale_factor, mode=layer.mode))
        elif name == "PixelShuffle":
            layers.append(torch.nn.PixelShuffle(layer.upscale_factor))
        else:
            layers.append(_torch_twin(tc.nn.Sequential(layer))[0])
    twin = torch.nn.Sequential(*layers).double()
    twin.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in net.state_dict().items()})
    return twin


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_every_head_equals_its_torch_twin(head):
    net = fsrcnn(2, 8, 4, 1, seed=3, head=head)
    twin = _torch_head_twin(net)
    rng = np.random.default_rng(2)
    x = rng.random((2, 1, 7, 9), dtype=np.float32)
    target = rng.random((2, 1, 14, 18), dtype=np.float32)
    net.zero_grad()
    y = net(x)
    loss, grad = tc.nn.mse_loss(y, target)
    net.backward(grad)
    lt = torch.nn.functional.mse_loss(twin(torch.tensor(x, dtype=torch.float64)), torch.tensor(target, dtype=torch.float64))
    lt.backward()
    assert y.shape == (2, 1, 14, 18)
    assert loss == pytest.approx(lt.item(), rel=1e-5)
    for (name, g), (tname, p) in zip(net.grads.items(), twin.named_parameters()):
        assert name == tname
        assert np.allclose(g, p.grad.numpy(), rtol=1e-4, atol=1e-4 * np.abs(p.grad.numpy()).max()), name


@pytest.mark.parametrize("head", HEAD_NAMES)
def test_every_head_starts_on_an_interpolation_path(head):
    """With the up-sampling layer's other channels zeroed, the untrained net keeps a flat image flat
    (every output phase's taps sum to one) and stays close to bicubic on a photograph."""
    net = fsrcnn(2, 8, 4, 1, head=head)
    up = [layer for layer in net if hasattr(layer, "kernel_size")][-1]
    if type(up).__name__ == "ConvTranspose":  # weight (C_in, C_out, ...): input channels first
        up.params["weight"][1:] = 0
    else:
        up.params["weight"][:, 1:] = 0
    flat = net(np.full((1, 1, 16, 16), 0.3, dtype=np.float32))[0, 0]
    assert np.allclose(flat[6:-6, 6:-6], 0.3, atol=1e-6)
    lr, hr = lr_hr_pair(load_photo("camera")[100:196, 100:196], 2)
    bicubic = bicubic_resize(lr, hr.shape)
    ours = net(lr[None, None])[0, 0]
    assert np.abs(ours - bicubic)[4:-4, 4:-4].mean() < 0.01  # nearest up-sampling is 0.012 away, swapped phases 0.024


def test_default_head_is_the_shipped_network_and_is_not_recorded(tmp_path):
    a, b = fsrcnn(2, 8, 4, 1, seed=7).state_dict(), fsrcnn(2, 8, 4, 1, seed=7, head="k9").state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    train(2, steps=2, quick=True, progress=False, out=tmp_path / "k9.npz")
    _, arch, meta = load_model(tmp_path / "k9.npz")
    assert "head" not in arch and "head" not in meta
    assert train_module.run(_args(out=tmp_path / "icnr.npz", quick=True, steps=2, no_progress=True, head="icnr")) == 0
    model, arch, meta = load_model(tmp_path / "icnr.npz")
    assert arch["head"] == meta["head"] == "icnr" and "--head icnr" in meta["command"]
    assert type(model[-1]).__name__ == "PixelShuffle"
    assert tc.upsample(np.zeros((5, 6)), 2, model=tmp_path / "icnr.npz").shape == (10, 12)


def test_bad_heads_are_refused():
    with pytest.raises(TransconvError, match="head must be one of"):
        fsrcnn(2, head="k5")
    with pytest.raises(TransconvError, match="head must be one of"):
        train(2, steps=1, quick=True, progress=False, head="bilinear")
    with pytest.raises(TransconvError, match="needs scale 2, got scale 4"):
        train(4, steps=1, quick=True, progress=False, head="k3s2")
    with pytest.raises(SystemExit):
        _args(head="k5")
    with pytest.raises(TransconvError, match="init must be"):
        train(2, steps=1, quick=True, progress=False, init="zeros")
    plain = train(2, steps=1, quick=True, progress=False, init="torch", head="k4s2", seed=3)
    assert plain["metadata"]["init"] == "torch"
    start = fsrcnn(2, seed=3, init="torch", head="k4s2")  # PyTorch's initialisation, no interpolation path
    assert np.array_equal(start[0].params["weight"], tc.nn.Conv(1, 32, 5, padding=2, seed=start[0].seed).params["weight"])
    assert [type(layer).__name__ for layer in fsrcnn(3, 8, 4, 1, head="resize")][-2:] == ["Upsample", "Conv"]
    assert fsrcnn(4, 8, 4, 1, head="icnr")(np.zeros((1, 1, 3, 5), dtype=np.float32)).shape == (1, 1, 12, 20)
