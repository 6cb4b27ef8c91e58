"""Build time and memory of the sparse convolution matrix C.

    .venv/bin/python benchmarks/bench_matrix.py

Peak memory is tracemalloc's peak of Python/numpy allocations during the build; the
result's own size (data + indices + indptr) is reported beside it.
"""

from __future__ import annotations

import numpy as np

import transconv as tc
from transconv.bench import best_time, with_peak_bytes

CASES = [
    ("1x1 ch, 1024x1024, 3x3, no padding", np.ones((3, 3), np.float32), (1024, 1024), {}),
    ("64->64 ch, 32x32, 3x3, padding 1", np.random.default_rng(0).standard_normal((64, 64, 3, 3)).astype(np.float32),
     (32, 32), {"padding": 1}),
    ("64->64 ch, 32x32, 3x3, reflect", np.random.default_rng(0).standard_normal((64, 64, 3, 3)).astype(np.float32),
     (32, 32), {"padding": 1, "padding_mode": "reflect"}),
    ("transpose 64->32 ch, 16x16 -> 32x32, k4 s2 p1", np.random.default_rng(0).standard_normal((64, 32, 4, 4)).astype(np.float32),
     (16, 16), {"stride": 2, "padding": 1, "transposed": True}),
]


def main() -> None:
    print(f"{'case':48s} {'shape':>24s} {'nnz':>11s} {'build s':>8s} {'result MB':>10s} {'peak MB':>9s}")
    for name, w, shape, kwargs in CASES:
        kwargs = dict(kwargs)
        build = tc.conv_transpose_matrix if kwargs.pop("transposed", False) else tc.conv_matrix
        seconds = best_time(lambda: build(w, shape, **kwargs), 3)  # after a warm-up of the connectivity cache
        C, peak = with_peak_bytes(lambda: build(w, shape, **kwargs))
        size = (C.data.nbytes + C.indices.nbytes + C.indptr.nbytes) / 2**20
        print(f"{name:48s} {str(C.shape):>24s} {C.nnz:>11,d} {seconds:8.3f} {size:10.1f} {peak / 2**20:9.1f}")


if __name__ == "__main__":
    main()
