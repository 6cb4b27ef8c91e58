"""Small calls as one range or split over the cores: ``compiled._one_core`` as it stands against the
split from ``_SERIAL_BELOW`` on (the old rule: no call between it and ``_SPLIT_MACS`` kept on one core).

    PYTHONPATH=src .venv/bin/python benchmarks/split_floor_ab.py [--seeds 0 1 2] [--rounds 7]

On every sweep call (both directions and both weight gradients, ``method="auto"``) whose
decision differs; see ``ab.py``.
"""

from __future__ import annotations

from ab import main


def never(macs: int, data_bytes: int) -> bool:
    return False


if __name__ == "__main__":
    main("_one_core", never, __doc__.splitlines()[0])
