"""Every bad argument raises TransconvError naming the operation and the parameter."""

from __future__ import annotations

import numpy as np
import pytest

import transconv as tc

x4 = np.ones((1, 2, 5, 5))
w_conv = np.ones((3, 2, 3, 3))  # conv: (C_out, C_in, k, k)
y4 = np.ones((1, 3, 4, 4))
w_t = np.ones((3, 2, 3, 3))  # conv_transpose: (C_in, C_out, k, k)

CONV_CASES = [
    # (kwargs or call, words the message must contain)
    (dict(x=np.ones((5, 5, 5, 5, 5)), w=w_conv), ["conv", "axes", "x"]),
    (dict(x=np.ones((5,)), w=w_conv), ["conv", "axes"]),
    (dict(x=np.ones((1, 4, 5, 5)), w=w_conv), ["channels", "4", "2"]),
    (dict(x=np.ones((1, 3, 5, 5)), w=np.ones((3, 1, 3, 3)), groups=2), ["groups", "divisible", "3"]),
    (dict(x=np.ones((1, 4, 5, 5)), w=np.ones((3, 2, 3, 3)), groups=2), ["output channels", "3", "groups"]),
    (dict(stride=0), ["stride", ">= 1", "0"]),
    (dict(stride=(1, -2)), ["stride[1]", "-2"]),
    (dict(dilation=0), ["dilation", "0"]),
    (dict(padding=-1), ["padding", ">= 0", "-1"]),
    (dict(padding=((0, 1), (-1, 0))), ["padding[1][0]", "-1"]),
    (dict(padding=(1, 1, 1)), ["padding", "2"]),
    (dict(padding="full"), ["padding", "'same'", "'full'"]),
    (dict(padding_mode="mirror"), ["padding_mode", "'reflect'", "'mirror'"]),
    (dict(w=np.ones((3, 2, 7, 3))), ["kernel", "larger", "7", "5"]),
    (dict(dilation=3), ["kernel", "effective size 7"]),
    (dict(w=np.ones((3, 2, 0, 3))), ["w", "empty"]),
    (dict(x=np.ones((1, 2, 0, 5))), ["x", "shape"]),
    (dict(stride=float("nan")), ["stride", "NaN"]),
    (dict(stride=1.5), ["stride", "1.5"]),
    (dict(padding=float("nan")), ["padding", "NaN"]),
    (dict(stride=True), ["stride", "True"]),
    (dict(groups=0), ["groups", "0"]),
    (dict(x=np.array([["a"]])), ["x", "numeric"]),
    (dict(x=x4 + 1j), ["x", "complex"]),
    (dict(w=np.ones((3, 2, 3, 3), dtype=object)), ["w", "numeric"]),
    (dict(bias=np.ones(2)), ["bias", "(3,)", "(2,)"]),
    (dict(method="fastest"), ["method", "'fastest'"]),
    (dict(x=[[1, 2], [3]], w=np.ones((2, 2))), ["x", "numeric"]),
    (dict(x=np.ones((4, 4)), w=np.ones((2, 2, 2))), ["4 channels", "C_out, C_in/groups"]),
    (dict(x=np.ones((4, 4, 4)), w=np.ones((2, 2)), plain=True), ["plain kernel", "same number"]),
    (dict(padding_mode="reflect", padding=1, x=np.ones((1, 2, 1, 5)), w=np.ones((3, 2, 1, 3))), ["reflect", "length"]),
]


@pytest.mark.parametrize("kwargs, words", CONV_CASES)
def test_conv_errors(kwargs, words):
    args = dict(x=x4, w=w_conv)
    args.update(kwargs)
    with pytest.raises(tc.TransconvError) as info:
        tc.conv(args.pop("x"), args.pop("w"), **args)
    message = str(info.value)
    assert message.startswith("conv:")
    for word in words:
        assert word in message, (word, message)


CONVT_CASES = [
    (dict(x=np.ones((1, 2, 4, 4))), ["channels", "2", "3"]),
    (dict(groups=2), ["groups", "divisible", "3"]),
    (dict(stride=2, output_padding=2), ["output_padding (2)", "stride (2)", "dilation (1)"]),
    (dict(stride=2, output_padding=-1), ["output_padding", "-1"]),
    (dict(output_padding=(0, 1)), ["output_padding (1)", "stride (1)"]),
    (dict(stride=2, output_size=(12, 9)), ["output size of 12", "valid sizes range from 9 to 10"]),
    (dict(output_size=(6, float("nan"))), ["output_size[1]", "NaN"]),
    (dict(output_size=(1, 2, 3, 4, 5)), ["output_size", "2 spatial"]),
    (dict(output_size="big"), ["output_size"]),
    (dict(padding=3), ["crops", "output shape", "(0, 0)"]),
    (dict(padding="same", output_padding=1, stride=2), ["output_padding", "same"]),
    (dict(padding_mode="wrap"), ["padding_mode", "'wrap'"]),
    (dict(bias=np.ones((2, 1))), ["bias", "(2,)"]),
    (dict(x=np.ones((1, 1, 3, 4, 4))), ["axes"]),
    (dict(w=np.ones((3, 2, 3))), ["axes", "1-d weight"]),
]


@pytest.mark.parametrize("kwargs, words", CONVT_CASES)
def test_conv_transpose_errors(kwargs, words):
    args = dict(x=y4, w=w_t)
    args.update(kwargs)
    with pytest.raises(tc.TransconvError) as info:
        tc.conv_transpose(args.pop("x"), args.pop("w"), **args)
    message = str(info.value)
    assert message.startswith("conv_transpose:")
    for word in words:
        assert word in message, (word, message)


def test_error_is_a_value_error_and_inputs_are_untouched():
    x = x4.copy()
    with pytest.raises(ValueError):
        tc.conv(x, w_conv, stride=0)
    np.testing.assert_array_equal(x, x4)


def test_choose_method_validates_too():
    with pytest.raises(tc.TransconvError, match="choose_method: stride"):
        tc.choose_method((1, 2, 5, 5), (3, 2, 3, 3), stride=0)
    with pytest.raises(tc.TransconvError, match="transposed=True"):
        tc.choose_method((1, 2, 5, 5), (3, 2, 3, 3), output_padding=1)


def test_choose_method_explains():
    choice = tc.choose_method((8, 64, 32, 32), (64, 32, 4, 4), transposed=True, stride=2, padding=1)
    assert choice.method in tc.METHODS and "cost" in choice.reason
    assert choice.method in str(choice)


# ---------------------------------------------------------------- fuzz: only results or TransconvError

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_values = st.one_of(
    st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
    st.text(max_size=3), st.sampled_from(["same", "valid", "SAME", "reflect"]),
    st.lists(st.integers(-2, 4), max_size=4).map(tuple),
    st.lists(st.tuples(st.integers(-1, 3), st.integers(-1, 3)), max_size=3).map(tuple),
)


@given(
    x_shape=st.lists(st.integers(0, 5), min_size=1, max_size=5).map(tuple),
    w_shape=st.lists(st.integers(0, 4), min_size=1, max_size=5).map(tuple),
    stride=_values, padding=_values, dilation=_values, groups=_values, output_padding=_values,
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular", "edge", 3]),
    transposed=st.booleans(),
)
def test_fuzzed_arguments_give_a_result_or_a_transconv_error(x_shape, w_shape, stride, padding, dilation, groups,
                                                               output_padding, mode, transposed):
    x = np.ones(x_shape)
    w = np.ones(w_shape)
    try:
        if transposed:
            out = tc.conv_transpose(x, w, None, stride, padding, output_padding, groups, dilation, padding_mode=mode)
        else:
            out = tc.conv(x, w, None, stride, padding, dilation, groups, padding_mode=mode)
    except tc.TransconvError as exc:
        assert str(exc).startswith("conv_transpose:" if transposed else "conv:")
        return
    assert np.isfinite(out).all() and out.size > 0


# ---------------------------------------------------------------- issue 13's reproducers, one boundary

from transconv import interop  # noqa: E402

_x2, _k3 = np.ones((4, 4)), np.ones((3, 3))

BOUNDARY_CASES = [
    # (call, words the message must contain) -- each once raised TypeError/ValueError/IndexError/...
    (lambda: tc.conv(_x2, _k3, method=["gemm"]), ["conv:", "method", "['gemm']"]),
    (lambda: tc.conv(_x2, _k3, padding_mode=np.array(["zeros"])), ["conv:", "padding_mode"]),
    (lambda: tc.conv(_x2, _k3, plain=np.array([1, 2])), ["conv:", "plain"]),
    (lambda: tc.conv(_x2, _k3, plain="yes"), ["conv:", "plain", "'yes'"]),
    (lambda: tc.conv(np.ones((2, 3)), np.ones((4, 3)), plain=False), ["conv:", "plain=False", "3 axes"]),
    (lambda: tc.conv(np.ones(3), np.ones(3), plain=False), ["conv:", "plain=False", "(3,)"]),
    (lambda: tc.conv(_x2, _k3, stride={2, 3}), ["conv:", "stride", "set"]),
    (lambda: tc.conv(_x2, _k3, stride=2.0), ["conv:", "stride", "non-integer"]),
    (lambda: tc.conv(_x2, _k3, stride=np.array(2.0)), ["conv:", "stride"]),
    (lambda: tc.conv(_x2, _k3, stride=np.True_), ["conv:", "stride", "bool"]),
    (lambda: tc.conv(_x2, _k3, padding="1"), ["conv:", "padding", "'1'"]),
    (lambda: tc.conv(_x2, _k3, dilation=np.ones((2, 2), int)), ["conv:", "dilation", "(2, 2)"]),
    (lambda: tc.conv(np.ma.masked_array(_x2, mask=np.eye(4)), _k3), ["conv:", "x", "masked"]),
    (lambda: tc.conv(_x2, np.ma.masked_array(_k3)), ["conv:", "w", "masked"]),
    (lambda: tc.conv(_x2, _k3, stride=np.ma.masked_array(2)), ["conv:", "stride", "masked"]),
    (lambda: tc.conv_transpose(_x2, _k3, output_size={4, 5}), ["conv_transpose:", "output_size", "set"]),
    (lambda: tc.deconvolve(_x2, _k3, damp=None), ["deconvolve:", "damp", "None"]),
    (lambda: tc.deconvolve(_x2, _k3, damp=-1.0), ["deconvolve:", "damp", "-1.0"]),
    (lambda: tc.deconvolve(_x2, _k3, iter_lim=-1), ["deconvolve:", "iter_lim", "-1"]),
    (lambda: tc.deconvolve(_x2, _k3, input_shape=(5,)), ["deconvolve:", "input_shape"]),
    (lambda: tc.conv_output_length(4, 3, stride=0), ["conv_output_length:", "stride", "0"]),
    (lambda: tc.conv_output_length(4, 3.5), ["conv_output_length:", "kernel", "3.5"]),
    (lambda: tc.dumoulin(5, 4, 3, s=0), ["dumoulin:", "s ", "0"]),
    (lambda: tc.dumoulin(16, 4, 3), ["dumoulin:", "relationship", "16"]),
    (lambda: tc.conv_transpose_output_length(4, 3, padding=(1,)), ["conv_transpose_output_length:", "padding", "(1,)"]),
    (lambda: tc.conv_matrix([[1, 2], [3]], (4, 4)), ["conv_matrix:", "w", "numeric"]),
    (lambda: tc.conv_matrix(np.ones((0, 3)), (4, 4)), ["conv_matrix:", "w", "empty", "(0, 3)"]),
    (lambda: tc.conv_matrix(_k3, (4, 4.0)), ["conv_matrix:", "input_shape[1]", "4.0"]),
    (lambda: tc.conv_matrix(_k3, None), ["conv_matrix:", "input_shape", "None"]),
    (lambda: tc.choose_method((1, 1, 4, 4), (1, 1, 3, 3), dtype="foo"), ["choose_method:", "dtype", "'foo'"]),
    (lambda: tc.choose_method((1, 1, 4, 4), (1, 1, 3, 3), dtype=complex), ["choose_method:", "dtype", "complex"]),
    (lambda: tc.solve_geometry(5, 10, max_stride=2.5), ["solve_geometry:", "max_stride", "2.5"]),
    (lambda: tc.solve_geometry(5, 10, max_kernel=10**6), ["solve_geometry:", "max_kernel"]),
    (lambda: tc.solve_geometry(1, 10, max_stride=10**9), ["solve_geometry:", "max_stride"]),
    (lambda: tc.overlap_map((4, 4), 3.0), ["overlap_map:", "kernel_size", "3.0"]),
    (lambda: tc.singular_values(_k3, (8, 8), k=2.0), ["singular_values:", "k", "2.0"]),
    (lambda: tc.singular_values(np.full((3, 3), np.nan), (8, 8)), ["singular_values:", "NaN"]),
    (lambda: tc.operator_norm(np.full((3, 3), np.inf), (8, 8)), ["operator_norm:", "infinity"]),
    (lambda: interop.from_jax(2.5, 3, 2, "SAME"), ["from_jax:", "input_shape", "2.5"]),
    (lambda: interop.from_jax((4,), None, 2, "SAME"), ["from_jax:", "kernel_size", "required"]),
    (lambda: interop.from_jax((4,), 3, 2, [(1, 1.5)]), ["from_jax:", "padding[0][1]", "1.5"]),
    (lambda: interop.from_onnx(input_shape=(4,), kernel_shape=3.0), ["from_onnx:", "kernel_shape", "3.0"]),
    (lambda: interop.from_onnx(input_shape=(4,), kernel_shape=3, group=None), ["from_onnx:", "group", "None"]),
    (lambda: interop.from_tensorflow((4,), 3, output_shape=8.0), ["from_tensorflow:", "output_shape", "8.0"]),
    (lambda: interop.from_tensorflow(None, 3, output_shape=(8,)), ["from_tensorflow:", "input_shape", "None"]),
    (lambda: interop.from_keras((4,), 3.0), ["from_keras:", "kernel_size", "3.0"]),
    (lambda: interop.from_keras((4,), 3, 2, "same", output_padding=2), ["from_keras:", "output_padding[0]"]),
    (lambda: interop.from_keras((4,), 3, padding=None), ["from_keras:", "padding", "None"]),
    (lambda: interop.from_caffe(3, ndim=0), ["from_caffe:", "ndim", "0"]),
    (lambda: interop.from_caffe(None), ["from_caffe:", "kernel_size", "required"]),
    (lambda: interop.from_mxnet((4,), 3, pad=1.5), ["from_mxnet:", "pad", "1.5"]),
    (lambda: interop.from_mxnet((4,), 3, target_shape=2.0), ["from_mxnet:", "target_shape", "2.0"]),
]


@pytest.mark.parametrize("call, words", BOUNDARY_CASES)
def test_every_bad_argument_names_its_parameter(call, words):
    with pytest.raises(tc.TransconvError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def _torch_int(value):
    torch = pytest.importorskip("torch")
    return torch.tensor(value)


@pytest.mark.parametrize("make", [np.int64, np.int32, np.uint8, np.array, _torch_int, lambda v: [np.int16(v)] * 2,
                                  lambda v: np.array([v, v]), lambda v: (np.array(v), v)])
def test_integer_like_arguments_are_accepted_as_ints(make):
    x, w = np.arange(36.0).reshape(1, 1, 6, 6), np.arange(9.0).reshape(1, 1, 3, 3)
    expected = tc.conv_transpose(x, w, stride=2, padding=1, output_padding=1, dilation=1)
    got = tc.conv_transpose(x, w, stride=make(2), padding=make(1), output_padding=make(1), dilation=make(1))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(tc.conv(x, w, stride=make(2)), tc.conv(x, w, stride=2))


@pytest.mark.parametrize("make", [np.int64, np.array, _torch_int])
def test_integer_scalars_are_accepted_for_groups_and_k(make):
    x, w = np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3))
    np.testing.assert_array_equal(tc.conv(x, w, groups=make(2)), tc.conv(x, w, groups=2))
    np.testing.assert_allclose(tc.singular_values(np.ones((3, 3)), (6, 6), k=make(2)),
                               tc.singular_values(np.ones((3, 3)), (6, 6))[:2])


def test_the_layout_cache_does_not_confuse_equal_hashes():
    """True == 1 and 2.0 == 2 hash alike: a cached valid call must not let them through."""
    x, w = np.ones((5, 5)), np.ones((3, 3))
    tc.conv(x, w, stride=1)
    tc.conv(x, w, stride=2)
    for bad in (True, 2.0, (2.0, 2), (True, 1)):
        with pytest.raises(tc.TransconvError, match="stride"):
            tc.conv(x, w, stride=bad)
    tc.conv(x, w, plain=True)
    with pytest.raises(tc.TransconvError, match="plain"):
        tc.conv(x, w, plain=1)


def test_empty_batch_deconvolve_gives_an_empty_batch():
    x, info = tc.deconvolve(np.ones((0, 1, 2, 2)), np.ones((1, 1, 3, 3)), full_output=True)
    assert x.shape == (0, 1, 4, 4) and info.iterations.shape == (0,)


def test_zero_and_non_finite_weights():
    assert tc.operator_norm(np.zeros((3, 3)), (20, 20)) == 0.0
    assert tc.operator_norm(np.zeros((2, 3, 3, 3)), (20, 20)) == 0.0
    np.testing.assert_array_equal(tc.singular_values(np.zeros((3, 3)), (6, 6)), np.zeros(16))


# ---------------------------------------------------------------- the CLI: one line, exit 2, no traceback

from transconv.cli import main  # noqa: E402


def _bad_command_lines(tmp):
    existing = tmp / "existing.npz"
    existing.write_bytes(b"keep me")
    gif = tmp / "existing.gif"
    gif.write_bytes(b"keep me")
    html = tmp / "existing.html"
    html.write_bytes(b"keep me")
    full = tmp / "full"
    full.mkdir()
    (full / "picture.png").write_bytes(b"keep me")
    return [
        "shape -i 0", "shape -i x", "shape -k 0", "shape -s -1", "shape -p -1", "shape -p full", "shape -d 0",
        "shape --output-padding 1", "shape -i 4 -k 3,3,3", "shape -i 2 -k 9", "shape --ndim 4",
        "shape -i 4 --to 0", "shape -i 4,4 --to 8", "shape -i 4 --to 8 --max-kernel -1",
        "shape -i 4 --to 8 --max-stride 0", "shape -i 1 --to 10 --max-stride 1000000000 --transposed",
        "shape -i 4 --to 8 --max-kernel 1000000", "shape --transposed -p 5",
        "matrix -i 300 -k 3 -o C.npy", "matrix --step 999 -o m.png", "matrix --step -1 -o m.png",
        "matrix -i 100 -o m.png", "matrix -o C.bmp", f"matrix -o {tmp}", f"matrix -o {tmp}/missing/C.npz",
        f"matrix -o {existing}", "matrix -o /proc/C.npz", "matrix --kernel-values 1,2;3",
        "matrix --kernel-values a,b", "matrix -i 4 -k 2 --kernel-values 1,2,3,4",
        f"animate -o {tmp}/a.gif --fps 0", f"animate -o {tmp}/a.gif --fps -1", f"animate -o {tmp}/a.gif --fps nan",
        f"animate -o {tmp}/a.gif --fps inf", f"animate -o {tmp}/a.gif --max-frames 0",
        f"animate -i 2000 --max-frames 5 -o {tmp}/a.gif", f"animate -o {gif}", f"animate -o {tmp}",
        f"animate -o {tmp}/missing/a.gif", f"animate -o {tmp}/a.mp4", f"animate -i 4,4,4 -o {tmp}/a.gif",
        "animate -o /proc/a.gif", f"animate --view sideways -o {tmp}/a.gif",
        "explore --serve --port 70000", "explore --serve --port -1", f"explore -o {html}", f"explore -o {tmp}",
        f"explore -o {tmp}/missing/page.html", "explore -o /proc/page.html", "explore -i 4,4,4",
        f"demo --out {full}", f"demo --out {existing}", f"demo --out {tmp}/missing/deeper",
        "bench --layer nonexistent", "bench --repeats -1", "bench --repeats 0", "bench --op sideways",
        "nonexistent-command", "", "shape --bogus",
    ]


def test_every_bad_command_line_gives_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = _bad_command_lines(tmp_path)
    for line in lines:
        code = main(line.split())
        captured = capsys.readouterr()
        assert code == 2, (line, code, captured.err)
        assert captured.err.strip() and "Traceback" not in captured.err, (line, captured.err)
        assert len(captured.err.strip().splitlines()) == 1, (line, captured.err)
    for name in ("existing.npz", "existing.gif", "existing.html", "full/picture.png"):
        assert (tmp_path / name).read_bytes() == b"keep me", name


def test_force_overwrites_and_no_partial_file_is_left(tmp_path, capsys):
    target = tmp_path / "C.npz"
    target.write_bytes(b"old")
    assert main(["matrix", "-o", str(target), "--force"]) == 0
    import scipy.sparse as sp

    assert sp.load_npz(target).shape == (4, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["C.npz"]
