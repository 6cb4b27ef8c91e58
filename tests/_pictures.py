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
