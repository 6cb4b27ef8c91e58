"""Command-line interface (placeholder: the worked example only; the full CLI is issue 5)."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import conv, conv_transpose

X = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]], dtype=float)
K = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]], dtype=float)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transconv")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the worked example end to end")
    demo.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.command == "demo":
        print("conv(x, k) =\n", conv(X, K))
        print("conv_transpose([[2,1],[4,4]], k) =\n", conv_transpose([[2, 1], [4, 4]], K))
    return 0


if __name__ == "__main__":
    sys.exit(main())
