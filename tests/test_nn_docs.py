"""The training loops of docs/learning.md and of the README run as written and learn."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _loop(page: str) -> str:
    text = (ROOT / page).read_text()
    if page == "README.md":
        text = text.split("## Layers that learn", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, f"{page} has no python block"
    return blocks[0]


@pytest.mark.parametrize("page", ["docs/learning.md", "README.md"])
def test_training_loop_runs_and_learns(capsys, tmp_path, monkeypatch, page):
    loop = _loop(page)
    assert len(loop.strip().splitlines()) <= 20
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(loop, page, "exec"), namespace)
    assert namespace["loss"] < 0.01
    assert "loss after 150 steps" in capsys.readouterr().out
    assert np.isfinite(namespace["model"].state_dict()["2.weight"]).all()
    if "tc.nn.save" in loop:
        import transconv as tc

        again = tc.nn.load(tmp_path / "model.npz")
        x = np.random.default_rng(1).random((2, 1, 12, 12), dtype=np.float32)
        np.testing.assert_array_equal(again(x), namespace["model"](x))
