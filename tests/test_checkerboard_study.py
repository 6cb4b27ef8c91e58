"""benchmarks/checkerboard_study.py: its head-as-one-transposed-convolution identity (which the
overlap maps are drawn from) and a tiny end-to-end run that writes the table and the picture."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import transconv as tc
from transconv.train import HEADS, fsrcnn

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "checkerboard_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("checkerboard_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _randomise_head(net, seed=0):
    up = [layer for layer in net if hasattr(layer, "kernel_size")][-1]
    rng = np.random.default_rng(seed)
    for v in up.params.values():
        v[...] = rng.standard_normal(v.shape)
    return rng


@pytest.mark.parametrize("head, scale", [(h, 2) for h in HEADS] + [("k9", 3), ("resize", 3), ("icnr", 3)])
def test_head_equals_its_equivalent_transposed_convolution(study, head, scale):
    """Every head, with random weights and biases (phases unlike each other), is one transposed
    convolution of its input features plus a bias per output phase."""
    net = fsrcnn(scale, 6, 3, 1, seed=1, head=head)
    rng = _randomise_head(net)
    x = rng.random((2, 1, 7, 8), dtype=np.float32)
    features = study.head_features(net, x)
    weight, stride, padding, output_padding, phase_bias = study.equivalent_transpose(net, scale)
    expected = tc.conv_transpose(features.astype(np.float64), weight.astype(np.float64), None, stride, padding, output_padding)
    expected = expected + np.tile(phase_bias, (7, 8))
    assert expected.shape == (2, 1, 7 * scale, 8 * scale)
    assert np.allclose(net(x), expected, atol=1e-4)
    omap = study.overlap(net, 5, scale)
    assert np.array_equal(omap, tc.conv_transpose(np.ones((5, 5)), np.ones(weight.shape[-2:]), stride=stride,
                                                  padding=padding, output_padding=output_padding))


def test_resize_conv_cannot_make_a_checkerboard_on_a_flat_input(study):
    """Odena et al.'s argument: after nearest up-sampling every output phase sums the same taps."""
    net = fsrcnn(2, 6, 3, 1, seed=2, head="resize")
    _randomise_head(net, 1)
    assert np.ptp(study.flat_response(net)) < 1e-5 * np.abs(study.flat_response(net)).max()
    icnr = fsrcnn(2, 6, 3, 1, seed=2, head="icnr")
    _randomise_head(icnr, 1)  # sub-pixel conv once its phases differ does make one
    assert np.ptp(study.flat_response(icnr)) > 0.1
    assert study.overlap_phases(net) == "2/2"
    assert study.overlap_phases(fsrcnn(2, 6, 3, 1, head="k3s2")) == "2/1"


def test_tiny_run_writes_table_and_picture(study, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("skimage")
    from _pictures import TextBoxes

    boxes = TextBoxes(monkeypatch)
    picture, measured = tmp_path / "c.png", tmp_path / "c.json"
    assert study.main(["--tiny", "--no-progress", "--picture", str(picture), "--json", str(measured)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 1 + len(HEADS)  # header, bicubic, one per head
    assert all(label in out for label in study.LABELS.values())
    assert picture.stat().st_size > 10_000
    boxes.assert_inside()
    import json

    result = json.loads(measured.read_text())
    assert set(result["heads"]) == set(HEADS) and result["steps"] == 3
    assert result["heads"]["resize"]["flat_ptp"] < 0.01  # 8-bit levels: structurally flat
    assert result["heads"]["k3s2"]["overlap"] == "2/1" and result["heads"]["k4s2"]["overlap"] == "2/2"
