"""transconv.dask.apply: one graph step per layer (fuse=False) against the whole model per chunk (fuse=True).

The shipped FSRCNN x2 on one (1, 1, SIZE, SIZE) float32 luminance, Dask's threaded scheduler,
alternating rounds, medians; also the graph's task count and the largest difference from
``model.forward`` on the whole array.

    python benchmarks/bench_dask_fuse.py --size 2048 --chunk 512 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import dask
import dask.array as da
import numpy as np

import transconv.dask as tcd
from transconv.upsample import _resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = _resolve_model(None, args.scale)
    x = np.random.default_rng(0).random((1, 1, args.size, args.size), dtype=np.float32)
    lazy = {fuse: tcd.apply(model, da.from_array(x, chunks=(1, 1, args.chunk, args.chunk)), fuse=fuse)
            for fuse in (False, True)}
    want = model.forward(x)
    times: dict = {"memory": [], False: [], True: []}
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        for fuse in (False, True):
            print(f"fuse={fuse}: {len(lazy[fuse].__dask_graph__())} tasks, largest difference from forward "
                  f"{float(np.abs(lazy[fuse].compute() - want).max()):.2e}")
        for _ in range(args.rounds):
            for key in ("memory", False, True):
                start = time.perf_counter()
                model.forward(x) if key == "memory" else lazy[key].compute()
                times[key].append(time.perf_counter() - start)
    for key in ("memory", False, True):
        label = "in-memory forward" if key == "memory" else f"apply fuse={key}"
        print(f"{label:>20}: {statistics.median(times[key]):7.2f} s  (rounds {', '.join(f'{t:.2f}' for t in times[key])})")


if __name__ == "__main__":
    main()
