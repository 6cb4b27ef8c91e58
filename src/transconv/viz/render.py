"""Renderers: animated GIF, still PNG grid, matrix pictures and overlap heat maps.

Pillow and matplotlib are imported inside the functions that need them, so importing
this module costs nothing.  Frames are drawn with Pillow on a fixed layout
(:func:`layout` says where every cell is, which the tests use to check pixel colours)
in flat colours from :data:`COLORS`; GIFs are quantised to a fixed palette that holds
those colours exactly.  Heat maps and image comparisons use matplotlib.

Colours follow the convolution-arithmetic figures: the input blue, the output teal,
the kernel a dark shade over the cells it covers, padding grey and dashed, inserted
zeros pale amber, and cropped output cells grey and dashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import TransconvError
from .frames import (
    CROPPED,
    INPUT,
    INSERTED,
    PADDING,
    Animation,
    accumulate,
    example_input,
    example_kernel,
    shape_formula,
)

__all__ = [
    "COLORS",
    "Layout",
    "layout",
    "render_frame",
    "render_frames",
    "save_gif",
    "save_grid",
    "matrix_image",
    "save_matrix_pair",
    "operator_matrix",
    "save_overlap_maps",
    "save_image_comparison",
]

RGB = tuple[int, int, int]

COLORS: dict[str, RGB] = {
    "background": (255, 255, 255),
    "grid": (60, 60, 60),
    "text": (20, 20, 20),
    "input": (120, 170, 235),          # input cell
    "padding": (232, 232, 232),        # zero padding around the input
    "inserted": (255, 231, 170),       # zeros inserted between inputs (transposed, stride > 1)
    "window_input": (25, 70, 150),     # kernel over an input cell / the input being spread
    "window_zero": (110, 110, 110),    # kernel over padding or an inserted zero
    "output": (190, 236, 230),         # output cell not reached yet
    "done": (70, 180, 168),            # output cell already computed / reached
    "current": (0, 95, 85),            # output cell written at this step
    "cropped": (246, 246, 246),        # transposed output position cut off by padding
    "window_cropped": (150, 150, 150), # contribution falling into the cropped border
    "matrix_zero": (255, 255, 255),
    "matrix_nonzero": (205, 205, 205),
    "matrix_band": (255, 246, 200),    # highlighted row / column
    "matrix_active": (245, 140, 40),   # entries used at this step
    "matrix_band_nonzero": (225, 215, 165),
}

_DARK = {"window_input", "window_zero", "current", "done", "window_cropped", "grid", "text"}


@dataclass(frozen=True)
class Layout:
    """Pixel geometry of one frame picture.

    ``source_origin`` / ``dest_origin`` / ``matrix_origin`` are the top-left corners of the
    panels; ``cell`` and ``matrix_cell`` the cell sizes.  :meth:`box` gives a cell's box.
    """

    width: int
    height: int
    cell: int
    source_origin: tuple[int, int]
    source_shape: tuple[int, int]
    dest_origin: tuple[int, int]
    dest_shape: tuple[int, int]
    matrix_origin: Optional[tuple[int, int]]
    matrix_shape: tuple[int, int]
    matrix_cell: int
    numbers: bool
    caption_y: int

    def box(self, panel: str, cell: Sequence[int]) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` of a cell (2-d index, or 1-d index drawn as one row) of a panel."""
        r, c = (0, cell[0]) if len(cell) == 1 else (cell[0], cell[1])
        if panel == "matrix":
            if self.matrix_origin is None:
                raise TransconvError("layout: this picture has no matrix panel")
            x, y = self.matrix_origin
            s = self.matrix_cell
        else:
            x, y = self.source_origin if panel == "source" else self.dest_origin
            s = self.cell
        return (x + c * s, y + r * s, x + (c + 1) * s, y + (r + 1) * s)

    def probe(self, panel: str, cell: Sequence[int]) -> tuple[int, int]:
        """A pixel inside a cell's fill, clear of its border and its text (for colour tests)."""
        x0, y0, x1, y1 = self.box(panel, cell)
        inset = max(2, (x1 - x0) // 8)
        return (x0 + inset + 1, y0 + inset + 1)


def _as2d(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) == 1:
        return (1, int(shape[0]))
    if len(shape) == 2:
        return (int(shape[0]), int(shape[1]))
    raise TransconvError(f"pictures: only 1-d and 2-d geometries can be drawn, got {len(shape)} spatial axes")


def layout(anim: Animation, *, matrix: bool = True, cell: Optional[int] = None, compact: bool = False) -> Layout:
    """Where everything of ``anim``'s frames goes."""
    src = _as2d(anim.source.shape)
    dst = _as2d(anim.dest.shape)
    biggest = max(max(src), max(dst))
    if cell is None:
        cell = 40 if biggest <= 10 else max(10, 420 // biggest)
    numbers = cell >= 24
    margin, title = 16, 26
    panel_h = max(src[0], dst[0]) * cell
    sx, sy = margin, margin + title
    dx = sx + src[1] * cell + 48
    dy = sy + (panel_h - dst[0] * cell) // 2
    width = dx + dst[1] * cell + margin
    m_rows, m_cols = anim.matrix_shape
    m_origin = None
    m_cell = 0
    if matrix:
        m_cell = int(min(24, 520 // m_cols, max(panel_h, 400) // m_rows))
        if m_cell >= 3:
            mx = width + 32
            m_origin = (mx, sy)
            width = mx + max(m_cols * m_cell, 250) + margin
            panel_h = max(panel_h, m_rows * m_cell)
        else:
            m_cell = 0
    caption_y = sy + panel_h + 14
    width = max(width, 260 if compact else 620)
    labels = [(sx, _source_label(anim)), (dx, _dest_label(anim))]
    if m_origin is not None:
        labels.append((m_origin[0], _matrix_label(anim, (m_rows, m_cols))))
    width = max([width] + [x + _text_width(label, _font(14)) + margin for x, label in labels])  # no label cut off
    height = caption_y + (22 if compact else 3 * 18 + 36)
    return Layout(
        width, height, cell, (sx, sy), src, (dx, dy), dst, m_origin, (m_rows, m_cols), m_cell, numbers, caption_y
    )


# --------------------------------------------------------------------------------------
# Drawing one frame.
# --------------------------------------------------------------------------------------


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fmt(v: float) -> str:
    if abs(v - round(v)) < 1e-9:
        return str(int(round(v)))
    return f"{v:.2g}" if abs(v) < 10 else f"{v:.0f}"


def _idx(index) -> str:
    return str(index[0]) if len(index) == 1 else str(tuple(index))


def _dashed_rect(draw, box, color, dash=4) -> None:
    x0, y0, x1, y1 = box
    x1 -= 1
    y1 -= 1
    for x in range(x0, x1, dash * 2):
        draw.line([(x, y0), (min(x + dash, x1), y0)], fill=color)
        draw.line([(x, y1), (min(x + dash, x1), y1)], fill=color)
    for y in range(y0, y1, dash * 2):
        draw.line([(x0, y), (x0, min(y + dash, y1))], fill=color)
        draw.line([(x1, y), (x1, min(y + dash, y1))], fill=color)


def _cell(draw, box, fill: str, dashed: bool = False, text: str = "", sub: str = "", fonts=None) -> None:
    color = COLORS[fill]
    draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], fill=color)
    if dashed:
        _dashed_rect(draw, box, (150, 150, 150))
    else:
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=COLORS["grid"])
    ink = (255, 255, 255) if fill in _DARK else COLORS["text"]
    if text and fonts:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        draw.text((cx, cy - (3 if sub else 0)), text, fill=ink, font=fonts[0], anchor="mm")
    if sub and fonts:
        draw.text((box[2] - 3, box[3] - 2), sub, fill=ink, font=fonts[1], anchor="rd")


def _source_fill(kind: int, under_kernel: bool) -> tuple[str, bool]:
    if under_kernel:
        return ("window_input" if kind == INPUT else "window_zero"), False
    if kind == INPUT:
        return "input", False
    if kind == INSERTED:
        return "inserted", False
    return "padding", True


def _values(anim: Animation, x: Any, w: Any) -> tuple[np.ndarray, np.ndarray]:
    x = example_input(anim.input_shape) if x is None else np.asarray(x, dtype=float)
    w = example_kernel(anim.spec.kernel_size) if w is None else np.asarray(w, dtype=float)
    return x, w


def operator_matrix(anim: Animation, w: Any = None) -> np.ndarray:
    """Dense matrix of the animation's operation (``C``, or ``C^T`` when transposed) for kernel ``w``.

    Built by :func:`transconv.conv_matrix` / :func:`transconv.conv_transpose_matrix`, the
    library's one matrix builder (the tests check it against the frames' own pairs).
    """
    from ..matrix import conv_matrix, conv_transpose_matrix

    _, w = _values(anim, None, w)
    spec = anim.spec
    if anim.transposed:
        m = conv_transpose_matrix(w, anim.input_shape, spec.stride, spec.padding, spec.output_padding, 1,
                                  spec.dilation, padding_mode=spec.padding_mode)
    else:
        m = conv_matrix(w, anim.input_shape, spec.stride, spec.padding, spec.dilation, 1,
                        padding_mode=spec.padding_mode)
    return np.asarray(m.toarray(), dtype=float)


def render_frame(
    anim: Animation,
    step: int,
    x: Any = None,
    w: Any = None,
    *,
    matrix: Any = True,
    cell: Optional[int] = None,
    history: Optional[list[np.ndarray]] = None,
    title: Optional[str] = None,
    compact: bool = False,
):
    """One frame as a ``PIL.Image`` (RGB).

    ``x`` and ``w`` default to :func:`~transconv.viz.frames.example_input` /
    :func:`~transconv.viz.frames.example_kernel`.  ``matrix`` is True (build it), False
    (no matrix panel) or a dense matrix to show.  ``history`` is :func:`accumulate`'s
    result, passed in when drawing many frames.
    """
    from PIL import Image, ImageDraw

    x, w = _values(anim, x, w)
    lay = layout(anim, matrix=matrix is not False, cell=cell, compact=compact)
    if history is None:
        history = accumulate(anim, x, w)
    frame = anim.frames[step]
    img = Image.new("RGB", (lay.width, lay.height), COLORS["background"])
    draw = ImageDraw.Draw(img)
    fonts = (_font(max(10, lay.cell * 2 // 5)), _font(max(8, lay.cell // 4)))
    taps = {tuple(t): w[tuple(t)] for t in np.ndindex(*anim.spec.kernel_size)}
    _draw_source(draw, lay, anim, frame, x.ravel(), taps, fonts)
    _draw_dest(draw, lay, anim, step, history[step], taps, fonts)
    _draw_arrow(draw, lay)
    if lay.matrix_origin is not None:
        dense = operator_matrix(anim, w) if matrix is True else np.asarray(matrix, dtype=float)
        _draw_matrix_panel(draw, lay, anim, frame, dense, fonts)
    _draw_caption(draw, lay, anim, step, title, compact)
    return img


def _source_label(anim: Animation) -> str:
    padded = any(lo or hi for lo, hi in anim.spec.padding)
    if anim.transposed and anim.view == "direct":
        note = " (zeros inserted, padded)" if max(anim.spec.stride) > 1 else " (padded by k-1-p)"
    else:
        note = " (padded)" if padded and anim.view == "direct" else ""
    return f"input {'x'.join(map(str, anim.input_shape))}{note}"


def _dest_label(anim: Animation) -> str:
    cropped = anim.view == "scatter" and anim.transposed and any(lo or hi for lo, hi in anim.spec.padding)
    return f"output {'x'.join(map(str, anim.output_shape))}" + (" (dashed: cropped by padding)" if cropped else "")


def _matrix_label(anim: Animation, shape: tuple[int, int]) -> str:
    return ("C^T" if anim.transposed else "C") + f" {shape[0]}x{shape[1]} (row: output, col: input)"


def _draw_source(draw, lay: Layout, anim: Animation, frame, x_flat: np.ndarray, taps: dict, fonts) -> None:
    """The input side: the kernel's window (moving source) or the one input spreading (moving dest)."""
    under = {tuple(c): t for c, t in zip(frame.window, frame.window_taps)} if anim.moving == "source" else {}
    spread = set(anim.source.cells_of(frame.anchor, anim.input_shape)) if anim.moving == "dest" else set()
    for cnd in np.ndindex(*anim.source.shape):
        kind = int(anim.source.kind[cnd])
        src = int(anim.source.source[cnd])
        fill, dashed = _source_fill(kind, cnd in under or cnd in spread)
        if lay.numbers and src >= 0:
            text = _fmt(x_flat[src])
        else:
            text = "0" if lay.numbers and kind != INPUT and anim.transposed else ""
        sub = _fmt(taps[under[cnd]]) if (cnd in under and lay.numbers) else ""
        _cell(draw, lay.box("source", cnd), fill, dashed, text, sub, fonts)
    draw.text((lay.source_origin[0], lay.source_origin[1] - 8), _source_label(anim), fill=COLORS["text"],
              font=_font(14), anchor="ld")


def _draw_dest(draw, lay: Layout, anim: Animation, step: int, y_now: np.ndarray, taps: dict, fonts) -> None:
    """The output side: cells written now, before, not yet, and the cropped border."""
    frame = anim.frames[step]
    touched_before = set()
    for f in anim.frames[:step]:
        touched_before.update(f.outputs)
    dest_under = {tuple(c): t for c, t in zip(frame.window, frame.window_taps)} if anim.moving == "dest" else {}
    current_outputs = {frame.anchor} if anim.view == "direct" else set(frame.outputs)
    for cnd in np.ndindex(*anim.dest.shape):
        kind = int(anim.dest.kind[cnd])
        src = int(anim.dest.source[cnd])
        out_idx = tuple(int(v) for v in np.unravel_index(src, anim.output_shape)) if src >= 0 else None
        if kind == CROPPED:
            fill, dashed = ("window_cropped", False) if cnd in dest_under else ("cropped", True)
            text = ""
        else:
            if out_idx in current_outputs:
                fill = "current"
            elif out_idx in touched_before:
                fill = "done"
            else:
                fill = "output"
            dashed = False
            shown = out_idx in current_outputs or out_idx in touched_before
            text = _fmt(y_now[out_idx]) if (lay.numbers and shown) else ""
        sub = _fmt(taps[dest_under[cnd]]) if (cnd in dest_under and lay.numbers) else ""
        _cell(draw, lay.box("dest", cnd), fill, dashed, text, sub, fonts)
    dx, dy = lay.dest_origin
    draw.text((dx, dy - 8), _dest_label(anim), fill=COLORS["text"], font=_font(14), anchor="ld")


def _draw_arrow(draw, lay: Layout) -> None:
    ax0 = lay.source_origin[0] + lay.source_shape[1] * lay.cell + 8
    ay = lay.source_origin[1] + min(lay.source_shape[0], lay.dest_shape[0] + 2) * lay.cell // 2
    draw.line([(ax0, ay), (ax0 + 30, ay)], fill=COLORS["grid"], width=2)
    draw.polygon([(ax0 + 32, ay), (ax0 + 24, ay - 5), (ax0 + 24, ay + 5)], fill=COLORS["grid"])


def _draw_matrix_panel(draw, lay: Layout, anim: Animation, frame, dense: np.ndarray, fonts) -> None:
    """The operation's matrix, the current frame's row (direct) or column (scatter) banded."""
    rows = set(anim.matrix_rows(frame)) if anim.view == "direct" else set()
    cols = set(anim.matrix_cols(frame)) if anim.view == "scatter" else set()
    _draw_matrix(draw, lay, dense, rows, cols, set(anim.matrix_entries(frame)), fonts)
    mx, my = lay.matrix_origin
    draw.text((mx, my - 8), _matrix_label(anim, dense.shape), fill=COLORS["text"], font=_font(14), anchor="ld")


def _draw_caption(draw, lay: Layout, anim: Animation, step: int, title: Optional[str], compact: bool) -> None:
    """What the step does; unless compact, the output-size formula and the colour legend too."""
    frame = anim.frames[step]
    y = lay.caption_y
    if compact:
        short = f"output {_idx(frame.anchor)}" if anim.view == "direct" else f"input {_idx(frame.anchor)}"
        draw.text((16, y), f"step {step + 1}: {short}", fill=COLORS["text"], font=_font(13))
        return
    what = (f"output {_idx(frame.anchor)} = sum of kernel x window" if anim.view == "direct"
            else f"input {_idx(frame.anchor)} spreads through the kernel")
    head = title or f"{'conv_transpose' if anim.transposed else 'conv'}, {anim.view} view"
    draw.text((16, y), f"{head} - step {step + 1}/{len(anim.frames)}: {what}", fill=COLORS["text"], font=_font(13))
    for line in shape_formula(anim.spec, anim.input_shape, anim.transposed)[:1]:
        draw.text((16, y + 18), line, fill=COLORS["text"], font=_font(12))
    _legend(draw, anim, 16, y + 40)


def _draw_matrix(draw, lay: Layout, dense: np.ndarray, rows: set, cols: set, entries: set, fonts) -> None:
    s = lay.matrix_cell
    show = s >= 18
    font = _font(max(8, s * 2 // 5))
    for r in range(dense.shape[0]):
        for c in range(dense.shape[1]):
            v = dense[r, c]
            band = r in rows or c in cols
            if (r, c) in entries:
                fill = "matrix_active"
            elif v != 0:
                fill = "matrix_band_nonzero" if band else "matrix_nonzero"
            else:
                fill = "matrix_band" if band else "matrix_zero"
            x0, y0, x1, y1 = lay.box("matrix", (r, c))
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=COLORS[fill],
                           outline=(200, 200, 200) if s >= 6 else None)
            if show and v != 0:
                draw.text(((x0 + x1) / 2, (y0 + y1) / 2), _fmt(v), fill=COLORS["text"], font=font, anchor="mm")
    x0, y0, _, _ = lay.box("matrix", (0, 0))
    _, _, x1, y1 = lay.box("matrix", (dense.shape[0] - 1, dense.shape[1] - 1))
    draw.rectangle([x0 - 1, y0 - 1, x1, y1], outline=COLORS["grid"])


def _legend(draw, anim: Animation, x: int, y: int) -> None:
    items = [("input", "input")]
    kinds = set(np.unique(anim.source.kind).tolist()) | set(np.unique(anim.dest.kind).tolist())
    if PADDING in kinds:
        items.append(("padding", "padding"))
    if INSERTED in kinds:
        items.append(("inserted", "inserted zero"))
    items += [("window_input", "kernel"), ("current", "written now"), ("done", "written"), ("output", "output")]
    if CROPPED in kinds:
        items.append(("cropped", "cropped"))
    font = _font(12)
    for key, label in items:
        draw.rectangle([x, y, x + 13, y + 13], fill=COLORS[key], outline=COLORS["grid"])
        draw.text((x + 18, y + 7), label, fill=COLORS["text"], font=font, anchor="lm")
        x += 18 + int(draw.textlength(label, font=font)) + 14


def render_frames(anim: Animation, x: Any = None, w: Any = None, *, matrix: Any = True, cell: Optional[int] = None,
                  progress: Optional[Callable[[int, int], None]] = None, title: Optional[str] = None,
                  compact: bool = False) -> list:
    """All frames as ``PIL.Image`` objects (the matrix is built once)."""
    x, w = _values(anim, x, w)
    history = accumulate(anim, x, w)
    if matrix is True:
        lay = layout(anim, matrix=True, cell=cell)
        matrix = operator_matrix(anim, w) if lay.matrix_origin is not None else False
    images = []
    for step in range(len(anim.frames)):
        images.append(render_frame(anim, step, x, w, matrix=matrix, cell=cell, history=history, title=title,
                                   compact=compact))
        if progress:
            progress(step + 1, len(anim.frames))
    return images


def _palette_image():
    """A fixed palette (at most 256 colours): every flat colour exactly, plus blends for antialiased text."""
    colors: list[RGB] = []
    for c in COLORS.values():
        if c not in colors:
            colors.append(c)
    for c in list(colors):
        for f in (0.2, 0.4, 0.6, 0.8):
            for target in ((0, 0, 0), (255, 255, 255)):
                blend = tuple(int(round(a * (1 - f) + b * f)) for a, b in zip(c, target))
                if blend not in colors:
                    colors.append(blend)
    for g in range(0, 256, 8):
        if (g, g, g) not in colors:
            colors.append((g, g, g))
    return np.array(colors[:256], dtype=np.int64)


def _to_palette(image, palette: np.ndarray):
    """Map every pixel to its exactly nearest palette colour (Pillow's own mapping is approximate)."""
    from PIL import Image

    rgb = np.asarray(image.convert("RGB"), dtype=np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    unique, inverse = np.unique(codes.ravel(), return_inverse=True)
    colors = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1)
    nearest = ((colors[:, None, :] - palette[None, :, :]) ** 2).sum(-1).argmin(1)
    out = Image.fromarray(nearest[inverse].reshape(codes.shape).astype(np.uint8), "P")
    out.putpalette([int(v) for v in palette.ravel()] + [0] * (768 - palette.size))
    return out


def save_gif(images: list, path: str | Path, *, fps: float = 1.5, hold_last: float = 2.0) -> Path:
    """Write frames as a looping GIF (fixed palette, so flat colours are kept exactly)."""
    path = Path(path)
    pal = _palette_image()
    frames_p = [_to_palette(im, pal) for im in images]
    durations = [int(1000 / fps)] * len(frames_p)
    durations[-1] = int(1000 * hold_last)
    frames_p[0].save(path, save_all=True, append_images=frames_p[1:], duration=durations, loop=0,
                     disposal=1, optimize=True)
    return path


def save_grid(images: list, path: str | Path, *, columns: int = 4, max_frames: int = 16,
              anim: Optional[Animation] = None) -> Path:
    """A still PNG: frames tiled in a grid (evenly sampled when there are more than ``max_frames``).

    With ``anim``, a footer gives the operation, the output-size formula and the colour legend
    once for the whole sheet (pass frames rendered with ``compact=True``).
    """
    from PIL import Image, ImageDraw

    if len(images) > max_frames:
        pick = np.unique(np.linspace(0, len(images) - 1, max_frames).round().astype(int))
        images = [images[i] for i in pick]
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    w, h = images[0].size
    footer = 66 if anim is not None else 0
    sheet = Image.new("RGB", (columns * w, rows * h + footer), COLORS["background"])
    for n, im in enumerate(images):
        sheet.paste(im, ((n % columns) * w, (n // columns) * h))
    if anim is not None:
        draw = ImageDraw.Draw(sheet)
        y = rows * h + 4
        name = "conv_transpose" if anim.transposed else "conv"
        draw.text((16, y), f"{name}, {anim.view} view: input {'x'.join(map(str, anim.input_shape))} -> output "
                  f"{'x'.join(map(str, anim.output_shape))}", fill=COLORS["text"], font=_font(13))
        draw.text((16, y + 18), shape_formula(anim.spec, anim.input_shape, anim.transposed)[0],
                  fill=COLORS["text"], font=_font(12))
        _legend(draw, anim, 16, y + 40)
    path = Path(path)
    sheet.save(path)
    return path


# --------------------------------------------------------------------------------------
# Matrix pictures.
# --------------------------------------------------------------------------------------


def _wrap(text: str, font, width: int) -> list[str]:
    """Split ``text`` into lines no wider than ``width`` pixels (a longer single word keeps its own line)."""
    from PIL import Image, ImageDraw

    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and measure.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def _text_width(text: str, font) -> int:
    from PIL import Image, ImageDraw

    return int(np.ceil(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font)))


def matrix_image(dense: np.ndarray, *, rows: Sequence[int] = (), cols: Sequence[int] = (),
                 entries: Sequence[tuple[int, int]] = (), title: str = "", cell: Optional[int] = None):
    """A matrix as a picture: non-zeros grey with their values, a row/column band, active entries orange.

    The title's lines (split at ``\\n``) sit above the matrix; the picture is as wide as the
    wider of the two.
    """
    from PIL import Image, ImageDraw

    dense = np.asarray(dense, dtype=float)
    r_, c_ = dense.shape
    if cell is None:
        cell = int(max(3, min(30, 640 // max(r_, c_))))
    font = _font(14)
    lines = title.split("\n") if title else []
    top = 16 + 18 * max(1, len(lines))
    width = max(c_ * cell, max((_text_width(line, font) for line in lines), default=0)) + 32
    height = r_ * cell + top + 16
    img = Image.new("RGB", (width, height), COLORS["background"])
    draw = ImageDraw.Draw(img)
    lay = Layout(width, height, cell, (0, 0), (0, 0), (0, 0), (0, 0), (16, top), (r_, c_), cell, False, 0)
    _draw_matrix(draw, lay, dense, set(rows), set(cols), set(map(tuple, entries)), None)
    for k, line in enumerate(lines):
        draw.text((16, 24 + 18 * k), line, fill=COLORS["text"], font=font, anchor="ld")
    return img


def _notes_image(lines: Sequence[str], width: int):
    """Paragraphs of small text wrapped to ``width`` pixels, as a picture of that width."""
    from PIL import Image, ImageDraw

    font = _font(13)
    wrapped = [part for line in lines for part in _wrap(line, font, width - 32) + [""]][:-1]
    img = Image.new("RGB", (width, 18 * len(wrapped) + 24), COLORS["background"])
    draw = ImageDraw.Draw(img)
    for k, line in enumerate(wrapped):
        draw.text((16, 12 + 18 * k), line, fill=COLORS["text"], font=font, anchor="la")
    return img


def save_matrix_pair(anim: Animation, path: str | Path, step: int = 0, w: Any = None) -> Path:
    """``C`` and ``C^T`` side by side, the entries of ``anim``'s frame ``step`` highlighted in both.

    A note on what the highlight shows goes under the shorter matrix (or below both when
    neither leaves room), so a wide ``C`` next to its tall transpose leaves no empty corner.
    """
    from PIL import Image

    dense = operator_matrix(anim, w)
    frame = anim.frames[step]
    rows = anim.matrix_rows(frame) if anim.view == "direct" else ()
    cols = anim.matrix_cols(frame) if anim.view == "scatter" else ()
    entries = anim.matrix_entries(frame)
    name, other = ("C^T", "C") if anim.transposed else ("C", "C^T")
    what = f"output {_idx(frame.anchor)}" if anim.view == "direct" else f"input {_idx(frame.anchor)}"
    a = matrix_image(dense, rows=rows, cols=cols, entries=entries,
                     title=f"{name} {dense.shape[0]}x{dense.shape[1]}\n{what} highlighted")
    b = matrix_image(dense.T, rows=cols, cols=rows, entries=[(c, r) for r, c in entries],
                     title=f"{other} {dense.shape[1]}x{dense.shape[0]}\nthe transpose: same entries")
    band = "row" if anim.view == "direct" else "column"
    notes = [
        f"Orange: the {len(entries)} entries of {what}, the kernel taps that meet it; "
        f"its {band} of {name} is the matching {'column' if band == 'row' else 'row'} of {other}.",
        f"Row r of {name} lists what output r reads from the inputs; column c of {name} lists where input c goes.",
        f"{name} @ x.ravel() is {'conv_transpose' if anim.transposed else 'conv'}(x); "
        f"{other} @ y.ravel() is {'conv' if anim.transposed else 'conv_transpose'}(y).",
    ]
    short, tall = (a, b) if a.height <= b.height else (b, a)
    note = _notes_image(notes, short.width)
    if short.height + note.height <= tall.height:  # the note fits under the shorter matrix
        short_with_note = Image.new("RGB", (short.width, tall.height), COLORS["background"])
        short_with_note.paste(short, (0, 0))
        short_with_note.paste(note, (0, short.height))
        a, b = (short_with_note, b) if short is a else (a, short_with_note)
        sheet = Image.new("RGB", (a.width + b.width, tall.height), COLORS["background"])
    else:
        note = _notes_image(notes, a.width + b.width)
        sheet = Image.new("RGB", (a.width + b.width, max(a.height, b.height) + note.height), COLORS["background"])
        sheet.paste(note, (0, max(a.height, b.height)))
    sheet.paste(a, (0, 0))
    sheet.paste(b, (a.width, 0))
    path = Path(path)
    sheet.save(path)
    return path


# --------------------------------------------------------------------------------------
# matplotlib figures.
# --------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save_figure(plt, fig, path: str | Path, dpi: int) -> Path:
    """Lay out, write (trimmed to the drawing) and close a matplotlib figure."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def save_overlap_maps(maps: Sequence[tuple[str, np.ndarray]], path: str | Path) -> Path:
    """Heat maps of overlap maps side by side (numbers in the cells when small) for checkerboard diagnosis."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4.4), squeeze=False)
    for ax, (title, m) in zip(axes[0], maps):
        m = np.atleast_2d(m)
        im = ax.imshow(m, cmap="magma", vmin=0, vmax=max(1, int(m.max())), interpolation="nearest")
        if m.size <= 400:
            for (r, c), v in np.ndenumerate(m):
                ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=7,
                        color="white" if v < 0.6 * m.max() else "black")
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save_figure(plt, fig, path, dpi=80)


def save_image_comparison(images: Sequence[tuple[str, np.ndarray]], path: str | Path, *, crop: Optional[tuple] = None) -> Path:
    """Grey images side by side with their titles (optionally a crop ``(r0, r1, c0, c1)`` of each)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.6), squeeze=False)
    for ax, (title, im) in zip(axes[0], images):
        if crop is not None:
            r0, r1, c0, c1 = crop
            im = im[r0:r1, c0:c1]
        ax.imshow(im, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    return _save_figure(plt, fig, path, dpi=90)
