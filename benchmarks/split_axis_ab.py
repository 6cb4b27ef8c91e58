"""Which axis ``_split`` shares out over the cores: samples whenever there are enough (the old
rule) against samples only where they share out as evenly as the second axis (``compiled._ranges``).

    PYTHONPATH=src .venv/bin/python benchmarks/split_axis_ab.py [--seeds 0 1 2] [--rounds 7]

On every sweep call (both directions and both weight gradients, ``method="auto"``) where the
two rules split differently; see ``ab.py``.
"""

from __future__ import annotations

from ab import main
from transconv.ops import compiled


def samples_first(n: int, units: int, workers: int) -> list:
    if n >= workers:
        return [(a, b, 0, units) for a, b in compiled._bounds(n, workers)]
    return [(0, n, a, b) for a, b in compiled._bounds(units, workers)]


if __name__ == "__main__":
    main("_ranges", samples_first, __doc__.splitlines()[0])
