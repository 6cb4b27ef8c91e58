"""Training data for the learned up-sampler: photographs bundled with scikit-image.

Luminance is BT.601 Y in full range (the JPEG/JFIF convention Pillow's ``"YCbCr"`` mode
uses: ``Y = 0.299 R + 0.587 G + 0.114 B``), as float32 in [0, 1]; a grayscale photograph is
its own Y.  Low-resolution images come from Pillow's bicubic down-scaling of the float Y
(mode ``"F"``, no rounding to uint8), after cropping the high-resolution image to a multiple
of the scale so that ``HR size == scale * LR size`` exactly.

``TRAIN_PHOTOS`` and ``HELD_OUT_PHOTOS`` are disjoint; ``chelsea`` is scikit-image's ``cat``
too, so ``cat`` is in neither list.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from .errors import TransconvError

__all__ = [
    "TRAIN_PHOTOS",
    "HELD_OUT_PHOTOS",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "luminance",
    "load_photo",
    "bicubic_resize",
    "lr_hr_pair",
    "psnr",
    "PatchSampler",
]

TRAIN_PHOTOS = (
    "astronaut",
    "camera",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "text",
    "clock",
    "retina",
    "brick",
    "grass",
    "gravel",
    "motorcycle_left",
    "motorcycle_right",
)
HELD_OUT_PHOTOS = ("chelsea", "coffee", "coins")

# BT.601 full-range (JFIF) RGB -> YCbCr on [0, 1]; Cb and Cr are centred on 0.5
_RGB_TO_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], dtype=np.float64
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] -> (H, W, 3) YCbCr in [0, 1] (BT.601 full range).

    Examples
    --------
    >>> ycc = rgb_to_ycbcr(np.ones((1, 1, 3)))
    >>> np.round(ycc, 6).tolist()
    [[[1.0, 0.5, 0.5]]]
    """
    ycc = np.asarray(rgb, dtype=np.float64) @ _RGB_TO_YCBCR.T
    ycc[..., 1:] += 0.5
    return ycc


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_ycbcr` (not clipped).

    Examples
    --------
    >>> rgb = np.random.default_rng(0).random((2, 2, 3))
    >>> bool(np.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb))
    True
    """
    ycc = np.array(ycc, dtype=np.float64)
    ycc[..., 1:] -= 0.5
    return ycc @ _YCBCR_TO_RGB.T


def luminance(image: np.ndarray) -> np.ndarray:
    """Y in [0, 1] as float32 of a uint8 gray or RGB photograph (gray is its own Y).

    Examples
    --------
    >>> luminance(np.full((2, 2), 255, dtype=np.uint8)).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    x = np.asarray(image, dtype=np.float64) / 255.0
    if x.ndim == 3:
        x = rgb_to_ycbcr(x[..., :3])[..., 0]
    return x.astype(np.float32)


def load_photo(name: str) -> np.ndarray:
    """The Y channel of the scikit-image photograph ``name`` (float32, [0, 1])."""
    from skimage import data as skdata

    if name not in TRAIN_PHOTOS + HELD_OUT_PHOTOS:
        raise TransconvError(f"load_photo: name {name!r} is not one of {TRAIN_PHOTOS + HELD_OUT_PHOTOS}")
    if name.startswith("motorcycle_"):  # the two views of skimage.data.stereo_motorcycle()
        left, right, _ = skdata.stereo_motorcycle()
        return luminance(left if name == "motorcycle_left" else right)
    return luminance(getattr(skdata, name)())


def bicubic_resize(y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pillow's bicubic resize of a float 2-d array to ``shape`` = (H, W), as float32 (not clipped).

    Examples
    --------
    >>> bicubic_resize(np.ones((4, 6), dtype=np.float32), (2, 3)).shape
    (2, 3)
    """
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(y, dtype=np.float32), mode="F")
    return np.asarray(img.resize((int(shape[1]), int(shape[0])), Image.BICUBIC), dtype=np.float32)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """PSNR in dB of two images in [0, 1], ``border`` pixels cropped on every side.

    Examples
    --------
    >>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)), 3)
    20.0
    """
    if border:
        a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def lr_hr_pair(y: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``y`` to a multiple of ``scale`` (HR) and bicubically down-scale it (LR).

    Examples
    --------
    >>> lr, hr = lr_hr_pair(np.zeros((9, 10), dtype=np.float32), 2)
    >>> lr.shape, hr.shape
    ((4, 5), (8, 10))
    """
    h, w = (y.shape[0] // scale) * scale, (y.shape[1] // scale) * scale
    if h == 0 or w == 0:
        raise TransconvError(f"lr_hr_pair: image of shape {y.shape} is smaller than scale {scale}")
    hr = np.ascontiguousarray(y[:h, :w], dtype=np.float32)
    return bicubic_resize(hr, (h // scale, w // scale)), hr


class PatchSampler:
    """Random aligned (LR, HR) patch batches from the training photographs.

    Each batch draws, per patch, a photograph (uniformly), a position, one of the 8
    flips/rotations of the square, all from ``rng`` (a ``np.random.Generator``), so a
    sampler is deterministic given the generator's state.  HR patches are exactly
    ``scale * patch`` pixels and cover the same area as their LR patch.

    Examples
    --------
    >>> s = PatchSampler(2, patch=8, photos=("camera",))
    >>> lr, hr = s.batch(np.random.default_rng(0), 4)
    >>> lr.shape, hr.shape
    ((4, 1, 8, 8), (4, 1, 16, 16))
    """

    def __init__(self, scale: int, patch: int = 32, photos: tuple[str, ...] = TRAIN_PHOTOS):
        if set(photos) & set(HELD_OUT_PHOTOS):
            raise TransconvError(f"PatchSampler: photos {sorted(set(photos) & set(HELD_OUT_PHOTOS))} are held out")
        self.scale, self.patch, self.photos = int(scale), int(patch), tuple(photos)
        self.pairs = [lr_hr_pair(load_photo(name), self.scale) for name in self.photos]

    def batch(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
        p, s = self.patch, self.scale
        lr_out = np.empty((size, 1, p, p), dtype=np.float32)
        hr_out = np.empty((size, 1, p * s, p * s), dtype=np.float32)
        for b in range(size):
            lr, hr = self.pairs[int(rng.integers(len(self.pairs)))]
            i = int(rng.integers(lr.shape[0] - p + 1))
            j = int(rng.integers(lr.shape[1] - p + 1))
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            lp, hp = lr[i : i + p, j : j + p], hr[i * s : (i + p) * s, j * s : (j + p) * s]
            if flip:
                lp, hp = lp[:, ::-1], hp[:, ::-1]
            lr_out[b, 0], hr_out[b, 0] = np.rot90(lp, k), np.rot90(hp, k)
        return lr_out, hr_out

    def batches(self, rng: np.random.Generator, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        while True:
            yield self.batch(rng, size)
