"""tc.nn.to_onnx: onnxruntime runs the written file to model.forward's numbers (float32 tolerance)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime
import pytest

import transconv as tc

nn = tc.nn


def _run_onnx(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def _check(tmp_path, model, shape, seed=0):
    path = tmp_path / "model.onnx"
    nn.to_onnx(model, path, shape)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    expected = model(x)
    got = _run_onnx(path, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    return onnx.load(str(path))


CASES = {
    "conv": (lambda: nn.Conv(3, 4, 3, padding=1, seed=0), (2, 3, 7, 6)),
    "conv_grouped_dilated_asymmetric": (lambda: nn.Conv(4, 6, (3, 2), stride=(2, 1), padding=((2, 0), (1, 3)), dilation=(2, 3), groups=2, seed=1), (1, 4, 9, 8)),
    "conv_same_strided": (lambda: nn.Conv(2, 3, 4, stride=2, padding="same", seed=2), (1, 2, 7, 9)),
    "conv_reflect": (lambda: nn.Conv(2, 3, 3, padding=(1, 2), padding_mode="reflect", seed=3), (1, 2, 6, 7)),
    "conv_replicate": (lambda: nn.Conv(2, 3, 3, padding=((2, 0), (0, 1)), padding_mode="replicate", seed=4), (1, 2, 6, 7)),
    "conv_circular": (lambda: nn.Conv(2, 2, 3, stride=2, padding=2, padding_mode="circular", bias=False, seed=5), (1, 2, 6, 7)),
    "conv1d": (lambda: nn.Conv1d(2, 3, 5, stride=3, padding=(1,), dilation=2, seed=6), (2, 2, 17)),
    "conv3d": (lambda: nn.Conv3d(2, 2, 3, padding=1, groups=2, seed=7), (1, 2, 4, 5, 3)),
    "convtranspose": (lambda: nn.ConvTranspose(3, 2, 4, stride=2, padding=1, seed=8), (2, 3, 5, 4)),
    "convtranspose_everything": (lambda: nn.ConvTranspose(4, 6, (3, 4), stride=(3, 2), padding=((2, 0), (1, 3)), output_padding=(1, 1), groups=2, dilation=(2, 1), seed=9), (1, 4, 4, 5)),
    "convtranspose_same": (lambda: nn.ConvTranspose(2, 2, 3, stride=2, padding="same", bias=False, seed=10), (1, 2, 5, 5)),
    "convtranspose1d": (lambda: nn.ConvTranspose1d(2, 3, 5, stride=3, padding=2, output_padding=2, seed=11), (2, 2, 6)),
    "convtranspose3d": (lambda: nn.ConvTranspose3d(2, 4, 2, stride=2, groups=2, seed=12), (1, 2, 3, 2, 3)),
    "convtranspose_output_padding_past_stride": (lambda: nn.ConvTranspose(2, 2, 3, stride=(1, 2), padding=((0, 1), (1, 0)), output_padding=(2, 1), dilation=(3, 2), seed=20), (1, 2, 4, 4)),
    "convtranspose_output_padding_into_crop": (lambda: nn.ConvTranspose(2, 2, 3, stride=1, padding=(2, 1), output_padding=2, dilation=3, seed=21), (1, 2, 4, 4)),
    "pixelshuffle": (lambda: nn.PixelShuffle(2), (2, 12, 3, 4)),
    "pixelshuffle3": (lambda: nn.PixelShuffle(3), (1, 18, 2, 3)),
    "pixelshuffle1d": (lambda: nn.PixelShuffle(3), (1, 6, 4)),
    "pixelshuffle3d": (lambda: nn.PixelShuffle(2), (1, 16, 2, 3, 2)),
    "pixelunshuffle": (lambda: nn.PixelUnshuffle(2), (2, 3, 4, 6)),
    "pixelunshuffle3d": (lambda: nn.PixelUnshuffle(2), (1, 2, 4, 2, 6)),
    "upsample_nearest": (lambda: nn.Upsample(3), (1, 2, 3, 4)),
    "upsample_nearest_per_axis": (lambda: nn.Upsample([2, 3]), (1, 2, 3, 4)),
    "upsample_bilinear": (lambda: nn.Upsample(2, mode="bilinear"), (2, 2, 5, 4)),
    "upsample_bilinear_per_axis": (lambda: nn.Upsample([3, 2], mode="bilinear"), (1, 1, 4, 5)),
    "upsample_linear1d": (lambda: nn.Upsample(4, mode="bilinear"), (1, 2, 5)),
    "upsample_trilinear": (lambda: nn.Upsample(2, mode="bilinear"), (1, 1, 3, 4, 2)),
    "activations": (lambda: nn.Sequential(nn.ReLU(), nn.Conv(2, 2, 1, seed=13), nn.LeakyReLU(0.2), nn.Conv(2, 2, 1, seed=14), nn.Tanh(), nn.Sigmoid()), (1, 2, 4, 4)),
    "prelu": (lambda: nn.Sequential(nn.PReLU(), nn.Conv(3, 3, 1, seed=15), nn.PReLU(3, init=-0.5)), (2, 3, 4, 5)),
    "crop": (lambda: nn.Crop([[1, 2], [0, 3]]), (1, 2, 6, 7)),
    "subpixel_net": (lambda: nn.Sequential(nn.Conv(1, 8, 5, padding=2, seed=16), nn.Tanh(), nn.Sequential(nn.Conv(8, 4, 3, padding=1, init="icnr", seed=17), nn.PixelShuffle(2))), (1, 1, 8, 8)),
    "zero_insert": (lambda: nn.ZeroInsert([2, 3], [[2, -1], [-2, 1]]), (2, 3, 4, 5)),
    "converted_as_conv": (lambda: nn.convtranspose_as_conv(nn.ConvTranspose(2, 4, 3, stride=2, padding=((1, 3), (0, 2)), output_padding=1, groups=2, seed=19)), (1, 2, 5, 4)),
    "converted_to_pixelshuffle": (lambda: nn.convtranspose_to_pixelshuffle(nn.ConvTranspose(2, 3, 3, stride=2, padding=1, output_padding=1, seed=18)), (1, 2, 4, 5)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_onnxruntime_matches_forward(tmp_path, case):
    build, shape = CASES[case]
    _check(tmp_path, build(), shape)


def test_operators_used(tmp_path):
    model = nn.Sequential(nn.Conv(1, 4, 3, padding=1, padding_mode="circular", seed=0), nn.PixelShuffle(2),
                          nn.PixelUnshuffle(2), nn.ConvTranspose(4, 1, 4, stride=2, padding=1, seed=1), nn.Upsample(2, mode="bilinear"))
    ops = [node.op_type for node in _check(tmp_path, model, (1, 1, 4, 4)).graph.node]
    assert ops == ["Pad", "Conv", "DepthToSpace", "Reshape", "Transpose", "Reshape", "ConvTranspose", "Resize"]


def test_pixel_unshuffle_order_differs_from_space_to_depth():
    # why PixelUnshuffle is not exported as SpaceToDepth: ONNX puts the block offset first
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)
    node = onnx.helper.make_node("SpaceToDepth", ["input"], ["output"], blocksize=2)
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 2, 4, 4])],
                                   [onnx.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [1, 8, 2, 2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 19)])
    space_to_depth = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert not np.array_equal(space_to_depth, nn.PixelUnshuffle(2)(x))


class Mine(nn.ReLU):
    pass


def test_refusals(tmp_path):
    with pytest.raises(tc.TransconvError, match=r"layer 1 \(ConvTranspose\) has padding_mode='reflect'"):
        nn.to_onnx(nn.Sequential(nn.ReLU(), nn.ConvTranspose(1, 1, 3, padding=1, padding_mode="reflect")), tmp_path / "a.onnx", (1, 1, 5, 5))
    with pytest.raises(tc.TransconvError, match=r"layer 0.1 \(Mine\) has no ONNX export"):
        nn.to_onnx(nn.Sequential(nn.Sequential(nn.ReLU(), Mine())), tmp_path / "a.onnx", (1, 1, 5, 5))
    with pytest.raises(tc.TransconvError, match=r"layer 0 \(Conv\) on input shape \(1, 2, 5, 5\)"):
        nn.to_onnx(nn.Sequential(nn.Conv(1, 1, 3)), tmp_path / "a.onnx", (1, 2, 5, 5))
    with pytest.raises(tc.TransconvError, match="input_shape must be"):
        nn.to_onnx(nn.ReLU(), tmp_path / "a.onnx", (5, 5))
    assert os.listdir(tmp_path) == []


def test_no_overwrite_without_asking(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"precious")
    with pytest.raises(tc.TransconvError, match="exists; pass overwrite=True"):
        nn.to_onnx(nn.ReLU(), path, (1, 1, 2, 2))
    assert path.read_bytes() == b"precious"
    nn.to_onnx(nn.ReLU(), path, (1, 1, 2, 2), overwrite=True)
    np.testing.assert_array_equal(_run_onnx(path, -np.ones((1, 1, 2, 2), np.float32)), 0)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]
