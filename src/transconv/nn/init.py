"""Weight initialisation for the convolution layers (``init=`` of ``Conv`` / ``ConvTranspose``).

``"torch"``
    PyTorch's default: ``kaiming_uniform_(a=sqrt(5))`` on the weight, i.e.
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, and the bias from the same range.  As in PyTorch,
    ``fan_in = weight.shape[1] * prod(kernel)`` for both layouts (for a transposed layer
    that is ``C_out/groups * prod(kernel)``).
``"kaiming"``
    He et al. 2015: normal with ``std = sqrt(2 / fan_in)`` (ReLU gain, same ``fan_in``), zero bias.
``"bilinear"``
    (transposed only) the FCN bilinear kernel for the layer's kernel size on every channel
    ``i -> i``, zero elsewhere, zero bias: with ``kernel = 2s - s % 2``, ``padding = s // 2``
    (= ``(kernel - s + 1) // 2``) and ``output_padding = 0`` the layer is bilinear
    up-sampling by ``s`` (``align_corners=False``) away from the border.
``"icnr"``
    Aitken et al. 2017, for a convolution feeding ``PixelShuffle(r)``: a kaiming sub-kernel
    for ``C_out / r**ndim`` channels, each repeated ``r**ndim`` times, so that conv +
    pixel shuffle is nearest up-sampling of a convolution at initialisation.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import TransconvError

__all__ = ["INITS", "fan_in", "torch_uniform", "kaiming_normal", "bilinear_kernel", "bilinear_weight", "icnr_weight"]

INITS = ("torch", "kaiming", "bilinear", "icnr")


def fan_in(weight_shape: tuple[int, ...]) -> int:
    """PyTorch's fan-in of a convolution weight: ``shape[1] * prod(kernel)``.

    >>> fan_in((16, 8, 3, 3))
    72
    """
    return int(weight_shape[1] * np.prod(weight_shape[2:]))


def torch_uniform(rng: np.random.Generator, weight_shape: tuple[int, ...], bias_size: int, dtype: np.dtype):
    """PyTorch's default initialisation: weight and bias (``bias_size`` entries, 0 for none) ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(fan_in(weight_shape))
    weight = rng.uniform(-bound, bound, weight_shape).astype(dtype)
    b = rng.uniform(-bound, bound, bias_size).astype(dtype) if bias_size else None
    return weight, b


def kaiming_normal(rng: np.random.Generator, weight_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """He normal, fan-in mode, ReLU gain: ``N(0, 2 / fan_in)``."""
    return (rng.standard_normal(weight_shape) * math.sqrt(2.0 / fan_in(weight_shape))).astype(dtype)


def bilinear_kernel(size: int) -> np.ndarray:
    """The 1-d FCN bilinear kernel of length ``size`` (a triangle of half-width ``(size + 1) // 2``).

    >>> bilinear_kernel(4).tolist()
    [0.25, 0.75, 0.75, 0.25]
    >>> bilinear_kernel(5).round(4).tolist()
    [0.3333, 0.6667, 1.0, 0.6667, 0.3333]
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - center) / factor


def bilinear_weight(layer: str, in_channels: int, out_channels: int, groups: int, kernel_size: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Transposed-layer weight ``(C_in, C_out/groups, *k)``: the separable bilinear kernel on every ``i -> i``."""
    if in_channels != out_channels:
        raise TransconvError(
            f"{layer}: init='bilinear' maps every channel to itself and needs in_channels == out_channels, "
            f"got {in_channels} and {out_channels}"
        )
    kernel = np.ones(())
    for k in kernel_size:
        kernel = np.multiply.outer(kernel, bilinear_kernel(k))
    per_group = out_channels // groups
    weight = np.zeros((in_channels, per_group) + tuple(kernel_size))
    for i in range(in_channels):
        weight[i, i % per_group] = kernel
    return weight.astype(dtype)


def icnr_weight(layer: str, rng: np.random.Generator, weight_shape: tuple[int, ...], scale: int, dtype: np.dtype) -> np.ndarray:
    """Conv weight ``(C_out, C_in/groups, *k)`` whose ``scale**ndim`` consecutive output channels are equal."""
    copies = scale ** (len(weight_shape) - 2)
    if weight_shape[0] % copies:
        raise TransconvError(
            f"{layer}: init='icnr' with icnr_scale={scale} needs out_channels divisible by "
            f"{scale}**{len(weight_shape) - 2} = {copies}, got {weight_shape[0]}"
        )
    sub_shape = (weight_shape[0] // copies,) + tuple(weight_shape[1:])
    sub = rng.standard_normal(sub_shape) * math.sqrt(2.0 / fan_in(sub_shape))
    return np.repeat(sub, copies, axis=0).astype(dtype)
