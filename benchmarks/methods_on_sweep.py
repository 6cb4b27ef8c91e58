"""Every method on every sweep layer: is ``auto``'s pick the fastest? (for re-fitting the cost model)

    PYTHONPATH=src .venv/bin/python benchmarks/methods_on_sweep.py --count 24 --seed 0 [--op conv] [--layers 5 13]
    PYTHONPATH=src .venv/bin/python benchmarks/methods_on_sweep.py --suite --json results/methods_suite.json
    PYTHONPATH=src .venv/bin/python benchmarks/methods_on_sweep.py --replay results/methods_*.json

Prints, per layer and direction, each method's time (median of 3 alternating blocks, in ms) over
the cost model's estimate, PyTorch's time, auto's pick, and how much slower auto's pick is than
the fastest.  ``--json`` also saves the times; ``--replay`` times nothing and re-scores the cost
model as it stands now against saved times (the loop for changing the model: a change that
moves a pick can be judged on every saved layer in seconds).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import transconv as tc
from transconv.bench import SUITE, SWEEP_GAP_SECONDS, alternating_blocks, layer_calls, sweep_layers
from transconv.ops import compiled


def _layers(source: str, count: int) -> list:
    return SUITE if source == "suite" else sweep_layers(count, int(source.split(":")[1]))


def _choice(record: dict):
    """What ``auto`` picks now for a record's layer and direction."""
    layer, transposed = _layers(record["source"], record.get("count", 24))[record["index"]], record["transposed"]
    return tc.choose_method(layer.input_shape(transposed), layer.weight_shape, transposed=transposed,
                            **layer.call_kwargs(transposed))


def measure(source: str, count: int, op: str, only: list[int] | None) -> list[dict]:
    import torch

    torch.set_num_threads(compiled.thread_count())
    records = []
    for transposed in {"both": (True, False), "conv_transpose": (True,), "conv": (False,)}[op]:
        for index, layer in enumerate(_layers(source, count)):
            if only and index not in only:
                continue
            x, w, _, torch_call, choice = layer_calls(layer, transposed)
            tensors = [torch.from_numpy(a) for a in (x, w)]
            kw = layer.call_kwargs(transposed)
            run = tc.conv_transpose if transposed else tc.conv
            # every method in alternating blocks after a busy wait, as the sweep times ours against
            # PyTorch: one method's spinning BLAS or OpenMP threads must not slow the next one's
            methods = list(choice.costs)
            blocks = alternating_blocks([lambda m=m: run(x, w, method=m, **kw) for m in methods]
                                        + [lambda: torch_call(*tensors)], 3,
                                        block_seconds=0.03, gap_seconds=SWEEP_GAP_SECONDS)
            record = {"source": source, "count": count, "index": index, "name": layer.name, "transposed": transposed,
                      "pytorch": float(np.median(blocks[-1])),
                      "times": {m: float(np.median(t)) for m, t in zip(methods, blocks)}}
            records.append(record)
            _report(record, choice, flush=True)
    return records


def _loss(record: dict, choice) -> float:
    """How much slower ``choice``'s pick is than the record's fastest method."""
    return record["times"][choice.method] / min(record["times"].values())


def _report(record: dict, choice, flush: bool = False) -> None:
    times, loss = record["times"], _loss(record, choice)
    cells = " ".join(f"{m} {t * 1e3:.2f}/{choice.costs.get(m, float('nan')) * 1e3:.2f}" for m, t in times.items())
    print(f"{'convT' if record['transposed'] else 'conv':5s} {record['name']:44s} auto={choice.method:15s} "
          f"x{loss:.2f}  PyTorch {record['pytorch'] * 1e3:.2f}  {cells}", flush=flush)


def replay(paths: list[str], worse_than: float) -> list[float]:
    losses = []
    for path in paths:
        for record in json.loads(open(path).read()):
            choice = _choice(record)
            losses.append(_loss(record, choice))
            if losses[-1] > worse_than:
                print(f"{record['source']:7s}", end=" ")
                _report(record, choice)
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--suite", action="store_true", help="the decoder suite's layers instead of the sweep's")
    parser.add_argument("--op", choices=("conv_transpose", "conv", "both"), default="both")
    parser.add_argument("--layers", type=int, nargs="*", help="only these layer indices")
    parser.add_argument("--json", metavar="PATH", help="also save the measured times here")
    parser.add_argument("--replay", metavar="PATH", nargs="+", help="re-score auto against saved times instead")
    parser.add_argument("--worse-than", type=float, default=1.1, help="--replay: show picks this much slower")
    args = parser.parse_args()
    if args.replay:
        losses = replay(args.replay, args.worse_than)
    else:
        source = "suite" if args.suite else f"seed:{args.seed}"
        records = measure(source, args.count, args.op, args.layers)
        losses = [_loss(r, _choice(r)) for r in records]
        if args.json:
            with open(args.json, "w") as f:
                json.dump(records, f, indent=1)
    losses = np.array(losses)
    print(f"auto within 10% of the fastest on {int((losses <= 1.1).sum())} of {len(losses)}; worst x{losses.max():.2f}, "
          f"median x{np.median(losses):.2f}, geometric mean x{np.exp(np.log(losses).mean()):.3f}")


if __name__ == "__main__":
    main()
