"""``transconv demo``: the worked example end to end, a real 2x up-sampling, and the pictures.

Everything printed is computed: the 2x2 convolution, the 4x16 ``C`` and 16x4 ``C^T``,
``C^T`` applied to ``[2, 1, 4, 4]`` next to ``conv_transpose``, then
``skimage.data.camera()`` halved and brought back with a bilinear transposed convolution
(kernel 4, stride 2, padding 1), scored by PSNR against the original next to
``scipy.ndimage.zoom`` and nearest-neighbour.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..data import psnr
from ..nn.init import bilinear_kernel as _bilinear_line
from .frames import WORKED_K, WORKED_X, WORKED_Y, frames, make_spec

__all__ = ["run_demo", "bilinear_kernel", "psnr", "upsampling_comparison", "learned_comparison"]


def bilinear_kernel(factor: int = 2) -> np.ndarray:
    """The 2-d bilinear up-sampling kernel of size ``2 * factor`` (stride ``factor``, padding ``factor // 2``).

    >>> (bilinear_kernel(2) * 16).astype(int)[0].tolist()
    [1, 3, 3, 1]
    """
    line = _bilinear_line(2 * factor)
    return np.outer(line, line)


def upsampling_comparison() -> tuple[np.ndarray, np.ndarray, list[tuple[str, np.ndarray, float]]]:
    """Halve ``camera()`` by 2x2 averaging, bring it back four ways; ``(original, low, [(name, image, psnr)])``."""
    import scipy.ndimage as ndi
    from skimage import data

    import transconv as tc

    original = data.camera().astype(np.float64) / 255.0
    h, w = original.shape
    low = original.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    kernel = bilinear_kernel(2)[None, None]  # (C_in, C_out, 4, 4): one channel
    up = tc.conv_transpose(low[None, None], kernel, stride=2, padding=1)[0, 0]
    # the border rows/columns get 3/4 of the kernel weight; divide by what a constant image receives
    weight = tc.conv_transpose(np.ones_like(low)[None, None], kernel, stride=2, padding=1)[0, 0]
    results = [
        ("nearest (np.repeat)", np.repeat(np.repeat(low, 2, 0), 2, 1)),
        ("scipy.ndimage.zoom order=1", ndi.zoom(low, 2, order=1)),
        ("scipy.ndimage.zoom order=1, grid_mode", ndi.zoom(low, 2, order=1, grid_mode=True, mode="nearest")),
        ("conv_transpose bilinear k4 s2 p1", up),
        ("  same, border renormalised", up / weight),
    ]
    return original, low, [(name, np.clip(im, 0, 1), psnr(np.clip(im, 0, 1), original)) for name, im in results]


def learned_comparison(photo: str = "coffee", scale: int = 2) -> list[tuple[str, float]]:
    """Y-channel PSNR of Pillow's bicubic and of ``tc.upsample`` on a held-out photograph."""
    import transconv as tc

    from ..data import HELD_OUT_PHOTOS, bicubic_resize, load_photo, lr_hr_pair

    if photo not in HELD_OUT_PHOTOS:  # the demo shows only photographs training never used
        raise ValueError(f"learned_comparison: photo must be one of {HELD_OUT_PHOTOS}, got {photo!r}")
    low, high = lr_hr_pair(load_photo(photo), scale)
    inner = (slice(scale, -scale),) * 2
    return [(f"bicubic (Pillow) {photo}", psnr(np.clip(bicubic_resize(low, high.shape), 0, 1)[inner], high[inner])),
            (f"tc.upsample {photo}", psnr(tc.upsample(low, scale)[inner], high[inner]))]


def _fmt(m: np.ndarray) -> str:
    m = np.asarray(m)
    ints = np.all(np.abs(m - np.round(m)) < 1e-9)
    cells = [[str(int(round(v))) if ints else f"{v:.4g}" for v in row] for row in np.atleast_2d(m)]
    width = max(len(c) for row in cells for c in row)
    return "\n".join("    " + " ".join(c.rjust(width) for c in row) for row in cells)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def run_demo(out: Optional[Path], *, pictures: bool = True, progress_factory: Optional[Callable] = None) -> int:
    import transconv as tc

    start = time.perf_counter()
    say = print
    say("transconv demo: a convolution is a sparse matrix C, a transposed convolution is C^T.\n")
    say("x, the 4x4 input:")
    say(_fmt(WORKED_X))
    say("k, the 3x3 kernel (cross-correlation: no flip):")
    say(_fmt(WORKED_K))
    y = tc.conv(WORKED_X, WORKED_K)
    say("conv(x, k), the 2x2 output (top-left window 4,5,8,1,8,8,3,6,6 -> 122):")
    say(_fmt(y))

    conv_anim = frames(make_spec((4, 4), 3), (4, 4))
    C = tc.conv_matrix(WORKED_K, (4, 4)).toarray()
    say("\nC = tc.conv_matrix(k, (4, 4)), the 4x16 convolution matrix: each row is the kernel laid out "
        "with zeros between rows")
    say(_indent(tc.format_matrix(C, (2, 2), (4, 4), row_name="y", col_name="x")))
    cx = C @ WORKED_X.ravel()
    say(f"C @ x.ravel() = {cx.astype(int).tolist()}   (= conv(x, k) flattened: {np.allclose(cx, y.ravel())})")

    t_anim = frames(make_spec((2, 2), 3, transposed=True), (2, 2), transposed=True)
    CT = tc.conv_transpose_matrix(WORKED_K, (2, 2)).toarray()
    say("\nC^T = tc.conv_transpose_matrix(k, (2, 2)), the 16x4 matrix of the transposed convolution "
        f"(the transpose of C: {np.array_equal(CT, C.T)}):")
    say(_indent(tc.format_matrix(CT, (4, 4), (2, 2), row_name="x", col_name="y")))
    up = (CT @ WORKED_Y.ravel()).reshape(4, 4)
    say("C^T @ [2, 1, 4, 4], reshaped to 4x4: one input value reaches 9 outputs")
    say(_fmt(up))
    ct = tc.conv_transpose(WORKED_Y, WORKED_K)
    say(f"conv_transpose([[2, 1], [4, 4]], k) gives the same 4x4: {np.allclose(ct, up)}")

    say("\nA real up-sampling: skimage.data.camera() (512x512) halved by 2x2 averaging, then doubled:")
    original, low, results = upsampling_comparison()
    for name, _, score in results:
        say(f"    {name:<40} PSNR {score:6.2f} dB")
    same = np.max(np.abs(results[2][1] - results[4][1]))
    say(f"    (the renormalised transposed conv is zoom's grid_mode bilinear: max difference {same:.1e})")

    say("\nThe learned up-sampler (tc.upsample: FSRCNN-s, last layer a learned 9x9 transposed conv, trained by")
    say("transconv train on other bundled photographs) on skimage.data.coffee(), which training never saw;")
    say("Y channel down-scaled 2x bicubically, brought back, 2 pixels of border left out:")
    for name, score in learned_comparison():
        say(f"    {name:<40} PSNR {score:6.2f} dB")

    from ..overlap import overlap_diagnosis, overlap_map

    overlap3 = overlap_map((8, 8), 3, stride=2, padding=1, output_padding=1)
    overlap4 = overlap_map((8, 8), 4, stride=2, padding=1)
    d3 = overlap_diagnosis((8, 8), 3, stride=2, padding=1, output_padding=1)
    d4 = overlap_diagnosis((8, 8), 4, stride=2, padding=1)
    say("\nCheckerboard check, 8x8 -> 16x16 (how many (input, tap) pairs reach each output pixel):")
    say(f"    kernel 3, stride 2: {d3.describe()}")
    say(f"    kernel 4, stride 2: {d4.describe()}")

    if pictures and out is not None:
        written = _write_pictures(out, conv_anim, t_anim, [(3, d3, overlap3), (4, d4, overlap4)], original, results,
                                  progress_factory)
        say(f"\nPictures in {out}/:")
        for path in written:
            say(f"    {path.name}")
    say(f"\ndone in {time.perf_counter() - start:.1f} s.  Next: transconv animate --help, transconv explore")
    return 0


def _write_pictures(out: Path, conv_anim, t_anim, overlaps, original, results, progress_factory) -> list[Path]:
    """The demo's pictures into ``out``: the worked example animated, C and C^T, the overlap maps, the up-sampling."""
    from .render import render_frames, save_gif, save_grid, save_image_comparison, save_matrix_pair, save_overlap_maps

    out.mkdir(parents=True, exist_ok=True)
    jobs = 7
    bar = progress_factory("writing pictures", jobs) if progress_factory else (lambda *a: None)
    written = []
    images = render_frames(t_anim, WORKED_Y, WORKED_K)
    written.append(save_gif(images, out / "worked_example_transposed.gif"))
    bar(1)
    written.append(save_grid(render_frames(t_anim, WORKED_Y, WORKED_K, matrix=False, compact=True),
                             out / "worked_example_transposed.png", anim=t_anim))
    bar(2)
    scatter = frames(t_anim.spec, (2, 2), transposed=True, view="scatter")
    written.append(save_gif(render_frames(scatter, WORKED_Y, WORKED_K), out / "worked_example_scatter.gif"))
    bar(3)
    written.append(save_gif(render_frames(conv_anim, WORKED_X, WORKED_K), out / "worked_example_conv.gif"))
    bar(4)
    written.append(save_matrix_pair(conv_anim, out / "matrix_C_and_CT.png", step=0, w=WORKED_K))
    bar(5)
    written.append(save_overlap_maps(
        [(f"kernel {k}, stride 2: {'uniform' if d.uniform else 'checkerboard'}", overlap) for k, d, overlap in overlaps],
        out / "overlap_k3s2_vs_k4s2.png"))
    bar(6)
    crop = (200, 328, 160, 288)
    panels = [("original", original)] + [(f"{n.strip()}\n{s:.2f} dB", im) for n, im, s in results
                                         if not n.startswith("scipy.ndimage.zoom order=1,")]
    written.append(save_image_comparison(panels, out / "upsampling_camera.png", crop=crop))
    bar(7)
    return written
