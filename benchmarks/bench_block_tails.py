"""What a block of calls inherits from the block before it (why the sweep busy-waits between blocks).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_block_tails.py [--seed 0 --layer 23 --op conv_transpose]

Per round: a 30 ms block of something else (PyTorch's call on the same layer, 2-thread
NumPy/OpenBLAS GEMMs, an idle sleep or a busy wait of 0.1 s), then 15 of our calls, each
timed; prints the per-call median over 8 rounds, so the first calls show the other side's
spinning threads (docs/performance.md, "What a block inherits").
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from transconv.bench import layer_calls, sweep_layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layer", type=int, default=23, help="index in the sweep of 24 layers")
    parser.add_argument("--op", choices=("conv_transpose", "conv"), default="conv_transpose")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    import torch

    layer = sweep_layers(24, args.seed)[args.layer]
    x, w, ours, torch_call, choice = layer_calls(layer, args.op == "conv_transpose")
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    a = np.random.default_rng(0).standard_normal((512, 512), dtype=np.float32)

    def busy(seconds: float) -> None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            pass

    before = {
        "torch": lambda: torch_call(xt, wt),
        "openblas": lambda: a @ a,
        "sleep 0.1 s": lambda: time.sleep(0.1),
        "busy 0.1 s": lambda: busy(0.1),
    }
    print(f"{layer.name} {args.op} ({choice.method}): our per-call ms after a block of ...")
    with torch.no_grad():
        for name, other in before.items():
            ours()
            other()
            rows = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                while time.perf_counter() - t0 < 0.03:
                    other()
                calls = []
                for _ in range(15):
                    t1 = time.perf_counter()
                    ours()
                    calls.append((time.perf_counter() - t1) * 1e3)
                rows.append(calls)
            print(f"  {name:12s}", " ".join(f"{v:.2f}" for v in np.median(np.array(rows), axis=0)), flush=True)


if __name__ == "__main__":
    main()
