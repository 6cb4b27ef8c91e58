"""Work-buffer floors against peak memory: the sweep's forward layers whose peak extra memory passes
2x the output, timed and measured with the default floors and with none (``compiled._WORKER_FLOOR``,
``_PARALLEL_FLOOR``, ``weight_grad._COLUMN_FLOOR`` at 0), in gapped alternating blocks.

    PYTHONPATH=src .venv/bin/python benchmarks/memory_floors.py results/memory_floors_2026-12-01.json
"""
import glob
import json
import sys
from pathlib import Path

import numpy as np
import transconv as tc
from transconv.bench import SWEEP_GAP_SECONDS, alternating_blocks, layer_calls, sweep_layers, with_peak_bytes
from transconv.ops import compiled, weight_grad

RESULTS = Path(__file__).parent / 'results'
DEFAULT = (compiled._WORKER_FLOOR, compiled._PARALLEL_FLOOR, weight_grad._COLUMN_FLOOR)
def floors(values):
    compiled._WORKER_FLOOR, compiled._PARALLEL_FLOOR, weight_grad._COLUMN_FLOOR = values
LEAN = (0, 0, 0)
todo = []
for f in sorted(glob.glob(str(RESULTS / 'sweep_2026-12-01i_seed*_run1.json'))):
    seed = int(f.split('seed')[1][0])
    for r in json.load(open(f))['rows']:
        if r['op'] in ('conv_transpose', 'conv') and r['extra_memory_x_output'] > 2:
            todo.append((seed, int(r['layer'].split()[0][1:]), r['op'] == 'conv_transpose'))
out = []
for seed, index, transposed in todo:
    layer = sweep_layers(24, seed)[index]
    x, w, ours, torch_call, choice = layer_calls(layer, transposed)
    mem = {}
    ours()  # compile and build the tables first: tracemalloc would count the compiler's allocations
    for name, v in (("default", DEFAULT), ("lean", LEAN)):
        floors(v); res, peak = with_peak_bytes(ours); mem[name] = max(0, peak - res.nbytes) / res.nbytes
    floors(DEFAULT)
    def run(v):
        def f():
            floors(v)
            try:
                ours()
            finally:
                floors(DEFAULT)
        return f
    blocks = alternating_blocks([run(DEFAULT), run(LEAN)], 5, block_seconds=0.03, gap_seconds=SWEEP_GAP_SECONDS)
    d, l = (float(np.median(b)) for b in blocks)
    out.append(dict(seed=seed, layer=layer.name, transposed=transposed, method=choice.method, default_ms=d * 1e3, lean_ms=l * 1e3,
                    mem_default=mem["default"], mem_lean=mem["lean"]))
    print(f"seed {seed} {layer.name:36s} {'convT' if transposed else 'conv ':5s} {choice.method:15s} default {d*1e3:8.3f} ms mem {mem['default']:5.1f}x | lean {l*1e3:8.3f} ms mem {mem['lean']:5.1f}x | time lean/default {l/d:.2f}", flush=True)
json.dump(out, open(sys.argv[1], 'w'), indent=1)
