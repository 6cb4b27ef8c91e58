"""C and C^T: equality with the operators, the dot test, the spectrum, least squares."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given
from hypothesis import strategies as st

import transconv as tc
from _strategies import Case, cases, tolerance

K = np.array([[1, 4, 1], [1, 4, 3], [3, 3, 1]])
MODES = ["zeros", "reflect", "replicate", "circular"]


def test_worked_example_matrix_entry_by_entry():
    C = tc.conv_matrix(K, (4, 4))
    assert isinstance(C, sp.csr_array) and C.shape == (4, 16)
    expected = np.zeros((4, 16))
    for r, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for a in range(3):
            for b in range(3):
                expected[r, (i + a) * 4 + (j + b)] = K[a, b]
    np.testing.assert_array_equal(C.toarray(), expected)
    x = np.array([[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]])
    np.testing.assert_array_equal(C @ x.ravel(), [122, 148, 126, 134])
    np.testing.assert_array_equal(
        (C.T @ np.array([2, 1, 4, 4])).reshape(4, 4),
        [[2, 9, 6, 1], [6, 29, 30, 7], [10, 29, 33, 13], [12, 24, 16, 4]],
    )
    CT = tc.conv_transpose_matrix(K, (2, 2))
    assert CT.shape == (16, 4)
    np.testing.assert_array_equal(CT.toarray(), expected.T)


def test_printout_names_rows_and_columns():
    text = tc.format_matrix(tc.conv_matrix(K, (4, 4)), (2, 2), (4, 4))
    lines = text.splitlines()
    assert lines[1].startswith("y[0,0] |") and lines[4].startswith("y[1,1] |")
    assert lines[1].split("|")[1].split() == ["1", "4", "1", ".", "1", "4", "3", ".", "3", "3", "1", ".", ".", ".", ".", "."]
    assert "15=x[3,3]" in lines[-1]
    text_t = tc.format_matrix(tc.conv_transpose_matrix(K, (2, 2)), (4, 4), (2, 2), row_name="x", col_name="y")
    assert text_t.splitlines()[6].startswith("x[1,1] |")  # row 5 = x[1,1], reached by all four inputs
    assert text_t.splitlines()[6].split("|")[1].split() == ["4", "1", "4", "1"]
    with pytest.raises(tc.TransconvError, match="row_shape"):
        tc.format_matrix(tc.conv_matrix(K, (4, 4)), (2, 3), (4, 4))


def _conv_args(case: Case):
    return dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=case.groups)


@given(cases(), st.sampled_from(MODES))
def test_matrix_times_vector_is_conv(case: Case, mode: str):
    x, w, _ = case.arrays(transposed=False)
    sample = x if case.batch is None else x[0]
    assume(mode != "reflect" or min(case.big) >= 2 or not any(case.padding))
    C = tc.conv_matrix(w, case.big, padding_mode=mode, **_conv_args(case))
    expected = tc.conv(sample, w, padding_mode=mode, **_conv_args(case))
    assert C.shape == (expected.size, sample.size)
    np.testing.assert_allclose(C @ sample.ravel(), expected.ravel(), **tolerance(case.dtype, x, w))


@given(cases(), st.sampled_from(MODES))
def test_transpose_matrix_is_exactly_the_transpose_and_matches_conv_transpose(case: Case, mode: str):
    y, w, _ = case.arrays(transposed=True)
    sample = y if case.batch is None else y[0]
    assume(mode != "reflect" or min(case.big) >= 2 or not any(case.padding))
    kwargs = dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding,
                  groups=case.groups, dilation=case.dilation, padding_mode=mode)
    CT = tc.conv_transpose_matrix(w, case.small, **kwargs)
    expected = tc.conv_transpose(sample, w, **kwargs)
    np.testing.assert_allclose(CT @ sample.ravel(), expected.ravel(), **tolerance(case.dtype, y, w))
    C = tc.conv_matrix(w, case.big, stride=case.stride, padding=case.padding, dilation=case.dilation,
                       groups=case.groups, padding_mode=mode)
    if C.shape[0] == CT.shape[1]:
        assert (CT != C.T).nnz == 0  # exactly, not to rounding
    else:  # output_padding >= stride: C^T restricted to the rows the transposed input feeds
        assert any(a >= s for a, s in zip(case.output_padding, case.stride))


@given(cases(dtypes=("float64",)), st.sampled_from(MODES))
def test_operator_dot_test_and_matmat(case: Case, mode: str):
    x, w, _ = case.arrays(transposed=False)
    assume(mode != "reflect" or min(case.big) >= 2 or not any(case.padding))
    A = tc.conv_operator(w, case.big, padding_mode=mode, **_conv_args(case))
    rng = np.random.default_rng(case.seed)
    X = rng.standard_normal((A.shape[1], 3))
    Y = rng.standard_normal((A.shape[0], 3))
    AX, ATY = A @ X, A.H @ Y
    assert AX.shape == (A.shape[0], 3) and ATY.shape == (A.shape[1], 3)
    np.testing.assert_allclose(np.sum(AX * Y), np.sum(X * ATY), rtol=1e-10, atol=1e-10)
    C = tc.conv_matrix(w, case.big, padding_mode=mode, **_conv_args(case))
    np.testing.assert_allclose(AX, C @ X, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(A.rmatvec(Y[:, 0]), C.T @ Y[:, 0], rtol=1e-10, atol=1e-10)


def test_padding_modes_show_the_folded_taps():
    # 1-d, kernel [1, 2, 3], input 4, padding 1: output 0 reads (pad, x0, x1)
    C = {m: tc.conv_matrix([1.0, 2.0, 3.0], (4,), padding=1, padding_mode=m).toarray() for m in MODES}
    assert C["zeros"][0].tolist() == [2, 3, 0, 0]
    assert C["replicate"][0].tolist() == [1 + 2, 3, 0, 0]  # pad copies x0
    assert C["reflect"][0].tolist() == [2, 3 + 1, 0, 0]  # pad copies x1
    assert C["circular"][0].tolist() == [2, 3, 0, 1]  # pad copies x3
    assert C["circular"][3].tolist() == [3, 0, 1, 2]


def test_groups_make_a_block_diagonal_matrix():
    w = np.random.default_rng(0).standard_normal((4, 1, 3))
    C = tc.conv_matrix(w, (6,), groups=2, padding=1).toarray()  # 2 in -> 4 out, groups 2
    assert C.shape == (4 * 6, 2 * 6)
    assert not C[:12, 6:].any() and not C[12:, :6].any()


def test_large_builds_have_the_expected_structure():
    C = tc.conv_matrix(np.ones((3, 3), np.float32), (1024, 1024))
    assert C.shape == (1022 * 1022, 1024 * 1024) and C.nnz == 1022 * 1022 * 9
    assert C.dtype == np.float32 and C.indices.dtype == np.int32
    w = np.random.default_rng(1).standard_normal((64, 64, 3, 3)).astype(np.float32)
    C = tc.conv_matrix(w, (32, 32), padding=1)
    assert C.shape == (64 * 1024, 64 * 1024)
    x = np.random.default_rng(2).standard_normal((64, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(C @ x.ravel(), tc.conv(x, w, padding=1).ravel(), rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- spectrum


@pytest.mark.parametrize("groups, c_in, c_out, shape, kernel, dilation", [
    (1, 1, 1, (8,), (3,), 1),
    (1, 2, 3, (6, 5), (3, 2), 1),
    (1, 3, 2, (4, 6), (3, 3), 2),
    (2, 4, 2, (5, 4), (2, 3), 1),
    (1, 2, 2, (3, 3, 4), (2, 2, 3), 1),
])
def test_fft_singular_values_equal_dense_svd(groups, c_in, c_out, shape, kernel, dilation):
    rng = np.random.default_rng(sum(shape))
    w = rng.standard_normal((c_out, c_in // groups) + kernel)
    k_eff = [dilation * (k - 1) + 1 for k in kernel]
    padding = tuple((e // 2, e - 1 - e // 2) for e in k_eff)  # circular, same size
    got = tc.singular_values(w, shape, padding=padding, dilation=dilation, groups=groups, padding_mode="circular")
    dense = tc.conv_matrix(w, shape, padding=padding, dilation=dilation, groups=groups, padding_mode="circular").toarray()
    expected = np.linalg.svd(dense, compute_uv=False)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    norm = tc.operator_norm(w, shape, padding=padding, dilation=dilation, groups=groups, padding_mode="circular")
    assert norm == pytest.approx(expected[0], rel=1e-10)


@given(cases(max_ndim=2, dtypes=("float64",)), st.sampled_from(MODES))
def test_singular_values_and_norm_equal_dense_svd(case: Case, mode: str):
    _, w, _ = case.arrays(transposed=False)
    assume(mode != "reflect" or min(case.big) >= 2 or not any(case.padding))
    args = dict(padding_mode=mode, **_conv_args(case))
    dense = tc.conv_matrix(w, case.big, **args).toarray()
    expected = np.linalg.svd(dense, compute_uv=False)
    np.testing.assert_allclose(tc.singular_values(w, case.big, **args), expected, rtol=1e-9, atol=1e-9)
    assert tc.operator_norm(w, case.big, **args) == pytest.approx(expected[0], rel=1e-7, abs=1e-9)


def test_top_k_singular_values_matrix_free():
    w = np.random.default_rng(3).standard_normal((3, 2, 3, 3))
    dense = np.linalg.svd(tc.conv_matrix(w, (12, 12), stride=2, padding=1).toarray(), compute_uv=False)
    np.testing.assert_allclose(tc.singular_values(w, (12, 12), stride=2, padding=1, k=4), dense[:4], rtol=1e-8)
    assert tc.operator_norm(w, (12, 12), stride=2, padding=1) == pytest.approx(dense[0], rel=1e-8)
    with pytest.raises(tc.TransconvError, match="k must be"):
        tc.singular_values(w, (12, 12), stride=2, padding=1, k=0)


# ---------------------------------------------------------------- least squares beside the transpose


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


def test_deconvolve_recovers_a_real_image_where_the_transpose_does_not():
    """camera() blurred by a Gaussian and sampled at stride 2 in four phases (as many
    measurements as pixels): the transpose is not the inverse, least squares is."""
    from skimage import data, transform

    image = transform.resize(data.camera().astype(float) / 255, (64, 64), anti_aliasing=True)
    g = np.exp(-0.5 * (np.arange(5) - 2.0) ** 2)
    g = np.outer(g, g) / np.outer(g, g).sum()
    w = np.zeros((4, 1, 6, 6))
    for c, (a, b) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        w[c, 0, a:a + 5, b:b + 5] = g
    y = tc.conv(image[None], w, stride=2, padding=2)
    x, info = tc.deconvolve(y, w, stride=2, padding=2, input_shape=image.shape, damp=1e-4, iter_lim=600,
                            full_output=True)
    transpose = tc.conv_transpose(y, w, stride=2, padding=2, output_size=image.shape)[0]
    best_scale = np.vdot(transpose, image) / np.vdot(transpose, transpose)  # the fairest the transpose can be
    assert _psnr(x[0], image) > 40
    assert _psnr(best_scale * transpose, image) < 26
    assert info.iterations <= 600 and info.relative_residual < 1e-3
    np.testing.assert_allclose(tc.conv(x, w, stride=2, padding=2), y, atol=1e-3)


def test_deconvolve_exact_on_a_full_rank_problem_and_batched():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 2, 2))  # 1-d, 2 -> 3 channels: overdetermined
    x = rng.standard_normal((2, 2, 7))
    y = tc.conv(x, w, padding=1)
    x_hat, info = tc.deconvolve(y, w, padding=1, atol=1e-12, btol=1e-12, full_output=True)
    np.testing.assert_allclose(x_hat, x, atol=1e-7)
    assert info.iterations.shape == (2,) and (info.relative_residual < 1e-8).all()


def test_deconvolve_damping_shrinks_the_solution():
    k = np.array([[1.0, 2.0], [0.5, 1.0]])
    y = tc.conv(np.arange(16.0).reshape(4, 4), k, padding=1)
    plain = tc.deconvolve(y, k, padding=1)
    damped = tc.deconvolve(y, k, padding=1, damp=5.0)
    assert np.linalg.norm(damped) < np.linalg.norm(plain)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("call, words", [
    (lambda: tc.conv_matrix(np.ones((2, 2, 3)), (4, 4)), ["conv_matrix", "axes", "(2, 2, 3)"]),
    (lambda: tc.conv_matrix(K, (4, 0)), ["input_shape[1]", ">= 1"]),
    (lambda: tc.conv_matrix(K, "4x4"), ["input_shape"]),
    (lambda: tc.conv_matrix(K, (2, 2)), ["kernel", "larger"]),
    (lambda: tc.conv_matrix(np.ones((3, 2, 3)), (5,), groups=2), ["output channels", "groups"]),
    (lambda: tc.conv_transpose_matrix(K, (2, 2), stride=2, output_padding=2), ["output_padding (2)"]),
    (lambda: tc.conv_operator(K, (4, 4), stride=0), ["conv_operator", "stride"]),
    (lambda: tc.deconvolve(np.ones((3, 3)), K, input_shape=(4, 4)), ["deconvolve", "(1, 2, 2)"]),
    (lambda: tc.deconvolve(np.ones((2, 2)), K, damp=-1), ["damp", ">= 0"]),
    (lambda: tc.singular_values(K, (40, 200)), ["6000", "k"]),
    (lambda: tc.conv_matrix(np.array([["a"]]), (4, 4)), ["numeric"]),
])
def test_bad_arguments(call, words):
    with pytest.raises(tc.TransconvError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))
