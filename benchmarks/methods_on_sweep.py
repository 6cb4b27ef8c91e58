"""Every method on every sweep layer: is ``auto``'s pick the fastest? (for re-fitting the cost model)

    PYTHONPATH=src .venv/bin/python benchmarks/methods_on_sweep.py --count 24 --seed 0 [--op conv]

Prints, per layer and direction, each method's time (median of 3 alternating blocks, in ms), auto's
pick and the cost model's estimates, and how much slower auto's pick is than the fastest.
"""

from __future__ import annotations

import argparse

import numpy as np

import transconv as tc
from transconv.bench import SWEEP_GAP_SECONDS, alternating_blocks, layer_calls, sweep_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--op", choices=("conv_transpose", "conv", "both"), default="both")
    args = parser.parse_args()
    losses = []
    for transposed in {"both": (True, False), "conv_transpose": (True,), "conv": (False,)}[args.op]:
        for layer in sweep_layers(args.count, args.seed):
            x, w, _, _, choice = layer_calls(layer, transposed)
            kw = layer.kwargs() if transposed else layer.conv_kwargs()
            run = tc.conv_transpose if transposed else tc.conv
            # every method in alternating blocks after a busy wait, as the sweep times ours against
            # PyTorch: one method's spinning BLAS or OpenMP threads must not slow the next one's
            methods = list(choice.costs)
            blocks = alternating_blocks([lambda m=m: run(x, w, method=m, **kw) for m in methods], 3,
                                        block_seconds=0.03, gap_seconds=SWEEP_GAP_SECONDS)
            times = {m: float(np.median(t)) for m, t in zip(methods, blocks)}
            fastest = min(times, key=times.get)
            loss = times[choice.method] / times[fastest]
            losses.append(loss)
            cells = " ".join(f"{m} {t * 1e3:.2f}/{choice.costs[m] * 1e3:.2f}" for m, t in times.items())
            print(f"{'convT' if transposed else 'conv':5s} {layer.name:44s} auto={choice.method:15s} x{loss:.2f}  {cells}",
                  flush=True)
    print(f"auto within 10% of the fastest on {sum(l <= 1.1 for l in losses)} of {len(losses)}; "
          f"worst x{max(losses):.2f}, median x{np.median(losses):.2f}")


if __name__ == "__main__":
    main()
