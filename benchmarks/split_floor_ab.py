"""Small calls as one range or split over the cores: ``compiled.splits`` as it stands against the
split from ``_SERIAL_BELOW`` on (``_SPLIT_MACS = 0``), on every sweep call whose decision differs.

    PYTHONPATH=src .venv/bin/python benchmarks/split_floor_ab.py [--seeds 0 1 2] [--rounds 7]

Both directions and both weight gradients, ``method="auto"``, gapped alternating blocks as the
sweep times them; prints both times in ms, their ratio and PyTorch's time.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from transconv.bench import SWEEP_GAP_SECONDS, _weight_grad_calls, alternating_blocks, layer_calls, sweep_layers
from transconv.ops import compiled

SPLITS = compiled.splits
NOW = compiled._SPLIT_MACS


def with_floor(split_macs: int, fn):
    def run():
        compiled._SPLIT_MACS = split_macs
        try:
            return fn()
        finally:
            compiled._SPLIT_MACS = NOW
    return run


def differs(fn) -> bool:
    """Whether any ``splits`` decision of ``fn``'s call changes with the floor at 0."""
    seen = []

    def spy(macs, data_bytes):
        compiled._SPLIT_MACS = 0
        old = SPLITS(macs, data_bytes)
        compiled._SPLIT_MACS = NOW
        seen.append(old != SPLITS(macs, data_bytes))
        return SPLITS(macs, data_bytes)

    compiled.splits = spy
    try:
        fn()
    finally:
        compiled.splits = SPLITS
    return any(seen)


def calls(layer):
    for transposed in (True, False):
        x, w, ours, torch_call, _ = layer_calls(layer, transposed)
        tensors = [torch.from_numpy(a) for a in (x, w)]
        yield ("T" if transposed else "C"), ours, lambda t=torch_call, a=tensors: t(*a)
        x, w, g, ours, torch_call, _ = _weight_grad_calls(layer, transposed)
        tensors = [torch.from_numpy(a) for a in (x, w, g)]
        yield ("dW T" if transposed else "dW C"), ours, lambda t=torch_call, a=tensors: t(*a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(compiled.thread_count())
    ratios = []
    for seed in args.seeds:
        for layer in sweep_layers(24, seed):
            for what, ours, theirs in calls(layer):
                if not differs(ours):
                    continue
                blocks = alternating_blocks([with_floor(0, ours), ours, theirs], args.rounds, block_seconds=0.03,
                                            gap_seconds=SWEEP_GAP_SECONDS)
                old, new, pytorch = (float(np.median(b)) * 1e3 for b in blocks)
                ratios.append(new / old)
                print(f"seed {seed} {what:4s} {layer.name:40s} split {old:8.3f}  one range {new:8.3f}  ({new / old:.2f})  "
                      f"PyTorch {pytorch:8.3f}", flush=True)
    if ratios:
        print(f"{len(ratios)} calls: geometric mean {np.exp(np.mean(np.log(ratios))):.3f}, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}")


if __name__ == "__main__":
    main()
