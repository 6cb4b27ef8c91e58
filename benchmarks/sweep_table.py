"""Markdown tables from ``transconv bench --sweep ... --json`` output (for docs/performance.md).

    python benchmarks/sweep_table.py benchmarks/results/sweep_seed0.json [more.json ...]
"""

from __future__ import annotations

import json
import sys


def table(path: str) -> str:
    data = json.load(open(path))
    rows = data["rows"]
    ops = [op for op in ("conv_transpose", "conv", "conv_transpose_weight_grad", "conv_weight_grad")
           if any(r["op"] == op for r in rows)]
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    by = {(r["layer"], r["op"]): r for r in rows}
    head = "| layer | " + " | ".join(f"{op} (method)" for op in ops) + " |"
    lines = [f"Seed {data['seed']}: `transconv bench --sweep {data.get('count', len(layers))} --seed {data['seed']}`",
             "", head, "|---|" + "---:|" * len(ops)]
    for layer in layers:
        cells = []
        for op in ops:
            r = by.get((layer, op))
            cells.append("" if r is None else f"{r['ratio_nchw']:.2f} ({r['method']}, mem {r['extra_memory_x_output']:.1f}x)")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    for op, s in data["summary"].items():
        lines.append(f"| **{op}** median / worst / at or under 1.0 | **{s['median']:.2f} / {s['worst']:.2f} / "
                     f"{s['at_or_under_1']} of {s['layers']}** |" + " |" * (len(ops) - 1))
    return "\n".join(lines)


if __name__ == "__main__":
    print("\n\n".join(table(p) for p in sys.argv[1:]))
