"""Markdown tables from ``transconv bench --sweep ... --json`` output (for docs/performance.md).

    python benchmarks/sweep_table.py benchmarks/results/sweep_seed0.json [more.json ...]
    python benchmarks/sweep_table.py --summary run1_seed0.json run2_seed0.json ... run3_seed2.json

Several files of one seed (separate processes: PyTorch is bimodal between processes on
some machines) are combined layer by layer: the median of the per-process ratios, and the
largest memory.  ``--summary`` prints one line per seed and operation instead of the
per-layer tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

from transconv.bench import sweep_summary as summary

OPS = ("conv_transpose", "conv", "conv_transpose_weight_grad", "conv_weight_grad")


def combine(paths: list[str]) -> dict[int, dict]:
    """``{seed: {"count", "runs", "rows"}}``, one row per (layer, op): median ratio over the files."""
    by_seed: dict[int, list[dict]] = defaultdict(list)
    for path in paths:
        data = json.load(open(path))
        by_seed[data["seed"]].append(data)
    combined = {}
    for seed, runs in sorted(by_seed.items()):
        cells: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for data in runs:
            for r in data["rows"]:
                cells[(r["layer"], r["op"])].append(r)
        rows = []
        for (layer, op), rs in cells.items():
            rows.append({"layer": layer, "op": op, "method": rs[0]["method"],
                         "ratio_nchw": statistics.median(r["ratio_nchw"] for r in rs),
                         "ratios": [r["ratio_nchw"] for r in rs],
                         "extra_memory_x_output": max(r["extra_memory_x_output"] for r in rs)})
        combined[seed] = {"count": runs[0].get("count"), "runs": len(runs), "rows": rows}
    return combined


def table(seed: int, data: dict) -> str:
    rows = data["rows"]
    ops = [op for op in OPS if any(r["op"] == op for r in rows)]
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    by = {(r["layer"], r["op"]): r for r in rows}
    head = "| layer | " + " | ".join(f"{op} (method)" for op in ops) + " |"
    lines = [f"Seed {seed}: `transconv bench --sweep {data['count']} --seed {seed} --json`, median of {data['runs']} "
             "processes", "", head, "|---|" + "---:|" * len(ops)]
    for layer in layers:
        cells = []
        for op in ops:
            r = by.get((layer, op))
            cells.append("" if r is None else f"{r['ratio_nchw']:.2f} ({r['method']}, mem {r['extra_memory_x_output']:.1f}x)")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    for op, s in summary(rows).items():
        lines.append(f"| **{op}** median / worst / at or under 1.0 | **{s['median']:.2f} / {s['worst']:.2f} / "
                     f"{s['at_or_under_1']} of {s['layers']}** |" + " |" * (len(ops) - 1))
    return "\n".join(lines)


def summary_table(combined: dict[int, dict]) -> str:
    lines = ["| seed | operation | median | worst (layer) | at or under 1.0 | peak extra memory |",
             "|---|---|---:|---|---:|---:|"]
    for seed, data in combined.items():
        for op, s in summary(data["rows"]).items():
            lines.append(f"| {seed} | {op} | {s['median']:.2f} | {s['worst']:.2f} ({s['worst_layer']}) | "
                         f"{s['at_or_under_1']} of {s['layers']} | {s['max_mem_x_output']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="JSON files of `transconv bench --sweep N --seed S --json`")
    parser.add_argument("--summary", action="store_true", help="one line per seed and operation")
    args = parser.parse_args()
    combined = combine(args.files)
    if args.summary:
        print(summary_table(combined))
    else:
        print("\n\n".join(table(seed, data) for seed, data in combined.items()))


if __name__ == "__main__":
    main()
