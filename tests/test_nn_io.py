"""tc.nn.save / tc.nn.load: round trips for every registered layer, and every bad file refused by name."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import transconv as tc
from transconv.nn import io as nn_io

nn = tc.nn


def _examples(dtype):
    """At least one instance of every class in LAYERS (with the options that change its config)."""
    return {
        "Conv": [nn.Conv(2, 4, 3, padding=1, seed=1, dtype=dtype),
                 nn.Conv(4, 2, (3, 2), stride=(2, 1), padding=((1, 0), (0, 1)), dilation=(1, 2), groups=2, bias=False,
                         padding_mode="reflect", seed=2, dtype=dtype),
                 nn.Conv(2, 2, 4, padding="same", padding_mode="circular", seed=3, dtype=dtype)],
        "ConvTranspose": [nn.ConvTranspose(2, 4, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1, seed=4, dtype=dtype),
                          nn.ConvTranspose(2, 2, (4, 4), stride=2, padding="same", padding_mode="replicate", seed=5, dtype=dtype)],
        "Conv1d": [nn.Conv1d(2, 3, 5, stride=2, padding=2, seed=6, dtype=dtype)],
        "Conv2d": [nn.Conv2d(2, 3, 3, dilation=2, seed=7, dtype=dtype)],
        "Conv3d": [nn.Conv3d(1, 2, 2, seed=8, dtype=dtype)],
        "ConvTranspose1d": [nn.ConvTranspose1d(2, 3, 4, stride=3, bias=False, seed=9, dtype=dtype)],
        "ConvTranspose2d": [nn.ConvTranspose2d(2, 2, 3, stride=(2, 3), output_padding=(1, 2), seed=10, dtype=dtype)],
        "ConvTranspose3d": [nn.ConvTranspose3d(1, 2, 2, stride=2, seed=11, dtype=dtype)],
        "PixelShuffle": [nn.PixelShuffle(2)],
        "PixelUnshuffle": [nn.PixelUnshuffle(2)],
        "Upsample": [nn.Upsample(2), nn.Upsample([2, 3], mode="bilinear")],
        "ReLU": [nn.ReLU()],
        "LeakyReLU": [nn.LeakyReLU(0.2)],
        "PReLU": [nn.PReLU(), nn.PReLU(4, init=0.1, dtype=dtype)],
        "Tanh": [nn.Tanh()],
        "Sigmoid": [nn.Sigmoid()],
        "Sequential": [nn.Sequential(nn.Conv(1, 4, 3, seed=12, dtype=dtype), nn.Sequential(nn.PReLU(4, dtype=dtype), nn.PixelShuffle(2)))],
        "Crop": [nn.Crop([[1, 0], [2, 1]])],
        "ZeroInsert": [nn.ZeroInsert([2, 3], [[1, -1], [0, 2]])],
    }


def _input_for(layer, rng, dtype):
    """A random input the layer accepts (channels and spatial axes read off its config)."""
    if isinstance(layer, nn.Sequential):
        return _input_for(layer[0], rng, dtype)
    if isinstance(layer, nn.Conv | nn.ConvTranspose):
        channels, spatial = layer.in_channels, (7,) * layer.ndim
    elif isinstance(layer, nn.PixelShuffle):
        channels, spatial = 8, (3, 3)
    elif isinstance(layer, nn.PReLU):
        channels, spatial = max(layer.num_parameters, 2), (4, 5)
    elif isinstance(layer, nn.Upsample) and isinstance(layer.scale_factor, list):
        channels, spatial = 2, (3, 4)
    else:
        channels, spatial = 2, (6, 8)
    return rng.standard_normal((2, channels) + spatial).astype(dtype)


def test_examples_cover_every_registered_layer():
    assert set(_examples(np.float32)) == set(nn.LAYERS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(_examples(np.float32)))
def test_round_trip_every_layer(tmp_path, name, dtype):
    rng = np.random.default_rng(0)
    for i, layer in enumerate(_examples(dtype)[name]):
        path = tmp_path / f"{name}{i}.npz"
        nn.save(layer, path)
        again = nn.load(path)
        assert type(again) is type(layer)
        assert again.config() == layer.config()
        before, after = layer.state_dict(), again.state_dict()
        assert list(after) == list(before)
        for key in before:
            assert after[key].dtype == before[key].dtype
            np.testing.assert_array_equal(after[key], before[key])
        x = _input_for(layer, rng, dtype)
        np.testing.assert_array_equal(again(x), layer(x))


def test_round_trip_nested_model_keeps_training_state_names(tmp_path):
    model = nn.Sequential(nn.Conv(1, 8, 3, padding=1, seed=0, dtype=np.float64), nn.ReLU(),
                          nn.Sequential(nn.ConvTranspose(8, 4, 4, stride=2, padding=1, seed=1, dtype=np.float64),
                                        nn.Sequential(nn.LeakyReLU(0.1), nn.Conv(4, 1, 1, seed=2, dtype=np.float64))))
    nn.save(model, tmp_path / "m.npz")
    again = nn.load(tmp_path / "m.npz")
    assert list(again.state_dict()) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.1.1.weight", "2.1.1.bias"]
    x = np.random.default_rng(1).standard_normal((2, 1, 5, 5))
    np.testing.assert_array_equal(again(x), model(x))
    g = np.random.default_rng(2).standard_normal(model(x).shape)
    np.testing.assert_array_equal(again.backward(g), model.backward(g))
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        arch = json.loads(str(archive["__architecture__"]))
    assert arch["format"] == "transconv.nn" and arch["version"] == nn_io.FORMAT_VERSION and arch["dtype"] == "float64"


def test_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "m.npz"
    first, second = nn.Conv(1, 1, 3, seed=0), nn.Conv(1, 1, 3, seed=1)
    nn.save(first, path)
    with pytest.raises(tc.TransconvError, match="exists; pass overwrite=True"):
        nn.save(second, path)
    np.testing.assert_array_equal(nn.load(path).weight, first.weight)
    nn.save(second, path, overwrite=True)
    np.testing.assert_array_equal(nn.load(path).weight, second.weight)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = nn.Conv(1, 1, 3, seed=0)
    nn.save(old, path)
    original = path.read_bytes()

    def half_written(handle, **arrays):
        handle.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(nn_io.np, "savez", half_written)
    with pytest.raises(OSError, match="disk full"):
        nn.save(nn.Conv(1, 1, 3, seed=1), path, overwrite=True)
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]


def test_save_refuses_unregistered_layers(tmp_path):
    class Mine(nn.ReLU):
        pass

    with pytest.raises(tc.TransconvError, match=r"layer 1 is a Mine, which is not in transconv.nn.LAYERS"):
        nn.save(nn.Sequential(nn.ReLU(), Mine()), tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


# ---- bad files --------------------------------------------------------------------------------


def _good(tmp_path):
    model = nn.Sequential(nn.Conv(1, 2, 3, seed=0), nn.Sequential(nn.ReLU(), nn.ConvTranspose(2, 1, 4, stride=2, seed=1)))
    path = tmp_path / "good.npz"
    nn.save(model, path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return path, arrays, json.loads(str(arrays["__architecture__"]))


def _write(tmp_path, arrays, arch=None, name="bad.npz"):
    path = tmp_path / name
    if arch is not None:
        arrays = {**arrays, "__architecture__": np.array(json.dumps(arch))}
    np.savez(path, **arrays)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(tc.TransconvError, match="nope.npz' does not exist"):
        nn.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_file(tmp_path, keep):
    path, _, _ = _good(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "cut.npz"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(tc.TransconvError, match=r"cut.npz' is truncated or corrupt"):
        nn.load(bad)


def test_corrupt_bytes(tmp_path):
    path, _, _ = _good(tmp_path)
    data = bytearray(path.read_bytes())
    data[200:260] = b"\xff" * 60  # inside the first member's data: its CRC no longer matches
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(tc.TransconvError, match="flipped.npz' is truncated or corrupt"):
        nn.load(bad)
    (tmp_path / "text.npz").write_text("not a zip at all")
    with pytest.raises(tc.TransconvError, match=r"text.npz' is truncated or corrupt \(not a .npz archive\)"):
        nn.load(tmp_path / "text.npz")


def test_pickled_objects_are_refused(tmp_path):
    _, arrays, arch = _good(tmp_path)
    arrays["0.weight"] = np.array([{"evil": 1}], dtype=object)
    path = _write(tmp_path, arrays, arch)
    with pytest.raises(tc.TransconvError, match="bad.npz' holds pickled objects"):
        nn.load(path)


def test_unknown_layer(tmp_path):
    _, arrays, arch = _good(tmp_path)
    arch["model"]["children"][1]["children"][0]["class"] = "Swish"
    path = _write(tmp_path, arrays, arch)
    with pytest.raises(tc.TransconvError, match=r"bad.npz'.*layer 1.0 has unknown layer class 'Swish'"):
        nn.load(path)


def test_bad_config(tmp_path):
    _, arrays, arch = _good(tmp_path)
    arch["model"]["children"][0]["config"]["kernel_size"] = [0, 3]
    path = _write(tmp_path, arrays, arch)
    with pytest.raises(tc.TransconvError, match=r"bad.npz'.*layer 0 \(Conv\)"):
        nn.load(path)
    arch["model"]["children"][0]["config"] = {"colour": "blue"}
    path = _write(tmp_path, arrays, arch, "bad2.npz")
    with pytest.raises(tc.TransconvError, match=r"bad2.npz'.*layer 0 \(Conv\): config"):
        nn.load(path)


def test_missing_key(tmp_path):
    _, arrays, arch = _good(tmp_path)
    del arrays["1.1.bias"]
    path = _write(tmp_path, arrays, arch)
    with pytest.raises(tc.TransconvError, match=r"bad.npz'.*layer 1.1 \(ConvTranspose\) is missing parameter '1.1.bias'"):
        nn.load(path)


def test_extra_key(tmp_path):
    _, arrays, arch = _good(tmp_path)
    arrays["1.0.weight"] = np.ones(1, np.float32)
    path = _write(tmp_path, arrays, arch)
    with pytest.raises(tc.TransconvError, match=r"unexpected parameter '1.0.weight' \(layer 1.0 \(ReLU\) has no such parameter\)"):
        nn.load(path)


def test_wrong_shape(tmp_path):
    _, arrays, arch = _good(tmp_path)
    arrays["0.weight"] = arrays["0.weight"][:, :, :2]
    path = _write(tmp_path, arrays, arch)
    with pytest.raises(tc.TransconvError, match=r"layer 0 \(Conv\): parameter '0.weight' has shape \(2, 1, 2, 3\), the layer needs \(2, 1, 3, 3\)"):
        nn.load(path)


def test_not_a_transconv_file(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    with pytest.raises(tc.TransconvError, match="plain.npz' has no '__architecture__'"):
        nn.load(tmp_path / "plain.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(tc.TransconvError, match="single.npy' holds a single array"):
        nn.load(tmp_path / "single.npy")
    _, arrays, arch = _good(tmp_path)
    path = _write(tmp_path, arrays, {**arch, "version": 99})
    with pytest.raises(tc.TransconvError, match="format version 99"):
        nn.load(path)
    arrays["__architecture__"] = np.array("{not json")
    path = _write(tmp_path, arrays, None, "json.npz")
    with pytest.raises(tc.TransconvError, match="json.npz': the architecture is not valid JSON"):
        nn.load(path)
