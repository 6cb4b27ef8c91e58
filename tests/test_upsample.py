"""tc.upsample and the ``transconv upsample`` command, on a quickly trained model and on the shipped ones."""

import argparse
import importlib

import numpy as np
import pytest

import transconv as tc
from transconv import TransconvError

from transconv.data import TRAIN_PHOTOS, bicubic_resize, load_photo, lr_hr_pair
from transconv.train import load_model, psnr, train
from transconv.upsample import shipped_model_path

upsample_module = importlib.import_module("transconv.upsample")  # tc.upsample is the function


@pytest.fixture(scope="module")
def quick_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "q.npz"
    train(2, steps=5, quick=True, progress=False, out=path)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 3)])
def test_shape_dtype_and_range(quick_model, dtype, shape):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape).astype(np.uint8) if dtype == np.uint8 else rng.random(shape).astype(dtype)
    out = tc.upsample(image, 2, model=quick_model)
    assert out.shape == (14, 18) + shape[2:] and out.dtype == dtype
    top = 255 if dtype == np.uint8 else 1.0
    assert out.min() >= 0 and out.max() <= top


def test_rgb_is_the_network_on_y_plus_bicubic_chroma(quick_model):
    """A gray RGB image (Cb = Cr = 0.5) comes back gray and equal to the gray result; a coloured one
    keeps bicubic chroma."""
    gray = np.random.default_rng(1).random((10, 12))
    as_rgb = np.repeat(gray[..., None], 3, axis=2)
    g, c = tc.upsample(gray, 2, model=quick_model), tc.upsample(as_rgb, 2, model=quick_model)
    assert np.allclose(c, g[..., None], atol=1e-6)
    rgb = np.random.default_rng(2).random((10, 12, 3))
    ycc_in, ycc_out = tc.data.rgb_to_ycbcr(rgb), tc.data.rgb_to_ycbcr(tc.upsample(rgb, 2, model=quick_model))
    ok = (tc.upsample(rgb, 2, model=quick_model) > 0).all(axis=2) & (tc.upsample(rgb, 2, model=quick_model) < 1).all(axis=2)
    assert np.allclose(ycc_out[..., 1][ok], bicubic_resize(ycc_in[..., 1], (20, 24))[ok], atol=1e-5)


def test_model_by_path_object_and_default_agree(quick_model):
    image = np.random.default_rng(3).random((8, 8))
    net = load_model(quick_model)[0]
    assert np.array_equal(tc.upsample(image, 2, model=quick_model), tc.upsample(image, 2, model=net))
    assert np.array_equal(tc.upsample(image, 2), tc.upsample(image, 2, model=shipped_model_path(2)))


@pytest.mark.parametrize(
    "image, scale, match",
    [
        (np.zeros(5), 2, "shape"),
        (np.zeros((4, 4, 4)), 2, "shape"),
        (np.zeros((0, 4)), 2, "empty"),
        (np.zeros((4, 4), dtype=np.int32), 2, "dtype"),
        (np.zeros((4, 4)), 3, "no model ships for scale 3"),
        (np.zeros((4, 4)), 0, "scale"),
        (np.zeros((4, 4)), 2.0, "scale"),
    ],
)
def test_bad_input(image, scale, match):
    with pytest.raises(TransconvError, match=match):
        tc.upsample(image, scale)


def test_bad_model(quick_model, tmp_path):
    with pytest.raises(TransconvError, match="up-samples 2x"):
        tc.upsample(np.zeros((4, 4)), 4, model=quick_model)
    with pytest.raises(TransconvError, match="not a file"):
        tc.upsample(np.zeros((4, 4)), 2, model=tmp_path / "missing.npz")
    with pytest.raises(TransconvError, match="model must be"):
        tc.upsample(np.zeros((4, 4)), 2, model=3)


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_models_load_without_pickle_and_beat_bicubic(scale):
    path = shipped_model_path(scale)
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
    _, arch, meta = load_model(path)
    assert arch["scale"] == scale and meta["scale"] == scale and "chelsea" in meta["held_out_photos"]
    assert "chelsea" not in meta["train_photos"] and "cat" not in meta["train_photos"]
    assert meta["train_photos"] == list(TRAIN_PHOTOS) and not meta["quick"]  # made by today's recipe
    lr, hr = lr_hr_pair(load_photo("chelsea"), scale)
    ours = psnr(tc.upsample(lr, scale), hr, scale)
    bicubic = psnr(np.clip(bicubic_resize(lr, hr.shape), 0, 1), hr, scale)
    assert ours > bicubic + (0.5 if scale == 2 else 0.1)


def _args(*argv):
    parser = argparse.ArgumentParser()
    upsample_module.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_cli_run_writes_refuses_and_forces(tmp_path, capsys):
    from PIL import Image

    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(src)
    assert upsample_module.run(_args(src, dst)) == 0
    with Image.open(dst) as img:
        assert img.size == (22, 18) and img.mode == "RGB"
    first = dst.read_bytes()
    assert upsample_module.run(_args(src, dst, "--scale", 4)) == 2
    assert dst.read_bytes() == first and "--force" in capsys.readouterr().err
    assert upsample_module.run(_args(src, dst, "--scale", 4, "--force")) == 0
    with Image.open(dst) as img:
        assert img.size == (44, 36)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]  # no temporary left behind


@pytest.mark.parametrize(
    "make_args",
    [
        lambda t: (t / "missing.png", t / "o.png"),
        lambda t: (t / "in.png", t / "no" / "o.png"),
        lambda t: (t / "in.png", t / "o.unknown"),
        lambda t: (t / "junk.png", t / "o.png"),
        lambda t: (t / "in.png", t / "o.png", "--scale", 3),
    ],
)
def test_cli_bad_paths_one_line_exit_2(tmp_path, capsys, make_args):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "in.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert upsample_module.run(_args(*make_args(tmp_path))) == 2
    err = capsys.readouterr().err
    assert err.startswith("transconv upsample: error:") and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()
