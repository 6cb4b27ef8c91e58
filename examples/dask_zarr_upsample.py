"""Up-sample an on-disk Zarr image several times larger than the workers' memory.

A ``(1, channels, size, size)`` float32 image is written to Zarr (chunk by chunk, through the
cluster), then a stride-2 transposed convolution with the bilinear 4x4 kernel
(``transconv.dask.conv_transpose``) streams it into a ``(1, 1, 2 size, 2 size)`` Zarr
output (uncompressed) on a ``dask.distributed.LocalCluster`` whose workers each have ``--memory-limit``
(Dask pauses a worker at 80 % of it and kills it at 95 %).  Prints the wall time, each
worker's peak resident memory (sampled every 10 ms) and checks tiles of the result
against the in-memory operator.

    python examples/dask_zarr_upsample.py --size 16384 --memory-limit 600MB --workers 2

Figures measured on this machine are in docs/dask.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import dask.array as da
import numpy as np

import transconv as tc
import transconv.dask as tcd


def bilinear_kernel(scale: int = 2) -> np.ndarray:
    """The ``2 scale`` square kernel of bilinear up-sampling by ``scale`` (with padding ``scale // 2``)."""
    k = 2 * scale
    ramp = 1 - np.abs(np.arange(k) - (k - 1) / 2) / scale
    return np.outer(ramp, ramp).astype(np.float32)[None, None]


def _start_sampler(dask_worker) -> None:
    """Runs in each worker: record the process's peak resident memory every 10 ms."""
    import psutil

    proc = psutil.Process()
    state = {"peak": proc.memory_info().rss, "run": True}

    def sample():
        while state["run"]:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.01)

    threading.Thread(target=sample, daemon=True).start()
    dask_worker.transconv_peak = state


def _read_peak(dask_worker) -> int:
    state = dask_worker.transconv_peak
    state["run"] = False
    return int(state["peak"])


def upsample_zarr(source: str, target: str, chunk: int = 2048) -> dict:
    """Stream ``source`` (Zarr, ``(N, C, H, W)``) through the bilinear x2 transposed conv into ``target``.

    Every channel is up-sampled on its own (a depthwise transposed conv, ``groups = C``).
    """
    import zarr

    x = da.from_zarr(source)
    c = x.shape[1]
    kernel = np.repeat(bilinear_kernel(2), c, axis=0)
    y = tcd.conv_transpose(x, kernel, stride=2, padding=1, groups=c)
    # output chunks are 2x the input's less the 1-pixel crop at the edges: make them regular for Zarr
    y = y.rechunk((1, c, chunk, chunk))
    out = zarr.create_array(target, shape=y.shape, chunks=y.chunksize, dtype=y.dtype, compressors=None)
    start = time.perf_counter()
    da.store(y, out, lock=False)
    return {"seconds": time.perf_counter() - start, "output_bytes": y.nbytes, "input_bytes": x.nbytes}


def stream(client, directory: str, size: int, channels: int = 1, chunk: int = 1024, check_tiles: int = 4) -> dict:
    """Write a random ``(1, channels, size, size)`` Zarr input through ``client``, up-sample it, report."""
    import zarr

    source, target = os.path.join(directory, "in.zarr"), os.path.join(directory, "out.zarr")
    image = da.random.default_rng(0).standard_normal((1, channels, size, size), chunks=(1, channels, chunk, chunk),
                                                      dtype=np.float32)
    store = zarr.create_array(source, shape=image.shape, chunks=image.chunksize, dtype=image.dtype, compressors=None)
    da.store(image, store, lock=False)
    client.run(_start_sampler)
    report = upsample_zarr(source, target, chunk=2 * chunk)
    report["peak_rss"] = client.run(_read_peak)
    report["max_error"] = check(source, target, check_tiles)
    return report


def run(size: int, memory_limit: str, workers: int, directory: str, channels: int = 1, chunk: int = 1024) -> dict:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, memory_limit=memory_limit) as cluster, Client(cluster) as client:
        return stream(client, directory, size, channels, chunk)


def check(source: str, target: str, tiles: int, tile: int = 256) -> float:
    """Largest difference between tiles of the output and the in-memory operator on the same input region."""
    import zarr

    x, y = zarr.open_array(source, mode="r"), zarr.open_array(target, mode="r")
    n = x.shape[-1]
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(tiles):
        r, c = (int(v) for v in rng.integers(0, n - tile, 2))
        # output rows [2r, 2r + 2 tile) read inputs [r - 1, r + tile + 1): the kernel reaches 2 inputs each way
        r0, c0 = max(0, r - 2), max(0, c - 2)
        r1, c1 = min(n, r + tile + 2), min(n, c + tile + 2)
        kernel = np.repeat(bilinear_kernel(2), x.shape[1], axis=0)
        local = tc.conv_transpose(x[:, :, r0:r1, c0:c1], kernel, stride=2, groups=x.shape[1])  # uncropped
        # local position p holds padded position 2 r0 + p, i.e. output 2 r0 + p - 1
        want = local[:, :, 2 * (r - r0) + 1 : 2 * (r - r0) + 1 + 2 * tile, 2 * (c - c0) + 1 : 2 * (c - c0) + 1 + 2 * tile]
        got = y[:, :, 2 * r : 2 * r + 2 * tile, 2 * c : 2 * c + 2 * tile]
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=16384, help="input side (float32, one channel)")
    parser.add_argument("--memory-limit", default="600MB", help="memory limit of each worker")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=1024, help="input chunk side (the output's is twice)")
    parser.add_argument("--dir", default=None, help="working directory (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        report = run(args.size, args.memory_limit, args.workers, directory, args.channels, args.chunk)
    mb = 2**20
    print(f"input  {report['input_bytes'] / mb:8.0f} MB   output {report['output_bytes'] / mb:8.0f} MB")
    print(f"workers {args.workers} x {args.memory_limit}; peak resident memory per worker: "
          + ", ".join(f"{v / mb:.0f} MB" for v in report["peak_rss"].values()))
    print(f"up-sampling + writing: {report['seconds']:.1f} s "
          f"({report['output_bytes'] / mb / report['seconds']:.0f} MB/s of output)")
    print(f"largest difference from the in-memory operator on sampled tiles: {report['max_error']:.2e}")


if __name__ == "__main__":
    main()
