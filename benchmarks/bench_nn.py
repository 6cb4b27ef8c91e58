"""transconv.nn layer timings against PyTorch autograd on an FSRCNN-like network.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_nn.py [--threads T] [--repeats R] [--batch N] [--size S]

Layers (float32, batch 16 of 48x48 by default): 1->56 k5, 56->12 k1, 4x 12->12 k3,
12->56 k1, ConvTranspose 56->1 k9 s2 p4 op1.  For each layer three phases are timed:
forward, input gradient and weight gradient (transconv: ``conv`` / ``conv_transpose`` /
``conv_weight_grad``; PyTorch: ``F.conv2d`` / ``torch.nn.grad.conv2d_input`` /
``conv2d_weight`` and the transposed equivalents through ``torch.autograd.grad``).
Both libraries run with the same thread count (BLAS and torch), alternating blocks of
calls; the figure is the median over blocks, printed as ms and as transconv / PyTorch.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

import transconv as tc
from transconv.bench import alternating_blocks

LAYERS = [
    ("conv 1->56 k5", dict(cls="conv", c_in=1, c_out=56, k=5, s=1, p=2, op=0)),
    ("conv 56->12 k1", dict(cls="conv", c_in=56, c_out=12, k=1, s=1, p=0, op=0)),
    ("conv 12->12 k3 (x4)", dict(cls="conv", c_in=12, c_out=12, k=3, s=1, p=1, op=0)),
    ("conv 12->56 k1", dict(cls="conv", c_in=12, c_out=56, k=1, s=1, p=0, op=0)),
    ("convT 56->1 k9 s2", dict(cls="convT", c_in=56, c_out=1, k=9, s=2, p=4, op=1)),
]


def _phases(spec: dict, batch: int, size: int):
    """Callables for (forward, input gradient, weight gradient) of transconv and of PyTorch."""
    rng = np.random.default_rng(0)
    c_in, c_out, k, s, p, op = (spec[key] for key in ("c_in", "c_out", "k", "s", "p", "op"))
    x = rng.standard_normal((batch, c_in, size, size), dtype=np.float32)
    if spec["cls"] == "conv":
        layer = tc.nn.Conv(c_in, c_out, k, s, p, seed=0)
    else:
        layer = tc.nn.ConvTranspose(c_in, c_out, k, s, p, op, seed=0)
    y = layer(x)
    g = rng.standard_normal(y.shape, dtype=np.float32)
    w, b = layer.weight, layer.bias
    xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, g))
    if spec["cls"] == "conv":
        ours = (
            lambda: tc.conv(x, w, b, s, p),
            lambda: tc.conv_transpose(g, w, None, s, p, output_size=x.shape[2:]),
            lambda: tc.conv_weight_grad(x, g, w.shape, s, p),
        )
        theirs = (
            lambda: F.conv2d(xt, wt, bt, s, p),
            lambda: torch.nn.grad.conv2d_input(xt.shape, wt, gt, s, p),
            lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, gt, s, p),
        )
    else:
        ours = (
            lambda: tc.conv_transpose(x, w, b, s, p, op),
            lambda: tc.conv(g, w, None, s, p),
            lambda: tc.conv_weight_grad(x, g, w.shape, s, p, transposed=True, output_padding=op),
        )

        def torch_grad(wrt_input: bool):
            xr = xt.clone().requires_grad_(wrt_input)
            wr = wt.clone().requires_grad_(not wrt_input)
            out = F.conv_transpose2d(xr, wr, None, s, p, op)
            return torch.autograd.grad(out, xr if wrt_input else wr, gt)

        theirs = (
            lambda: F.conv_transpose2d(xt, wt, bt, s, p, op),
            lambda: torch_grad(True),  # includes one forward: PyTorch has no public conv_transpose input-grad
            lambda: torch_grad(False),
        )
    return ours, theirs


def _median_alternating(a, b, repeats: int) -> tuple[float, float]:
    ta, tb = alternating_blocks([a, b], repeats, calls=3)
    return float(np.median(ta)), float(np.median(tb))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=48)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"FSRCNN-like layers, batch {args.batch} of {args.size}x{args.size}, float32, {args.threads} thread(s); "
          f"median ms of {args.repeats} alternating blocks; ratio = transconv / PyTorch")
    print(f"{'layer':22s} {'phase':12s} {'transconv':>10s} {'torch':>10s} {'ratio':>7s}")
    totals = np.zeros(2)
    with threadpool_limits(args.threads):
        for name, spec in LAYERS:
            ours, theirs = _phases(spec, args.batch, args.size)
            for phase, a, b in zip(("forward", "input-grad", "weight-grad"), ours, theirs):
                ta, tb = _median_alternating(a, b, args.repeats)
                count = 4 if "(x4)" in name else 1
                totals += count * np.array([ta, tb])
                print(f"{name:22s} {phase:12s} {ta * 1e3:10.2f} {tb * 1e3:10.2f} {ta / tb:7.2f}")
    print(f"{'whole step':22s} {'':12s} {totals[0] * 1e3:10.2f} {totals[1] * 1e3:10.2f} {totals[0] / totals[1]:7.2f}")


if __name__ == "__main__":
    main()
