"""conv_weight_grad: every method equals the reference, PyTorch, and the adjoint identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, strategies as st

import transconv as tc
from transconv import TransconvError
from transconv.ops import compiled
from transconv.ops.weight_grad import WEIGHT_GRAD_METHODS

from _strategies import Case, cases


def _conv_args(case: Case):
    return case.stride, case.padding, case.dilation, case.groups


@given(cases(), st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_every_method_equals_reference_and_the_adjoint_identity(case: Case, mode: str):
    """<dW, V> = <g, conv(x, V)> for conv and <dW, V> = <g, conv_transpose(x, V)> for the transpose."""
    assume(mode != "reflect" or all(b >= 2 for b in case.big))
    assume(mode != "circular" or all(p <= b for p, b in zip(case.padding, case.big)))
    rng = np.random.default_rng(case.seed)
    batch = case.batch or 1
    stride, padding, dilation, groups = _conv_args(case)
    x = rng.standard_normal((batch, case.c_in) + case.big)
    w_shape = (case.c_out, case.c_in // groups) + case.kernel
    y_shape = tc.conv(x, np.zeros(w_shape), None, stride, padding, dilation, groups, padding_mode=mode).shape
    g = rng.standard_normal(y_shape)
    v = rng.standard_normal(w_shape)
    expected = np.vdot(g, tc.conv(x, v, None, stride, padding, dilation, groups, padding_mode=mode))
    reference = tc.conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups, padding_mode=mode, method="reference")
    assert np.isclose(np.vdot(reference, v), expected, rtol=1e-10, atol=1e-10)
    for method in WEIGHT_GRAD_METHODS[1:] + ("auto",):
        dw = tc.conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups, padding_mode=mode, method=method)
        np.testing.assert_allclose(dw, reference, rtol=1e-10, atol=1e-10, err_msg=method)
    with compiled.tuned(gather="channels_last"):  # gemm's columns transposed, as auto takes them on small grids
        dw = tc.conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups, padding_mode=mode, method="gemm")
    np.testing.assert_allclose(dw, reference, rtol=1e-10, atol=1e-10, err_msg="gemm channels-last")
    # the transposed layer: input on the small grid, grad_out on the large one
    small = rng.standard_normal((batch, case.c_out) + case.small)
    wt_shape = (case.c_out, case.c_in // groups) + case.kernel
    t_out = tc.conv_transpose(small, np.zeros(wt_shape), None, stride, padding, case.output_padding, groups, dilation, padding_mode=mode)
    gt = rng.standard_normal(t_out.shape)
    expected_t = np.vdot(gt, tc.conv_transpose(small, v, None, stride, padding, case.output_padding, groups, dilation, padding_mode=mode))
    for method in WEIGHT_GRAD_METHODS:
        dwt = tc.conv_weight_grad(small, gt, wt_shape, stride, padding, dilation, groups, padding_mode=mode,
                                  transposed=True, output_padding=case.output_padding, method=method)
        assert np.isclose(np.vdot(dwt, v), expected_t, rtol=1e-10, atol=1e-10), method
    with compiled.tuned(gather="channels_last"):
        dwt = tc.conv_weight_grad(small, gt, wt_shape, stride, padding, dilation, groups, padding_mode=mode,
                                  transposed=True, output_padding=case.output_padding, method="gemm")
    assert np.isclose(np.vdot(dwt, v), expected_t, rtol=1e-10, atol=1e-10), "gemm channels-last"


@pytest.mark.parametrize(
    "c_in, c_out, k, stride, padding, dilation, groups",
    [(1, 56, 5, 1, 2, 1, 1), (12, 12, 3, 1, 1, 1, 1), (8, 16, 4, 2, 1, 1, 2), (6, 6, 3, 2, 0, 2, 6)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_weight_grad_matches_torch(c_in, c_out, k, stride, padding, dilation, groups, dtype):
    rng = np.random.default_rng(c_out)
    x = rng.standard_normal((3, c_in, 11, 10)).astype(dtype)
    w_shape = (c_out, c_in // groups, k, k)
    y = tc.conv(x, np.zeros(w_shape, dtype), None, stride, padding, dilation, groups)
    g = rng.standard_normal(y.shape).astype(dtype)
    ref = torch.nn.grad.conv2d_weight(torch.from_numpy(x.astype(np.float64)), w_shape, torch.from_numpy(g.astype(np.float64)),
                                      stride, padding, dilation, groups).numpy()
    torch32 = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w_shape, torch.from_numpy(g), stride, padding, dilation, groups).numpy()
    for method in WEIGHT_GRAD_METHODS:
        dw = tc.conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups, method=method)
        assert dw.dtype == dtype
        if dtype == np.float64:
            np.testing.assert_allclose(dw, ref, rtol=1e-12, atol=1e-10)
        else:
            assert np.abs(dw - ref).max() <= 4 * np.abs(torch32 - ref).max() + 1e-5 * np.abs(ref).max()


def test_conv_transpose_weight_grad_matches_torch_conv_transpose_autograd():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 4))
    w = rng.standard_normal((6, 2, 3, 3))
    wt = torch.from_numpy(w).requires_grad_()
    y = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), wt, None, 2, 1, 1, 3, 1)
    g = rng.standard_normal(y.shape)
    y.backward(torch.from_numpy(g))
    dw = tc.conv_weight_grad(x, g, w.shape, 2, 1, 1, 3, transposed=True, output_padding=1)
    np.testing.assert_allclose(dw, wt.grad.numpy(), atol=1e-12)


def test_conv_weight_grad_rejects_bad_input():
    x = np.zeros((2, 4, 8, 8))
    g = np.zeros((2, 6, 6, 6))
    with pytest.raises(TransconvError, match=r"conv_weight_grad: grad_out must have shape \(2, 6, 6, 6\)"):
        tc.conv_weight_grad(x, np.zeros((2, 6, 5, 5)), (6, 4, 3, 3))
    with pytest.raises(TransconvError, match="conv_weight_grad: x has 4 channels"):
        tc.conv_weight_grad(x, g, (6, 3, 3, 3))
    with pytest.raises(TransconvError, match="method must be"):
        tc.conv_weight_grad(x, g, (6, 4, 3, 3), method="fast")
    with pytest.raises(TransconvError, match="same batch size"):
        tc.conv_weight_grad(x, g[:1], (6, 4, 3, 3))
    assert tc.conv_weight_grad(x[:0], g[:0], (6, 4, 3, 3)).shape == (6, 4, 3, 3)


@pytest.mark.parametrize(
    "c_in, c_out, k, stride, groups",
    [(1, 8, 3, 1, 1), (6, 2, 3, 1, 2), (4, 4, 1, 1, 1), (3, 6, 2, 1, 3)],
)
def test_gemm_per_sample_path_matches_torch(c_in, c_out, k, stride, groups):
    """Grids with >= 1024 output positions take gemm's one-GEMM-per-sample path (both orientations)."""
    rng = np.random.default_rng(c_in * 10 + c_out)
    x = rng.standard_normal((3, c_in, 34, 33))
    w_shape = (c_out, c_in // groups, k, k)
    g = rng.standard_normal(tc.conv(x, np.zeros(w_shape), None, stride, 1, 1, groups).shape)
    assert np.prod(g.shape[2:]) >= 1024
    ref = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w_shape, torch.from_numpy(g), stride, 1, 1, groups).numpy()
    for method in WEIGHT_GRAD_METHODS:
        np.testing.assert_allclose(tc.conv_weight_grad(x, g, w_shape, stride, 1, 1, groups, method=method), ref, atol=1e-10)
    # the transposed layer whose large grid is x: its weight gradient is the same correlation
    np.testing.assert_allclose(
        tc.conv_weight_grad(g, x, w_shape, stride, 1, 1, groups, transposed=True, output_padding=0), ref, atol=1e-10
    )


@given(cases(), st.sampled_from(["zeros", "reflect", "circular"]), st.booleans())
def test_gemm_in_blocks_of_one_output_row_equals_the_reference(case: Case, mode: str, transposed: bool):
    """The gemm weight gradient with its column buffer forced down to one output row of one
    sample: every block gathers one row (zero padding through the gather's margins, other
    modes from the padded input)."""
    from transconv.ops import weight_grad

    assume(mode != "reflect" or all(b >= 2 for b in case.big))
    assume(mode != "circular" or all(p <= b for p, b in zip(case.padding, case.big)))
    assume(mode == "zeros" or not transposed)
    rng = np.random.default_rng(case.seed)
    stride, padding, dilation, groups = _conv_args(case)
    if transposed:
        x = rng.standard_normal((case.batch or 1, case.c_in) + case.small)
        w_shape = (case.c_in, case.c_out // groups) + case.kernel
        kwargs = dict(transposed=True, output_padding=case.output_padding)
        y = tc.conv_transpose(x, np.zeros(w_shape), None, stride, padding, case.output_padding, groups, dilation)
    else:
        x = rng.standard_normal((case.batch or 1, case.c_in) + case.big)
        w_shape = (case.c_out, case.c_in // groups) + case.kernel
        kwargs = dict(padding_mode=mode)
        y = tc.conv(x, np.zeros(w_shape), None, stride, padding, dilation, groups, padding_mode=mode)
    g = rng.standard_normal(y.shape)
    reference = tc.conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups, method="reference", **kwargs)
    saved = weight_grad._COLUMN_BYTES, weight_grad._COLUMN_FLOOR
    weight_grad._COLUMN_BYTES, weight_grad._COLUMN_FLOOR = 1, 1
    try:
        dw = tc.conv_weight_grad(x, g, w_shape, stride, padding, dilation, groups, method="gemm", **kwargs)
    finally:
        weight_grad._COLUMN_BYTES, weight_grad._COLUMN_FLOOR = saved
    np.testing.assert_allclose(dw, reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("batch", [3, 1])
def test_gemm_partials_of_a_split_add_up_to_torch(monkeypatch, batch):
    """The gemm weight gradient's work ranges (samples; one sample: output rows), as
    ``compiled._split`` hands them to the cores, each sum their own partial dW: run here as
    two ranges in turn on any machine, the partials add up to PyTorch's."""
    from transconv.ops import compiled

    ranges = []

    def two_ranges(n, units, work, macs, data_bytes):
        halves = [(0, n // 2, 0, units), (n // 2, n, 0, units)] if n >= 2 else \
                 [(0, n, 0, units // 2), (0, n, units // 2, units)]
        for r in halves:
            ranges.append(r)
            work(*r, True)

    monkeypatch.setattr(compiled, "_split", two_ranges)
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch, 6, 19, 17))
    w_shape = (10, 3, 3, 3)
    g = rng.standard_normal(tc.conv(x, np.zeros(w_shape), None, 2, 1, 1, 2).shape)
    ref = torch.nn.grad.conv2d_weight(torch.from_numpy(x), w_shape, torch.from_numpy(g), 2, 1, 1, 2).numpy()
    np.testing.assert_allclose(tc.conv_weight_grad(x, g, w_shape, 2, 1, 1, 2, method="gemm"), ref, atol=1e-10)
    assert len(ranges) == 2 and all(r[1] > r[0] and r[3] > r[2] for r in ranges)  # two non-empty partials
