"""Small calls as one range or split over the cores: ``compiled.splits`` as it stands against the
split from ``_SERIAL_BELOW`` on (the old rule, as with ``_SPLIT_MACS = 0``).

    PYTHONPATH=src .venv/bin/python benchmarks/split_floor_ab.py [--seeds 0 1 2] [--rounds 7]

On every sweep call (both directions and both weight gradients, ``method="auto"``) whose
decision differs; see ``ab.py``.
"""

from __future__ import annotations

from ab import main
from transconv.ops import compiled


def split_from_serial_floor(macs: int, data_bytes: int) -> bool:
    return not (compiled.SERIAL_ONLY or macs < compiled._SERIAL_BELOW or compiled.ONE_RANGE.get())


if __name__ == "__main__":
    main("splits", split_from_serial_floor, __doc__.splitlines()[0])
