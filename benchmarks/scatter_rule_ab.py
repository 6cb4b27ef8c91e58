"""The conv_transpose scatter's channels-last rule against the gather's, on every sweep layer
where they decide differently (gapped alternating blocks, ``gemm`` forced).

    PYTHONPATH=src .venv/bin/python benchmarks/scatter_rule_ab.py [--seeds 0 1 2] [--rounds 9]

The old rule is ``compiled._moves_channels_last`` as the gather uses it; the new one
``compiled._scatters_channels_last``.  Prints both times in ms and PyTorch's.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import transconv as tc
from transconv.bench import SWEEP_GAP_SECONDS, alternating_blocks, layer_calls, sweep_layers
from transconv.ops import compiled

NEW = compiled._scatters_channels_last


def old(mode, channels, small, big, taps, weight_bytes, merged):
    return compiled._moves_channels_last(mode, channels, small, big, taps, weight_bytes)


def decisions(x, w, kwargs) -> tuple[bool, bool]:
    """(old rule, new rule) for this call, with the planes' ``merged`` the call itself sees."""
    seen = []

    def spy(*args):
        seen.append((old(*args), NEW(*args)))
        return NEW(*args)

    compiled._scatters_channels_last = spy
    try:
        tc.conv_transpose(x, w, method="gemm", **kwargs)
    finally:
        compiled._scatters_channels_last = NEW
    return seen[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(compiled.thread_count())
    for seed in args.seeds:
        for index, layer in enumerate(sweep_layers(24, seed)):
            x, w, _, torch_call, _ = layer_calls(layer, True)
            kwargs = layer.kwargs()
            if len(set(decisions(x, w, kwargs))) == 1:
                continue
            tensors = [torch.from_numpy(a) for a in (x, w)]

            def under(rule):
                def run():
                    compiled._scatters_channels_last = rule
                    try:
                        return tc.conv_transpose(x, w, method="gemm", **kwargs)
                    finally:
                        compiled._scatters_channels_last = NEW
                return run

            blocks = alternating_blocks([under(old), under(NEW), lambda: torch_call(*tensors)], args.rounds,
                                        block_seconds=0.03, gap_seconds=SWEEP_GAP_SECONDS)
            a, b, theirs = (float(np.median(t)) * 1e3 for t in blocks)
            print(f"seed {seed} {layer.name:40s} old {a:8.3f}  new {b:8.3f}  ({b / a:.2f})  PyTorch {theirs:8.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
