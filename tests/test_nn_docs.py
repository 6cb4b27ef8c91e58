"""docs/learning.md's training loop runs as written and learns."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

DOC = Path(__file__).resolve().parents[1] / "docs" / "learning.md"


def test_training_loop_in_docs_runs_and_learns(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/learning.md has no python block"
    loop = blocks[0]
    assert len(loop.strip().splitlines()) <= 20
    namespace: dict = {}
    exec(compile(loop, str(DOC), "exec"), namespace)
    assert namespace["loss"] < 0.01
    assert "loss after 150 steps" in capsys.readouterr().out
    assert np.isfinite(namespace["model"].state_dict()["2.weight"]).all()
