"""transconv.dask throughput: MB/s of output against the in-memory call, as chunk size and workers grow.

For one transposed-convolution layer (default: 8 -> 8 channels, kernel 4, stride 2,
padding 1, a 1024x1024 float32 image, 128 MB of output) it times the in-memory
``tc.conv_transpose`` and ``transconv.dask.conv_transpose`` on Dask's threaded scheduler
for every (chunk side, workers) pair, alternating the calls in rounds and taking medians.
Columns: output MB/s, time / in-memory time, and the scheduling overhead per chunk,
``(dask time with 1 worker - in-memory time) / chunks``.  Also prints the chunks
``auto_chunks`` picks for the layer.

    python benchmarks/bench_dask.py [--size 1024 --channels 8 --chunks 128 256 512 1024 --workers 1 2 --rounds 3]

``run(args)`` is the entry point ``transconv bench --dask`` calls.
"""

from __future__ import annotations

import argparse
import statistics
import time

import dask
import dask.array as da
import numpy as np

import transconv as tc
import transconv.dask as tcd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=1024, help="image side")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--chunks", type=int, nargs="+", default=[128, 256, 512, 1024], help="input chunk sides")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="threads of the threaded scheduler")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (medians are reported)")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(0)
    c, n = args.channels, args.size
    x = rng.standard_normal((1, c, n, n), dtype=np.float32)
    w = (rng.standard_normal((c, c, 4, 4), dtype=np.float32) / (4 * c)).astype(np.float32)
    kwargs = dict(stride=2, padding=1)
    out_bytes = c * (2 * n) ** 2 * 4
    memory = lambda: tc.conv_transpose(x, w, **kwargs)  # noqa: E731
    memory()  # compile and warm
    lazy = {}
    for side in args.chunks:
        lazy[side] = tcd.conv_transpose(da.from_array(x, chunks=(1, c, side, side)), w, **kwargs)
    times: dict = {"memory": []}
    for _ in range(args.rounds):
        times["memory"].append(_timed(memory))
        for side in args.chunks:
            for workers in args.workers:
                with dask.config.set(scheduler="threads", num_workers=workers):
                    times.setdefault((side, workers), []).append(_timed(lazy[side].compute))
    t_mem = statistics.median(times["memory"])
    mb = 2**20
    print(f"conv_transpose (1, {c}, {n}, {n}) -> (1, {c}, {2 * n}, {2 * n}) float32, kernel 4 stride 2 padding 1; "
          f"output {out_bytes / mb:.0f} MB; medians of {args.rounds} alternating rounds")
    print(f"in-memory: {t_mem * 1e3:8.1f} ms  {out_bytes / mb / t_mem:7.0f} MB/s")
    print(f"{'chunk':>7} {'chunks':>6} {'workers':>7} {'ms':>9} {'MB/s':>7} {'x memory':>9} {'overhead/chunk':>15}")
    for side in args.chunks:
        count = int(np.prod([len(cs) for cs in lazy[side].chunks]))
        one = statistics.median(times[(side, min(args.workers))])
        for workers in args.workers:
            t = statistics.median(times[(side, workers)])
            overhead = f"{(one - t_mem) / count * 1e3:12.2f} ms" if workers == min(args.workers) else ""
            print(f"{side:>7} {count:>6} {workers:>7} {t * 1e3:9.1f} {out_bytes / mb / t:7.0f} {t / t_mem:9.2f} {overhead:>15}")
    auto = tcd.auto_chunks(x.shape, x.dtype, out_bytes)
    print(f"auto_chunks for this layer (64 MB output target): {tuple(cs[0] for cs in auto)} "
          f"({len(auto[2]) * len(auto[3])} chunks)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
