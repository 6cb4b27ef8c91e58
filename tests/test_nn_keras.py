"""tc.nn.from_keras against Keras 3 layers run on the same numbers (JAX backend)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras is imported anywhere (as tests/test_interop.py)

import numpy as np
import pytest

import transconv as tc

keras = pytest.importorskip("keras")
nn = tc.nn
first, last = tc.interop.channels_first, tc.interop.channels_last


def _same(layer, model, x, tol=1e-5):
    expected = np.asarray(layer(x))
    got = last(model(first(x)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def _randomise(layer, rng):
    for variable in layer.weights:  # assign, not get/set_weights: np.array(variable) warns under NumPy 2
        variable.assign(rng.standard_normal(tuple(variable.shape)).astype(np.float32))


@pytest.mark.parametrize("seed", range(8))
def test_conv_matches_keras(seed):
    rng = np.random.default_rng(seed)
    nd = int(rng.integers(1, 3))
    groups = int(rng.choice([1, 2]))
    k = tuple(int(v) for v in rng.integers(1, 5, nd))
    padding = str(rng.choice(["same", "valid"]))
    strides = tuple(int(v) for v in rng.integers(1, 4, nd))
    dilation = (1,) * nd if any(s > 1 for s in strides) else tuple(int(v) for v in rng.integers(1, 3, nd))  # Keras: not both
    cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D}[nd]
    layer = cls(2 * groups, k, strides, padding, dilation_rate=dilation, groups=groups, use_bias=bool(rng.integers(2)))
    x = rng.standard_normal((2,) + tuple(int(v) for v in rng.integers(6, 11, nd)) + (2 * groups,)).astype(np.float32)
    layer(x)
    _randomise(layer, rng)
    _same(layer, nn.from_keras(layer), x)


@pytest.mark.parametrize("seed", range(8))
def test_conv_transpose_matches_keras(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):  # redraw the geometries Keras refuses outright, so every seed compares
        nd = int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 6, nd))
        padding = str(rng.choice(["same", "valid"]))
        strides = tuple(int(v) for v in rng.integers(1, 4, nd))
        output_padding = None if rng.integers(2) else tuple(int(rng.integers(0, s)) for s in strides)
        cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose}[nd]
        layer = cls(3, k, strides, padding, output_padding=output_padding, use_bias=bool(rng.integers(2)))
        x = rng.standard_normal((2,) + tuple(int(v) for v in rng.integers(3, 7, nd)) + (2,)).astype(np.float32)
        try:
            layer(x)
            break
        except ValueError:  # Keras refuses some (padding, output_padding) pairs
            continue
    else:
        pytest.fail("Keras refused 50 geometries in a row")
    _randomise(layer, rng)
    model = nn.from_keras(layer)
    _same(layer, model, x)
    if padding == "same" and output_padding is None:
        assert model(first(x)).shape[2:] == tuple(n * s for n, s in zip(x.shape[1:-1], strides))


def test_keras_sequential_model():
    rng = np.random.default_rng(0)
    model = keras.Sequential([
        keras.Input((6, 5, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same"),
        keras.layers.LeakyReLU(0.2),
        keras.layers.UpSampling2D(2, interpolation="bilinear"),
        keras.layers.Conv2D(2, 3, strides=2, padding="same", activation="tanh"),
        keras.layers.Activation("sigmoid"),
    ])
    for layer in model.layers:
        _randomise(layer, rng)
    ours = nn.from_keras(model)
    assert [type(m).__name__ for m in ours] == ["Conv2d", "ReLU", "ConvTranspose2d", "LeakyReLU", "Upsample", "Conv2d", "Tanh", "Sigmoid"]
    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    _same(model, ours, x)


def test_keras_refusals():
    with pytest.raises(tc.TransconvError, match=r"layer <root> \(Dense"):
        nn.from_keras(keras.layers.Dense(3))
    conv = keras.layers.Conv1D(2, 3, padding="causal")
    conv(np.zeros((1, 5, 1), np.float32))
    with pytest.raises(tc.TransconvError, match="padding 'causal'"):
        nn.from_keras(conv)
    act = keras.layers.Activation("softmax")
    with pytest.raises(tc.TransconvError, match="activation 'softmax'"):
        nn.from_keras(act)
