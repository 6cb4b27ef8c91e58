"""The conv_transpose scatter's channels-last rule against the gather's, on every sweep layer
where they decide differently (``gemm`` forced).

    PYTHONPATH=src .venv/bin/python benchmarks/scatter_rule_ab.py [--seeds 0 1 2] [--rounds 7]

The old rule is ``compiled._moves_channels_last`` as the gather uses it; the new one
``compiled._scatters_channels_last``; see ``ab.py``.
"""

from __future__ import annotations

from ab import main
from transconv.ops import compiled


def gather_rule(mode, channels, small, big, taps, weight_bytes, merged):
    return compiled._moves_channels_last(mode, channels, small, big, taps, weight_bytes)


if __name__ == "__main__":
    main("_scatters_channels_last", gather_rule, __doc__.splitlines()[0], ops=("T",), method="gemm")
