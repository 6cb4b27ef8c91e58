"""`transconv upsample` tile by tile (Zarr, TIFF, Pillow formats) equals the in-memory tc.upsample;
transconv.dask.upsample's halo makes the bicubic chroma exact; refusals exit 2 with one line."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

import transconv as tc
import transconv.dask as tcd
from transconv import TransconvError
from transconv.cli import main
from transconv.train import fsrcnn

tcu = importlib.import_module("transconv.upsample")  # the module (tc.upsample is the function)
H, W = 37, 29  # odd sizes: uneven last tiles on both axes


def run(capsys, *argv):
    code = main(["upsample", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def image(rgb: bool, dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (H, W, 3) if rgb else (H, W)
    return rng.integers(0, 256, shape, dtype=np.uint8) if dtype == np.uint8 else rng.random(shape).astype(dtype)


def write(path, pixels: np.ndarray) -> None:
    if path.suffix == ".zarr":
        z = zarr.create_array(store=str(path), shape=pixels.shape, dtype=pixels.dtype, chunks=(8, 16) + pixels.shape[2:])
        z[...] = pixels
    elif path.suffix == ".tif":
        tifffile.imwrite(path, pixels, tile=(16, 16), photometric="rgb" if pixels.ndim == 3 else "minisblack")
    else:
        Image.fromarray(pixels).save(path)


def read(path) -> np.ndarray:
    if path.suffix == ".zarr":
        return zarr.open_array(str(path), mode="r")[...]
    if path.suffix == ".tif":
        return tifffile.imread(path)
    return np.asarray(Image.open(path))


def assert_same_pixels(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype == np.uint8:  # the network's float rounding may move a value across a half
        diff = np.abs(got.astype(int) - want.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "rgb, dtype, src, dst, scale, chunk",
    [
        (False, np.uint8, "png", "zarr", 2, 16),   # gray, uneven tiles
        (True, np.uint8, "zarr", "tif", 2, 3),     # RGB, tiles smaller than the halo (5)
        (False, np.float32, "tif", "tif", 4, 13),
        (True, np.float64, "zarr", "zarr", 2, 10),
        (True, np.uint8, "tif", "png", 4, 8),
    ],
)
def test_chunked_cli_equals_in_memory_upsample(capsys, tmp_path, rgb, dtype, src, dst, scale, chunk):
    pixels = image(rgb, dtype)
    write(tmp_path / f"in.{src}", pixels)
    want = tc.upsample(pixels, scale)
    code, out, err = run(capsys, tmp_path / f"in.{src}", tmp_path / f"out.{dst}", "--scale", scale, "--chunk", chunk)
    assert code == 0, err
    assert f"{chunk}x{chunk} tiles" in out and "100%" in err  # the progress bar on stderr
    assert_same_pixels(read(tmp_path / f"out.{dst}"), want)
    # the in-memory path (no --chunk, under the threshold) gives the in-memory pixels exactly
    code, out, err = run(capsys, tmp_path / f"in.{src}", tmp_path / f"whole.{dst}", "--scale", scale)
    assert code == 0 and "tiles" not in out and err == ""
    np.testing.assert_array_equal(read(tmp_path / f"whole.{dst}"), want)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"in.{src}", f"out.{dst}", f"whole.{dst}"])


def test_threshold_chooses_the_chunked_path(capsys, tmp_path, monkeypatch):
    write(tmp_path / "in.png", image(False, np.uint8))
    monkeypatch.setattr(tcu, "CHUNKED_ABOVE_PIXELS", H * W - 1)
    code, out, err = run(capsys, tmp_path / "in.png", tmp_path / "out.tif")
    assert code == 0 and f"{tcu.CHUNK_SIDE}x{tcu.CHUNK_SIDE} tiles" in out and "upsample" in err


def test_bicubic_chroma_is_exact_tile_by_tile():
    """A network that outputs a constant leaves Pillow's bicubic chroma, bit for bit; its receptive
    field is one pixel, so the halo is the bicubic's own 2 pixels."""
    net = tc.nn.ConvTranspose(1, 1, 2, stride=2)
    net.load_state_dict({"weight": np.zeros((1, 1, 2, 2), np.float32), "bias": np.array([0.5], np.float32)})
    assert tcd.receptive_halo(net) == ((2, 2), ((0, 0), (0, 0)))
    pixels = image(True, np.float64, seed=1)
    want = tc.upsample(pixels, 2, model=net)
    assert np.ptp(want) > 0.5  # the colour varies: the chroma is not flat
    for chunks in [2, 7, ((5, 20, 12), (28, 1))]:
        np.testing.assert_array_equal(tcd.upsample(pixels, 2, model=net, chunks=chunks).compute(), want)


def test_existing_output_needs_force_and_a_zarr_folder_is_replaced_whole(capsys, tmp_path):
    write(tmp_path / "in.zarr", image(True, np.uint8))
    out = tmp_path / "out.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run(capsys, tmp_path / "in.zarr", out, "--chunk", 16)
    assert code == 2 and err.count("\n") == 1 and "exists; pass --force" in err
    assert (out / "keep.txt").read_text() == "mine"
    code, _, err = run(capsys, tmp_path / "in.zarr", out, "--chunk", 16, "--force")
    assert code == 0, err
    assert not (out / "keep.txt").exists() and read(out).shape == (2 * H, 2 * W, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "out.zarr"]  # no temporary left behind


def test_bad_inputs_exit_2_with_one_line(capsys, tmp_path):
    write(tmp_path / "in.png", image(False, np.uint8))
    zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    write(tmp_path / "rgba.zarr", np.zeros((4, 4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "u16.tif", np.zeros((4, 4), np.uint16))
    (tmp_path / "junk.tif").write_bytes(b"not a tiff")
    write(tmp_path / "f.zarr", np.zeros((4, 4), np.float32))
    cases = {
        (tmp_path / "missing.png", tmp_path / "o.png"): "is not a file",
        (tmp_path / "missing.zarr", tmp_path / "o.zarr"): "is not a Zarr array",
        (tmp_path / "in.png", tmp_path / "nodir" / "o.zarr"): "of the output does not exist",
        (tmp_path / "in.png", tmp_path / "o.xyz"): "unknown image extension",
        (tmp_path / "group.zarr", tmp_path / "o.zarr"): "cannot read",
        (tmp_path / "rgba.zarr", tmp_path / "o.zarr"): r"must be (H, W) gray or (H, W, 3) RGB, got shape (4, 4, 4)",
        (tmp_path / "u16.tif", tmp_path / "o.tif"): "dtype must be uint8 (0-255) or float (0-1), got uint16",
        (tmp_path / "junk.tif", tmp_path / "o.tif"): "cannot read",
        (tmp_path / "f.zarr", tmp_path / "o.png"): "float images can be written to .tif/.tiff or .zarr only",
    }
    for (src, dst), message in cases.items():
        code, out, err = run(capsys, src, dst, "--chunk", 4)
        assert code == 2 and out == "" and err.count("\n") == 1, (src, err)
        assert err.startswith("transconv upsample: error:") and message in err, (src, err)
    code, _, err = run(capsys, tmp_path / "in.png", tmp_path / "o.tif", "--chunk", 0)
    assert code == 2 and "--chunk (input tile side) must be at least 1, got 0" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr", "group.zarr", "in.png", "junk.tif", "rgba.zarr",
                                                          "u16.tif"]


def test_pillow_output_too_large_for_memory_is_refused_before_reading(capsys, tmp_path):
    z = zarr.create_array(store=str(tmp_path / "huge.zarr"), shape=(30000, 30000, 3), dtype=np.uint8, chunks=(4096, 4096, 3))
    assert z.nchunks_initialized == 0  # nothing written: the refusal must not read it
    code, out, err = run(capsys, tmp_path / "huge.zarr", tmp_path / "o.png")
    assert code == 2 and err.count("\n") == 1 and "too large for '.png'" in err and "write .tif/.tiff or .zarr" in err


def test_in_memory_guard_points_to_the_chunked_path():
    huge = np.zeros((2**14, 2**13), np.uint8)  # calloc'd: no pages touched
    with pytest.raises(TransconvError, match=r"in-memory limit .* transconv.dask.upsample or `transconv upsample"):
        tc.upsample(huge, 2)
    with pytest.raises(TransconvError, match=r"transconv.dask.upsample: model must be a transconv.nn model"):
        tcd.upsample(np.zeros((4, 4)), 2, model=type("Net", (), {"forward": lambda self, v: v})())
    with pytest.raises(TransconvError, match=r"the model up-samples \(2, 2\), but scale is 4"):
        tcd.upsample(np.zeros((4, 4)), 4, model=fsrcnn(2, 8, 4, 1))
