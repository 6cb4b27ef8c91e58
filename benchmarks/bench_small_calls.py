"""Per-call time of tiny calls (the worked example's 4x4 input and 3x3 kernel, and kin) against PyTorch.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_small_calls.py [--processes 5] [--block 2000]

Each case times ``tc.conv`` / ``tc.conv_transpose`` and the matching ``torch.nn.functional``
call (one thread) in alternating blocks of ``--block`` calls, 7 blocks each, in one process;
the per-process medians are collected over ``--processes`` fresh processes and the table
shows their median (microseconds per call, and the ratio ours / PyTorch, the figure that
survives a loaded machine).  ``--one`` runs a single process and prints its JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def cases():
    import numpy as np
    import torch
    import torch.nn.functional as F

    import transconv as tc

    rng = np.random.default_rng(0)

    def arr(*shape, dtype=np.float32):
        return rng.standard_normal(shape).astype(dtype)

    t = torch.from_numpy
    x, y, k = arr(4, 4), arr(2, 2), arr(3, 3)
    xb, yb, kb, b = x[None, None], y[None, None], k[None, None], arr(1)
    xd, yd, kd = xb.astype(np.float64), yb.astype(np.float64), kb.astype(np.float64)
    x1, y1, k1 = arr(1, 1, 16), arr(1, 1, 14), arr(1, 1, 3)
    xs, ks = arr(1, 1, 8, 8), arr(1, 1, 3, 3)
    return {
        "conv 2-d plain f4": (lambda: tc.conv(x, k), lambda: F.conv2d(t(xb), t(kb))),
        "conv_transpose 2-d plain f4": (lambda: tc.conv_transpose(y, k), lambda: F.conv_transpose2d(t(yb), t(kb))),
        "conv 2-d batched f4": (lambda: tc.conv(xb, kb), lambda: F.conv2d(t(xb), t(kb))),
        "conv_transpose 2-d batched f4": (lambda: tc.conv_transpose(yb, kb), lambda: F.conv_transpose2d(t(yb), t(kb))),
        "conv 2-d batched f8": (lambda: tc.conv(xd, kd), lambda: F.conv2d(t(xd), t(kd))),
        "conv_transpose 2-d batched f8": (lambda: tc.conv_transpose(yd, kd), lambda: F.conv_transpose2d(t(yd), t(kd))),
        "conv 2-d bias f4": (lambda: tc.conv(xb, kb, b), lambda: F.conv2d(t(xb), t(kb), t(b))),
        "conv_transpose 2-d bias f4": (lambda: tc.conv_transpose(yb, kb, b),
                                       lambda: F.conv_transpose2d(t(yb), t(kb), t(b))),
        "conv 1-d f4": (lambda: tc.conv(x1, k1), lambda: F.conv1d(t(x1), t(k1))),
        "conv_transpose 1-d f4": (lambda: tc.conv_transpose(y1, k1), lambda: F.conv_transpose1d(t(y1), t(k1))),
        "conv 8x8 padding 1 f4": (lambda: tc.conv(xs, ks, padding=1), lambda: F.conv2d(t(xs), t(ks), padding=1)),
        "conv_transpose 8x8 s2 p1 f4": (lambda: tc.conv_transpose(xs, ks, stride=2, padding=1, output_padding=1),
                                        lambda: F.conv_transpose2d(t(xs), t(ks), stride=2, padding=1,
                                                                   output_padding=1)),
    }


def one_process(block: int, blocks: int = 7) -> dict:
    import torch

    torch.set_num_threads(1)
    result = {}
    for name, (ours, theirs) in cases().items():
        for _ in range(200):
            ours(), theirs()
        times = {"ours": [], "torch": []}
        for _ in range(blocks):
            for side, fn in (("ours", ours), ("torch", theirs)):
                start = time.perf_counter()
                for _ in range(block):
                    fn()
                times[side].append((time.perf_counter() - start) / block)
        result[name] = {side: statistics.median(v) for side, v in times.items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--block", type=int, default=2000)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_process(args.block)))
        return
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--one", "--block", str(args.block)], check=True,
                                      capture_output=True, text=True).stdout) for _ in range(args.processes)]
    print(f"median of {args.processes} processes, {args.block} calls per block, us per call")
    print(f"{'case':32s} {'ours':>7s} {'torch':>7s} {'ratio':>6s}")
    for name in runs[0]:
        ours = statistics.median(r[name]["ours"] for r in runs) * 1e6
        theirs = statistics.median(r[name]["torch"] for r in runs) * 1e6
        ratio = statistics.median(r[name]["ours"] / r[name]["torch"] for r in runs)
        print(f"{name:32s} {ours:7.1f} {theirs:7.1f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
