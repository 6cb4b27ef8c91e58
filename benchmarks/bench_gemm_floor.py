"""The floor of the ``gemm`` method: its GEMMs alone, as it runs them, nothing else.

    .venv/bin/python benchmarks/bench_gemm_floor.py [M K N BLOCKS]

The default is DCGAN 64x256x8x8 -> 128 (k4 s2 p1): ``gemm`` splits the 64 samples over
the two cores, and each core runs 4 GEMMs of the (C_out * 16) x C_in weight view by a
C_in x (8 samples * 64 positions) block, with single-threaded BLAS.  PyTorch's whole
call takes 14.5-14.9 ms on this machine; when the GEMMs alone take as long, no scatter
can bring the layer under it (README, Speed).  Minimum and median of 7 runs.  The
result is bimodal between processes on this machine (12.4-13.3 or 15.4-15.9 ms, min of 7).
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
from threadpoolctl import threadpool_limits


def gemm_floor(m: int, k: int, n: int, blocks: int, threads: int = 2, repeats: int = 7) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((k, m), dtype=np.float32).T  # a transposed view, as gemm uses it
    columns = [rng.standard_normal((k, n), dtype=np.float32) for _ in range(blocks)]
    results = [np.empty((m, n), np.float32) for _ in range(threads)]

    def work(t: int) -> None:
        for c in columns:
            np.matmul(weight, c, out=results[t])

    times = []
    with threadpool_limits(1, "blas"):
        work(0)
        for _ in range(repeats):
            workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
            start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            times.append(time.perf_counter() - start)
    return min(times) * 1e3, float(np.median(times)) * 1e3


if __name__ == "__main__":
    m, k, n, blocks = (int(a) for a in sys.argv[1:5]) if len(sys.argv) >= 5 else (2048, 256, 512, 4)
    best, median = gemm_floor(m, k, n, blocks)
    flops = 2 * m * k * n * blocks * 2
    print(f"{blocks} GEMMs of {m}x{k}x{n} per core on 2 cores: min {best:.2f} ms, median {median:.2f} ms "
          f"({flops / best / 1e6:.0f} GFLOP/s at the minimum)")
