"""The learned up-sampler: :func:`upsample` and the ``transconv upsample`` command.

A shipped FSRCNN (see :mod:`transconv.train`) up-samples the luminance; an RGB image's
chroma (Cb, Cr) is up-sampled bicubically by Pillow, as the super-resolution literature does.

Entry points for the CLI: :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .data import bicubic_resize, rgb_to_ycbcr, ycbcr_to_rgb
from .errors import TransconvError
from .files import atomic_write, check_target
from .spec import checked_int

__all__ = ["upsample", "shipped_model_path", "add_arguments", "run"]

_MODELS = Path(__file__).with_name("models")
_MAX_OUTPUT_PIXELS = 2**28  # 256 Mpixel of output: the float32 feature maps would need tens of GB past this


def shipped_model_path(scale: int) -> Path:
    """The path of the model shipped for ``scale`` (``TransconvError`` if none ships).

    Examples
    --------
    >>> shipped_model_path(2).name
    'fsrcnn_x2.npz'
    """
    path = _MODELS / f"fsrcnn_x{scale}.npz"
    if not isinstance(scale, (int, np.integer)) or isinstance(scale, bool) or not path.is_file():
        shipped = sorted(int(p.stem.split("_x")[1]) for p in _MODELS.glob("fsrcnn_x*.npz"))
        raise TransconvError(f"upsample: no model ships for scale {scale!r}; shipped scales: {shipped} (or pass model=)")
    return path


@lru_cache(maxsize=4)
def _load_cached(path: str, mtime: float) -> tuple[Any, int]:
    from .train import load_model

    model, architecture, _ = load_model(path)
    return model, int(architecture["scale"])


def _resolve_model(model: Any, scale: int) -> Any:
    if model is None:
        model = shipped_model_path(scale)
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.is_file():
            raise TransconvError(f"upsample: model path {str(path)!r} is not a file")
        net, model_scale = _load_cached(str(path.resolve()), path.stat().st_mtime)
        if model_scale != scale:
            raise TransconvError(f"upsample: model {str(path)!r} up-samples {model_scale}x, but scale is {scale}")
        return net
    if not callable(getattr(model, "forward", None)):
        raise TransconvError(f"upsample: model must be None, a path or a transconv.nn model, got {type(model).__name__}")
    return model


def _luma_network(net: Any, y: np.ndarray, scale: int) -> np.ndarray:
    out = net.forward(np.ascontiguousarray(y, dtype=np.float32)[None, None])
    if out.shape[-2:] != (scale * y.shape[0], scale * y.shape[1]):
        raise TransconvError(f"upsample: the model maps {y.shape} to {out.shape[-2:]}, not {scale} x larger")
    return out[0, 0]


def upsample(image: np.ndarray, scale: int = 2, *, model: Any = None) -> np.ndarray:
    """Up-sample an image ``scale`` x on each axis with the learned FSRCNN.

    Parameters
    ----------
    image : 2-d grayscale ``(H, W)`` or RGB ``(H, W, 3)``; ``uint8`` in 0-255 or float in 0-1.
    scale : the factor (a model ships for 2 and 4).
    model : ``None`` (the shipped model for ``scale``), a path to a model file written by
        ``transconv train``, or a network with ``forward`` mapping ``(N, 1, H, W)`` to
        ``(N, 1, scale*H, scale*W)``.

    Returns
    -------
    The same kind of array (dtype, gray/RGB), ``(scale*H, scale*W[, 3])``, clipped to the
    input's range (0-255 for uint8, 0-1 for float).

    Examples
    --------
    >>> import transconv as tc
    >>> tc.upsample(np.zeros((8, 10), dtype=np.uint8)).shape
    (16, 20)
    >>> tc.upsample(np.full((6, 6, 3), 0.5), 2).dtype
    dtype('float64')
    """
    scale = checked_int("upsample", "scale", scale, 1)
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise TransconvError(f"upsample: image must be (H, W) gray or (H, W, 3) RGB, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise TransconvError(f"upsample: image is empty (shape {image.shape})")
    if image.dtype != np.uint8 and image.dtype.kind != "f":
        raise TransconvError(f"upsample: image dtype must be uint8 (0-255) or float (0-1), got {image.dtype}")
    out_pixels = image.shape[0] * image.shape[1] * scale * scale
    if out_pixels > _MAX_OUTPUT_PIXELS:
        raise TransconvError(f"upsample: output of {out_pixels} pixels is over the limit of {_MAX_OUTPUT_PIXELS}")
    net = _resolve_model(model, scale)
    x = image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)
    big = (scale * image.shape[0], scale * image.shape[1])
    if image.ndim == 2:
        result = _luma_network(net, x, scale).astype(np.float64)
    else:
        ycc = rgb_to_ycbcr(x)
        y = _luma_network(net, ycc[..., 0], scale)
        chroma = [bicubic_resize(ycc[..., c], big) for c in (1, 2)]
        result = ycbcr_to_rgb(np.stack([y, *chroma], axis=-1))
    result = np.clip(result, 0.0, 1.0)
    if image.dtype == np.uint8:
        return np.rint(result * 255.0).astype(np.uint8)
    return result.astype(image.dtype)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="image to up-sample (PNG, JPEG, TIFF; gray or RGB)")
    parser.add_argument("output", metavar="OUT", help="where to write the result (format from the extension)")
    parser.add_argument("--scale", type=int, default=2, help="up-sampling factor; models ship for 2 and 4 (default: 2)")
    parser.add_argument("--model", metavar="PATH", default=None, help="a model file from 'transconv train'")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists")


def _fail(message: str) -> int:
    print(f"transconv upsample: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from PIL import Image, UnidentifiedImageError

    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        return _fail(f"input {str(src)!r} is not a file")
    try:
        check_target("output", dst, overwrite=args.force, how="pass --force to overwrite it")
    except TransconvError as exc:
        return _fail(str(exc))
    if dst.suffix.lower() not in Image.registered_extensions():
        return _fail(f"output {str(dst)!r}: unknown image extension {dst.suffix!r}")
    try:
        with Image.open(src) as img:
            mode = img.mode
            pixels = np.asarray(img.convert("L" if mode in ("1", "L", "I;16", "I", "F") else "RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        return _fail(f"cannot read {str(src)!r} as an image ({exc})")
    try:
        result = upsample(pixels, args.scale, model=args.model)
    except TransconvError as exc:
        return _fail(str(exc))
    try:
        with atomic_write(dst) as temporary:
            Image.fromarray(result).save(temporary)
    except OSError as exc:
        return _fail(f"cannot write {str(dst)!r} ({exc})")
    print(f"wrote {dst} ({result.shape[1]}x{result.shape[0]}, {args.scale}x {src.name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m transconv.upsample``: the same as ``transconv upsample``."""
    from .cli import main as cli_main

    return cli_main(["upsample"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
