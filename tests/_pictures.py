"""Helpers for the picture tests: the frames' own matrix, and clipped-text checks for figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from transconv.viz.frames import Animation


def dense_matrix(anim: Animation, w: Any) -> np.ndarray:
    """The operation's matrix (``C``, or ``C^T`` when transposed) assembled from the frames' pairs,
    to cross-check :func:`transconv.conv_matrix` (the pictures use the library's matrix)."""
    w = np.asarray(w, dtype=float)
    m = np.zeros(anim.matrix_shape)
    for f in anim.frames:
        for (r, c), (_, t, _) in zip(anim.matrix_entries(f), f.pairs):
            m[r, c] += w[t]
    return m


class TextBoxes:
    """Records the box of every text a picture draws, with the canvas it must fit in.

    Pillow: every ``ImageDraw.text`` call, measured with ``textbbox`` against the image it
    draws on.  matplotlib: every text artist drawn into the saved file, its
    ``get_window_extent(renderer)`` against the renderer's canvas (the figure as saved).
    """

    def __init__(self, monkeypatch):
        import inspect

        from matplotlib.figure import Figure
        from matplotlib.text import Text
        from PIL import ImageDraw

        self.records: list[tuple[str, tuple[float, ...], tuple[float, ...]]] = []
        drawn: list = []
        draw_text, save, matplotlib_draw = ImageDraw.ImageDraw.text, Figure.savefig, Text.draw
        signature = inspect.signature(draw_text)
        measured = ("font", "anchor", "spacing", "align", "direction", "features", "language", "stroke_width")

        def text(draw, *args, **kwargs):
            bound = signature.bind(draw, *args, **kwargs)
            options = {k: v for k, v in bound.arguments.items() if k in measured}
            box = draw.textbbox(bound.arguments["xy"], bound.arguments["text"], **options)
            self.records.append((bound.arguments["text"], tuple(box), (0, 0) + tuple(draw.im.size)))
            return draw_text(draw, *args, **kwargs)

        def text_draw(artist, renderer, *args, **kwargs):
            result = matplotlib_draw(artist, renderer, *args, **kwargs)
            if artist.get_visible() and artist.get_text().strip():
                box = artist.get_window_extent(renderer)
                drawn.append((renderer, artist.get_text(), (box.x0, box.y0, box.x1, box.y1),
                              (0, 0, renderer.width, renderer.height)))
            return result

        def savefig(fig, *args, **kwargs):
            drawn.clear()
            result = save(fig, *args, **kwargs)
            # savefig may lay the figure out with a first renderer (bbox_inches="tight");
            # the file is what the last one drew
            last = drawn[-1][0] if drawn else None
            self.records.extend(record[1:] for record in drawn if record[0] is last)
            return result

        monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
        monkeypatch.setattr(Figure, "savefig", savefig)
        monkeypatch.setattr(Text, "draw", text_draw)

    def assert_inside(self, tolerance: float = 0.5) -> int:
        """Every recorded text lies inside its canvas; returns how many were checked."""
        assert self.records, "no text was drawn: the recording is not hooked into the picture"
        clipped = [
            (text, box, canvas) for text, box, canvas in self.records
            if box[0] < canvas[0] - tolerance or box[1] < canvas[1] - tolerance
            or box[2] > canvas[2] + tolerance or box[3] > canvas[3] + tolerance
        ]
        assert not clipped, f"{len(clipped)} of {len(self.records)} texts cross the picture's edge: {clipped[:5]}"
        return len(self.records)
