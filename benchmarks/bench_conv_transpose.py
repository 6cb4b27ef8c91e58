"""The decoder-layer suite of issue 4 against PyTorch, in one process.

    .venv/bin/python benchmarks/bench_conv_transpose.py            # full suite, table
    .venv/bin/python benchmarks/bench_conv_transpose.py --quick    # a one-minute subset
    .venv/bin/python benchmarks/bench_conv_transpose.py --json     # for tracking
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_conv_transpose.py

Same as ``transconv bench``; all options are those of ``transconv.bench.add_arguments``.
"""

from __future__ import annotations

from transconv.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
