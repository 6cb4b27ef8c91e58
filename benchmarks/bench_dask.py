"""transconv.dask throughput: MB/s of output against the in-memory call, as chunk size and workers grow.

For one transposed-convolution layer (default: 8 -> 8 channels, kernel 4, stride 2,
padding 1, a 1024x1024 float32 image, 128 MB of output) it times the in-memory
``tc.conv_transpose`` and ``transconv.dask.conv_transpose`` on Dask's threaded scheduler
for every (chunk side, workers) pair, alternating the calls in rounds and taking medians.
Columns: output MB/s, time / in-memory time, and the scheduling overhead per chunk,
``(dask time with 1 worker - in-memory time) / chunks``.  Also prints the chunks
``auto_chunks`` picks for the layer.

    python benchmarks/bench_dask.py [--size 1024 --channels 8 --chunks 128 256 512 1024 --workers 1 2 --rounds 3]

The code is ``transconv.dask.bench`` (``transconv bench --dask``); ``run(args)`` runs it with this script's options.
"""

from __future__ import annotations

import argparse
import sys

from transconv.dask import bench, bench_arguments


def run(args: argparse.Namespace) -> int:
    argv = ["--size", str(args.size), "--channels", str(args.channels), "--rounds", str(args.rounds),
            "--chunks", *map(str, args.chunks), "--workers", *map(str, args.workers)]
    return bench(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
