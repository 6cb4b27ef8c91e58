"""The channels-last scatter's channel blocks: as many channels as the work budget holds (the old
rule) against at least a cache line's run of them (``compiled._channel_block``).

    PYTHONPATH=src .venv/bin/python benchmarks/channel_block_ab.py [--seeds 0 1 2] [--rounds 7]

On every sweep call (both directions and both weight gradients, ``method="auto"``) whose
blocks change; see ``ab.py``.
"""

from __future__ import annotations

from ab import main


def what_fits(channels: int, budget: int, per_channel: int, itemsize: int) -> int:
    return int(max(1, min(channels, budget // per_channel)))


if __name__ == "__main__":
    main("_channel_block", what_fits, __doc__.splitlines()[0])
