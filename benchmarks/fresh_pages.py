"""What a fresh NumPy array costs to fill on this machine: transparent huge pages or 4 KB pages,
memory just freed or never used before.

    .venv/bin/python benchmarks/fresh_pages.py [--mb 43] [--calls 12]

Four runs, each in its own process: NumPy's huge-page advice on (its default for arrays of
4 MB and more) or off, and each array freed before the next (the kernel hands back pages it
just took) or kept (every array gets memory the process never touched).  Prints the time to
allocate and fill each array, its minor page faults and the system time.  The large-layer slow
mode of docs/performance.md is the "on, kept" row: the output of a call is such an array.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
import warnings

import numpy as np


def fill(mb: int, calls: int, huge: bool, keep: bool) -> list[tuple[float, int, float]]:
    with warnings.catch_warnings():  # np.core is deprecated as a name, the switch is not
        warnings.simplefilter("ignore")
        np.core.multiarray._set_madvise_hugepage(huge)
    kept, rows = [], []
    for _ in range(calls):
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        a = np.empty(mb * 2**20 // 4, np.float32)
        a.fill(1)
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        rows.append((seconds * 1e3, after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime))
        if keep:
            kept.append(a)
        del a
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=43)
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = fill(args.mb, args.calls, args.child[0] == "on", args.child[1] == "kept")
        print("  ".join(f"{ms:.1f} ms/{faults}/{sys_s * 1e3:.0f}" for ms, faults, sys_s in rows))
        return
    print(f"{args.mb} MB arrays: ms to allocate and fill / minor faults / system ms, per array")
    for huge in ("on", "off"):
        for keep in ("freed", "kept"):
            out = subprocess.run([sys.executable, __file__, "--mb", str(args.mb), "--calls", str(args.calls),
                                  "--child", huge, keep], capture_output=True, text=True, check=True).stdout
            print(f"huge pages {huge:3s}, {keep:5s}: {out.strip()}", flush=True)


if __name__ == "__main__":
    main()
