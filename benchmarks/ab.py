"""A decision of the compiled methods as it stands against an old one, on every sweep call
where the two decide differently: the shared part of the ``*_ab.py`` harnesses.

A decision is a function of ``transconv.ops.compiled`` (``splits``, ``_ranges``,
``_scatters_channels_last``); the harness passes the old version.  Each call runs once with
the decision spied on, to find whether old and new differ on any of its arguments; where they
do, the call is timed under the old version, under the new, and PyTorch's, in gapped
alternating blocks as the sweep times them.  Prints both times in ms, their ratio and
PyTorch's time, then the geometric mean of the ratios.
"""

from __future__ import annotations

import argparse
from typing import Callable, Iterator

import numpy as np
import torch

import transconv as tc
from transconv.bench import SWEEP_GAP_SECONDS, _weight_grad_calls, alternating_blocks, layer_calls, sweep_layers
from transconv.ops import compiled

OPS = ("T", "C", "dW T", "dW C")


def sweep_calls(layer, ops=OPS, method: str = "auto") -> Iterator[tuple[str, Callable, Callable]]:
    """``(op, ours, theirs)`` for the layer's conv_transpose (``T``), mirrored conv (``C``) and
    their weight gradients (``dW T``, ``dW C``, always ``method="auto"``)."""
    for what in ops:
        transposed = what.endswith("T")
        if what.startswith("dW"):
            x, w, g, ours, torch_call, _ = _weight_grad_calls(layer, transposed)
            tensors = [torch.from_numpy(a) for a in (x, w, g)]
        else:
            x, w, _, torch_call, _ = layer_calls(layer, transposed)
            op, kwargs = (tc.conv_transpose, layer.kwargs()) if transposed else (tc.conv, layer.conv_kwargs())
            ours = lambda op=op, x=x, w=w, kwargs=kwargs: op(x, w, method=method, **kwargs)  # noqa: E731
            tensors = [torch.from_numpy(a) for a in (x, w)]
        yield what, ours, lambda t=torch_call, a=tensors: t(*a)


def under(name: str, version: Callable, fn: Callable) -> Callable:
    """``fn`` run with ``compiled.<name>`` replaced by ``version``."""
    def run():
        saved = getattr(compiled, name)
        setattr(compiled, name, version)
        try:
            return fn()
        finally:
            setattr(compiled, name, saved)
    return run


def differs(name: str, old: Callable, fn: Callable) -> bool:
    """Whether the old and the current ``compiled.<name>`` answer differently anywhere in ``fn()``."""
    new, seen = getattr(compiled, name), []

    def spy(*args):
        seen.append(old(*args) != new(*args))
        return new(*args)

    under(name, spy, fn)()
    return any(seen)


def main(name: str, old: Callable, description: str, ops=OPS, method: str = "auto") -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(compiled.thread_count())
    ratios = []
    for seed in args.seeds:
        for layer in sweep_layers(24, seed):
            for what, ours, theirs in sweep_calls(layer, ops, method):
                if not differs(name, old, ours):
                    continue
                blocks = alternating_blocks([under(name, old, ours), ours, theirs], args.rounds, block_seconds=0.03,
                                            gap_seconds=SWEEP_GAP_SECONDS)
                a, b, pytorch = (float(np.median(t)) * 1e3 for t in blocks)
                ratios.append(b / a)
                print(f"seed {seed} {what:4s} {layer.name:40s} old {a:8.3f}  new {b:8.3f}  ({b / a:.2f})  "
                      f"PyTorch {pytorch:8.3f}", flush=True)
    if ratios:
        print(f"{len(ratios)} calls: geometric mean {np.exp(np.mean(np.log(ratios))):.3f}, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}")
