"""transconv.dask.apply: a transconv.nn model chunk by chunk equals model.forward on the whole array."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

import transconv as tc
import transconv.dask as tcd
from transconv import TransconvError

nn = tc.nn


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="sync"):
        yield


def fsrcnn(seed: int = 0) -> nn.Sequential:
    """FSRCNN-like x2 up-sampler: feature extraction, shrink, mapping, expand, deconvolution."""
    return nn.Sequential(
        nn.Conv(1, 16, 5, padding=2, seed=seed), nn.PReLU(16),
        nn.Conv(16, 8, 1, seed=seed + 1), nn.PReLU(8),
        nn.Conv(8, 8, 3, padding=1, seed=seed + 2), nn.PReLU(8),
        nn.Conv(8, 8, 3, padding=1, seed=seed + 3), nn.PReLU(8),
        nn.Conv(8, 16, 1, seed=seed + 4), nn.PReLU(16),
        nn.ConvTranspose(16, 1, 9, stride=2, padding=4, output_padding=1, seed=seed + 5),
    )


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("chunks", [(1, 1, 40, 33), (1, 1, 7, 9), (2, 1, 3, 2), (1, 1, (1, 20, 19), (30, 3))])
def test_fsrcnn_chunk_by_chunk_equals_forward(chunks, fuse):
    model = fsrcnn()
    x = np.random.default_rng(0).random((2, 1, 40, 33), dtype=np.float32)
    y = tcd.apply(model, da.from_array(x, chunks=chunks), fuse=fuse)
    steps = len(y.__dask_graph__().layers)  # the input, then one step (fused) or one per layer (and rechunks)
    assert steps == 2 if fuse else steps >= 12
    assert y.shape == (2, 1, 80, 66)
    np.testing.assert_allclose(y.compute(), model.forward(x), rtol=1e-5, atol=2e-5)


def test_padding_modes_shuffles_and_upsampling_equal_forward():
    model = nn.Sequential(
        nn.Conv(2, 8, 3, padding=(2, 1), padding_mode="reflect", seed=0), nn.LeakyReLU(0.1),
        nn.PixelShuffle(2), nn.Conv(2, 4, (3, 5), stride=2, padding=2, padding_mode="circular", seed=1),
        nn.Tanh(), nn.Upsample(2, mode="bilinear"), nn.PixelUnshuffle(2), nn.Sigmoid(),
        nn.Upsample((1, 3)), nn.ConvTranspose(16, 3, 3, stride=(2, 1), padding=1, padding_mode="replicate", seed=2),
        nn.ReLU(),
    )
    x = np.random.default_rng(1).standard_normal((1, 2, 23, 17)).astype(np.float32)
    want = model.forward(x)
    for chunks in [(1, 2, 5, 4), (1, 2, 2, 3), (1, 2, (9, 14), (1, 16))]:
        got = tcd.apply(model, da.from_array(x, chunks=chunks)).compute()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_numpy_input_and_bad_input():
    model = fsrcnn()
    x = np.random.default_rng(2).random((1, 1, 30, 20), dtype=np.float32)
    np.testing.assert_allclose(tcd.apply(model, x).compute(), model.forward(x), rtol=1e-5, atol=2e-5)
    with pytest.raises(TransconvError, match=r"transconv.dask.apply: x must be batched"):
        tcd.apply(model, x[0, 0])
    with pytest.raises(TransconvError, match=r"layer Conv expects \(N, 1, <2 spatial axes>\)"):
        tcd.apply(model, np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(TransconvError, match="must be a transconv.nn.Module"):
        tcd.apply(lambda v: v, x)


def test_receptive_halo_covers_every_output_an_input_reaches():
    """Independent check of the halo: perturb one input pixel, see which outputs move."""
    model = nn.Sequential(nn.Conv(1, 4, (5, 3), padding=(2, 1), seed=0), nn.ReLU(), nn.Upsample(2, mode="bilinear"),
                          nn.Conv(4, 4, 3, padding=((0, 2), (2, 0)), seed=1), nn.PixelShuffle(2),
                          nn.ConvTranspose(1, 1, 5, stride=(3, 2), padding=(1, 2), output_padding=(0, 1), seed=2))
    factor, halo = tcd.receptive_halo(model)
    assert factor == (12, 8)
    x = np.random.default_rng(3).standard_normal((1, 1, 21, 17)).astype(np.float32)
    base = model.forward(x)
    assert base.shape[2:] == (12 * 21, 8 * 17)
    for i, j in [(10, 8), (0, 0), (20, 16)]:
        bumped = x.copy()
        bumped[0, 0, i, j] += 1.0
        rows, cols = np.nonzero(np.abs(model.forward(bumped) - base)[0, 0] > 1e-6)
        # output o reads input o // factor - lo .. o // factor + hi, so input i reaches o // factor in i - hi .. i + lo
        assert rows.size and rows.min() // 12 >= i - halo[0][1] and rows.max() // 12 <= i + halo[0][0]
        assert cols.min() // 8 >= j - halo[1][1] and cols.max() // 8 <= j + halo[1][0]
    y = tcd.apply(model, da.from_array(x, chunks=(1, 1, 4, (3, 9, 5))), fuse=True)
    np.testing.assert_allclose(y.compute(), base, rtol=1e-5, atol=1e-5)


def test_fuse_refuses_layers_without_a_tile_rule():
    x = np.zeros((1, 1, 8, 8), np.float32)
    with pytest.raises(TransconvError, match=r"layer Conv \(stride \(2, 2\).*use fuse=False"):
        tcd.apply(nn.Conv(1, 1, 3, stride=2, padding=1), x, fuse=True)
    with pytest.raises(TransconvError, match="no receptive field for layer PixelUnshuffle"):
        tcd.apply(nn.PixelUnshuffle(2), x, fuse=True)
    assert len(tcd.apply(nn.PixelUnshuffle(2), x).__dask_graph__().layers) >= 2  # None falls back to layer by layer
