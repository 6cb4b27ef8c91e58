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
from .files import atomic_write
from .spec import checked_int

__all__ = ["upsample", "shipped_model_path", "add_arguments", "run"]

_MODELS = Path(__file__).with_name("models")
_MAX_OUTPUT_PIXELS = 2**28  # 256 Mpixel of output: the float32 feature maps would need tens of GB past this
CHUNKED_ABOVE_PIXELS = 2**20  # `transconv upsample` tiles inputs above 1 Mpixel (in memory: about 1 KB per input pixel)
CHUNK_SIDE = 256  # its default input tile side: about 80 MB of feature maps per tile


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


def _check_image(op: str, shape: tuple[int, ...], dtype: Any) -> None:
    """The image rules of :func:`upsample`, on a shape and dtype (so a lazy array is checked unread)."""
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 3):
        raise TransconvError(f"{op}: image must be (H, W) gray or (H, W, 3) RGB, got shape {tuple(shape)}")
    if shape[0] == 0 or shape[1] == 0:
        raise TransconvError(f"{op}: image is empty (shape {tuple(shape)})")
    if np.dtype(dtype) != np.uint8 and np.dtype(dtype).kind != "f":
        raise TransconvError(f"{op}: image dtype must be uint8 (0-255) or float (0-1), got {np.dtype(dtype)}")


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
    _check_image("upsample", image.shape, image.dtype)
    out_pixels = image.shape[0] * image.shape[1] * scale * scale
    if out_pixels > _MAX_OUTPUT_PIXELS:
        raise TransconvError(
            f"upsample: output of {out_pixels} pixels is over the in-memory limit of {_MAX_OUTPUT_PIXELS}; up-sample "
            f"it tile by tile with transconv.dask.upsample or `transconv upsample IN OUT` (chunked above "
            f"{CHUNKED_ABOVE_PIXELS} input pixels)"
        )
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


_TIFF = (".tif", ".tiff")
_TIFF_TILE = 256  # tile side of written TIFFs (a multiple of 16, as TIFF requires)
_MAX_PILLOW_BYTES = 2**31  # Pillow writes whole images from memory: larger outputs go to TIFF or Zarr


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="image to up-sample: PNG, JPEG, ... (Pillow), TIFF (tifffile, "
                        "read lazily when large) or a .zarr array; (H, W) gray or (H, W, 3) RGB, uint8 or float 0-1")
    parser.add_argument("output", metavar="OUT", help="where to write the result: .tif/.tiff (tiled), .zarr, or any "
                        "extension Pillow writes (uint8 only)")
    parser.add_argument("--scale", type=int, default=2, help="up-sampling factor; models ship for 2 and 4 (default: 2)")
    parser.add_argument("--model", metavar="PATH", default=None, help="a model file from 'transconv train'")
    parser.add_argument("--chunk", metavar="SIDE", type=int, default=None,
                        help=f"up-sample tile by tile with Dask, input tiles SIDE x SIDE (default: tiles of {CHUNK_SIDE} when "
                             f"the input has more than {CHUNKED_ABOVE_PIXELS} pixels, else one in-memory call)")
    parser.add_argument("--force", action="store_true", help="overwrite OUT if it exists (a .zarr directory too)")


def _fail(message: str) -> int:
    print(f"transconv upsample: error: {message}", file=sys.stderr)
    return 2


class _Input:
    """An input image opened without reading its pixels: shape, dtype, and how to read them."""

    def __init__(self, src: Path) -> None:
        self.src, self.suffix, self.pixels, self._closers = src, src.suffix.lower(), None, []
        if self.suffix == ".zarr":
            import zarr

            self.zarr = zarr.open_array(str(src), mode="r")
            self.shape, self.dtype = tuple(self.zarr.shape), np.dtype(self.zarr.dtype)
        elif self.suffix in _TIFF and _has("tifffile"):
            import tifffile

            with tifffile.TiffFile(src) as tif:
                series = tif.series[0]
                self.shape, self.dtype = tuple(series.shape), np.dtype(series.dtype)
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(src) as img:
                    mode = img.mode
                    self.pixels = np.asarray(img.convert("L" if mode in ("1", "L", "I;16", "I", "F") else "RGB"))
            except UnidentifiedImageError as exc:
                raise OSError(str(exc)) from None
            self.shape, self.dtype = self.pixels.shape, self.pixels.dtype

    def numpy(self) -> np.ndarray:
        if self.pixels is not None:
            return self.pixels
        if self.suffix == ".zarr":
            return self.zarr[...]
        import tifffile

        return tifffile.imread(self.src, series=0)

    def dask(self) -> Any:
        import dask.array as da

        if self.pixels is not None:
            return da.from_array(self.pixels, chunks=-1)
        if self.suffix == ".zarr":
            return da.from_zarr(self.zarr)
        import tifffile
        import zarr

        store = tifffile.imread(self.src, aszarr=True, series=0)
        self._closers.append(store.close)
        return da.from_zarr(zarr.open_array(store, mode="r"))

    def close(self) -> None:
        for close in self._closers:
            close()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _write(tmp: Path, kind: str, bands: Any, shape: tuple[int, ...], dtype: np.dtype, chunk: int) -> None:
    """Write row bands (in order, top to bottom) of an image of ``shape`` to ``tmp``."""
    if kind == "zarr":
        import zarr

        out = zarr.create_array(store=str(tmp), shape=shape, dtype=dtype, chunks=(chunk, chunk) + shape[2:])
        row = 0
        for band in bands:
            out[row : row + band.shape[0]] = band
            row += band.shape[0]
    elif kind == "tiff":
        import tifffile

        big = int(np.prod(shape)) * dtype.itemsize > 2**31  # classic TIFF offsets end at 4 GB
        tifffile.imwrite(tmp, _tiff_tiles(bands, shape[1], _TIFF_TILE), shape=shape, dtype=dtype,
                         tile=(_TIFF_TILE, _TIFF_TILE), photometric="rgb" if len(shape) == 3 else "minisblack",
                         bigtiff=big)
    else:
        from PIL import Image

        whole, row = np.empty(shape, dtype), 0
        for band in bands:
            whole[row : row + band.shape[0]] = band
            row += band.shape[0]
        Image.fromarray(whole).save(tmp)


def _tiff_tiles(bands: Any, width: int, tile: int) -> Any:
    """TIFF tiles in row-major order from row bands of any height (rows held: one band + one tile)."""
    pending = None
    for band in bands:
        pending = band if pending is None else np.concatenate([pending, band])
        while pending.shape[0] >= tile:
            yield from (pending[:tile, c : c + tile] for c in range(0, width, tile))
            pending = pending[tile:]
    if pending is not None and pending.shape[0]:
        yield from (pending[:, c : c + tile] for c in range(0, width, tile))


def run(args: argparse.Namespace) -> int:
    src, dst = Path(args.input), Path(args.output)
    kind = "zarr" if dst.suffix.lower() == ".zarr" else "tiff" if dst.suffix.lower() in _TIFF else "pillow"
    if src.suffix.lower() == ".zarr" and not src.is_dir():
        return _fail(f"input {str(src)!r} is not a Zarr array (no such folder)")
    if src.suffix.lower() != ".zarr" and not src.is_file():
        return _fail(f"input {str(src)!r} is not a file")
    if (dst.exists() or dst.is_symlink()) and not args.force:
        return _fail(f"output {str(dst)!r} exists; pass --force to overwrite it")
    if not dst.parent.is_dir():
        return _fail(f"folder {str(dst.parent)!r} of the output does not exist")
    if kind == "pillow":
        from PIL import Image

        if dst.suffix.lower() not in Image.registered_extensions():
            return _fail(f"output {str(dst)!r}: unknown image extension {dst.suffix!r} (Pillow's, .tif/.tiff or .zarr)")
    if args.chunk is not None and args.chunk < 1:
        return _fail(f"--chunk (input tile side) must be at least 1, got {args.chunk}")
    if (kind == "zarr" or src.suffix.lower() == ".zarr") and not _has("zarr"):
        return _fail("Zarr input or output needs the zarr package: pip install 'transconv[dask]'")
    try:
        image = _Input(src)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read {str(src)!r} as an image ({exc})")
    try:
        return _upsample_file(args, image, src, dst, kind)
    finally:
        image.close()


def _upsample_file(args: argparse.Namespace, image: _Input, src: Path, dst: Path, kind: str) -> int:
    try:
        _check_image("upsample", image.shape, image.dtype)
    except TransconvError as exc:
        return _fail(f"{str(src)!r}: {exc}")
    if kind == "pillow" and image.dtype != np.uint8:
        return _fail(f"{str(src)!r} is {image.dtype}; float images can be written to .tif/.tiff or .zarr only")
    shape = (args.scale * image.shape[0], args.scale * image.shape[1]) + tuple(image.shape[2:])
    if kind == "pillow" and int(np.prod(shape)) > _MAX_PILLOW_BYTES:
        return _fail(f"the {shape[1]}x{shape[0]} output ({int(np.prod(shape)) / 2**30:.1f} GB) is too large for "
                     f"{dst.suffix!r}, which is written from memory; write .tif/.tiff or .zarr (streamed) instead")
    chunked = args.chunk is not None or image.shape[0] * image.shape[1] > CHUNKED_ABOVE_PIXELS
    if chunked and not _has("dask"):
        return _fail(f"{str(src)!r} has {image.shape[0] * image.shape[1]} pixels, above the in-memory threshold "
                     f"{CHUNKED_ABOVE_PIXELS}: up-sampling it tile by tile needs pip install 'transconv[dask]'")
    side = args.chunk or CHUNK_SIDE
    try:
        with atomic_write(dst, op="upsample") as tmp:
            if chunked:
                import dask.array  # noqa: F401  (the extra is present: checked above)

                from .dask import upsample as dask_upsample

                lazy = dask_upsample(image.dask(), args.scale, model=args.model, chunks=side)
                bands = _bands(lazy)
            else:
                bands = iter([upsample(image.numpy(), args.scale, model=args.model)])
            _write(tmp, kind, bands, shape, image.dtype, args.scale * side)
    except TransconvError as exc:
        return _fail(str(exc))
    except (OSError, ValueError) as exc:
        return _fail(f"cannot up-sample {str(src)!r} into {str(dst)!r} ({exc})")
    how = f", {side}x{side} tiles" if chunked else ""
    print(f"wrote {dst} ({shape[1]}x{shape[0]}, {args.scale}x {src.name}{how})")
    return 0


def _bands(lazy: Any) -> Any:
    """The rows of ``lazy`` one block row at a time (its tiles in parallel), with a progress bar on stderr."""
    from tqdm import tqdm

    rows, cols = len(lazy.chunks[0]), len(lazy.chunks[1])
    with tqdm(total=rows * cols, unit="tile", desc="upsample", file=sys.stderr, dynamic_ncols=True) as bar:
        for r in range(rows):
            yield lazy.blocks[r].compute()
            bar.update(cols)


def main(argv: list[str] | None = None) -> int:
    """``python -m transconv.upsample``: the same as ``transconv upsample``."""
    from .cli import main as cli_main

    return cli_main(["upsample"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
