"""gemm with and without its channels-last data movers, on sweep or suite layers (gapped alternating blocks).

    PYTHONPATH=src .venv/bin/python benchmarks/channels_last_ab.py 1:14C 1:4T 0:5W suite:0C

A layer is ``seed:index`` of the random-layer sweep or ``suite:index`` of the decoder suite,
followed by ``C`` (conv), ``T`` (conv_transpose) or ``W`` (the conv's weight gradient).  Prints
our time in ms without channels-last (``compiled._moves_channels_last`` made to say no) and
with the rule as it stands, and PyTorch's, timed as the sweep times them.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import transconv as tc
from transconv.bench import (SUITE, SWEEP_GAP_SECONDS, _weight_grad_calls, alternating_blocks, layer_calls,
                             sweep_layers)
from transconv.ops import compiled


def main() -> None:
    torch.set_num_threads(compiled.thread_count())
    rule = compiled._moves_channels_last
    for arg in sys.argv[1:] or ["1:14C"]:
        where, what = arg[:-1].split(":"), arg[-1]
        layer = (SUITE if where[0] == "suite" else sweep_layers(24, int(where[0])))[int(where[1])]
        if what == "W":
            x, w, g, _, torch_call, _ = _weight_grad_calls(layer, False)
            run = lambda: tc.conv_weight_grad(x, g, w.shape, method="gemm", **layer.conv_kwargs())  # noqa: E731
            tensors = [torch.from_numpy(a) for a in (x, w, g)]
        else:
            x, w, _, torch_call, _ = layer_calls(layer, what == "T")
            op = tc.conv_transpose if what == "T" else tc.conv
            kwargs = layer.kwargs() if what == "T" else layer.conv_kwargs()
            run = lambda: op(x, w, method="gemm", **kwargs)  # noqa: E731
            tensors = [torch.from_numpy(a) for a in (x, w)]

        def without():
            compiled._moves_channels_last = lambda *args: False
            try:
                return run()
            finally:
                compiled._moves_channels_last = rule

        blocks = alternating_blocks([without, run, lambda: torch_call(*tensors)], 5, block_seconds=0.03,
                                    gap_seconds=SWEEP_GAP_SECONDS)
        old, new, theirs = (float(np.median(b)) * 1e3 for b in blocks)
        print(f"{arg:10s} {layer.name:40s} without {old:8.3f}  with {new:8.3f}  ({new / old:.2f})  PyTorch {theirs:8.3f}",
              flush=True)


if __name__ == "__main__":
    main()
