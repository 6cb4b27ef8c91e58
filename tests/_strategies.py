"""Hypothesis strategies for random convolution specs, shared by the test modules."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st


@dataclass(frozen=True)
class Case:
    """One random call: shapes and geometry, valid for both conv and conv_transpose."""

    ndim: int
    batch: int | None  # None = unbatched
    groups: int
    c_in: int  # channels of the conv input (= transposed output)
    c_out: int  # channels of the conv output (= transposed input)
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    small: tuple[int, ...]  # spatial shape of the transposed input
    dtype: str
    bias: bool
    seed: int

    @property
    def big(self) -> tuple[int, ...]:
        """Spatial shape of the transposed output (= the conv input)."""
        return tuple(
            (i - 1) * s - 2 * p + d * (k - 1) + 1 + a
            for i, s, p, d, k, a in zip(self.small, self.stride, self.padding, self.dilation, self.kernel, self.output_padding)
        )

    def arrays(self, transposed: bool):
        rng = np.random.default_rng(self.seed)
        lead = () if self.batch is None else (self.batch,)
        if transposed:
            x = rng.standard_normal(lead + (self.c_out,) + self.small)
            w = rng.standard_normal((self.c_out, self.c_in // self.groups) + self.kernel)
            b = rng.standard_normal(self.c_in) if self.bias else None
        else:
            x = rng.standard_normal(lead + (self.c_in,) + self.big)
            w = rng.standard_normal((self.c_out, self.c_in // self.groups) + self.kernel)
            b = rng.standard_normal(self.c_out) if self.bias else None
        cast = np.dtype(self.dtype)
        return x.astype(cast), w.astype(cast), None if b is None else b.astype(cast)


@st.composite
def cases(draw, max_ndim: int = 3, dtypes=("float32", "float64")) -> Case:
    ndim = draw(st.integers(1, max_ndim))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in = groups * draw(st.integers(1, 3))
    c_out = groups * draw(st.integers(1, 3))
    per_axis = lambda lo, hi: tuple(draw(st.integers(lo, hi)) for _ in range(ndim))  # noqa: E731
    max_size = {1: 9, 2: 6, 3: 4}[ndim]
    kernel = per_axis(1, 4 if ndim < 3 else 3)
    stride = per_axis(1, 3)
    dilation = per_axis(1, 2)
    small = per_axis(1, max_size)
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    padding = []
    for i, s, d, k, a in zip(small, stride, dilation, kernel, output_padding):
        full = (i - 1) * s + d * (k - 1) + 1 + a
        padding.append(draw(st.integers(0, max(0, min(3, (full - 1) // 2)))))
    batch = draw(st.sampled_from([None, 1, 2, 3]))  # 3: blocks of 2 samples leave a short last one
    return Case(
        ndim, batch, groups, c_in, c_out, kernel, stride, dilation, tuple(padding), output_padding,
        small, draw(st.sampled_from(dtypes)), draw(st.booleans()), draw(st.integers(0, 2**31)),
    )


def tolerance(dtype, x, w, b=None) -> dict:
    """rtol per dtype; atol scaled to the largest sum of |products| one output can accumulate."""
    rtol = 1e-5 if np.dtype(dtype) == np.float32 else 1e-12
    w_abs = np.abs(np.asarray(w, dtype=float))
    w_abs = w_abs.reshape(w_abs.shape[:2] + (-1,)) if w_abs.ndim > 2 else w_abs.reshape(1, 1, -1)
    per_output = max(w_abs.sum(axis=(1, 2)).max(), w_abs.sum(axis=(0, 2)).max())
    bound = float(np.abs(x).max(initial=0.0)) * per_output + (0.0 if b is None else float(np.abs(b).max()))
    return dict(rtol=rtol, atol=rtol * max(bound, 1.0))
