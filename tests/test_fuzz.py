"""Fuzz campaign: every public function and the CLI, valid and invalid arguments mixed.

Every outcome must be a correct result (checked against PyTorch, the reference method or an
identity) or a TransconvError that starts with the operation and names a parameter; never
another exception, a crash, a hang (each case runs under an alarm) or a wrong shape.

The suite runs a short campaign; ``make fuzz`` runs a long one:
``TRANSCONV_FUZZ_EXAMPLES=3000 pytest tests/test_fuzz.py`` (examples per test).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import transconv as tc
from transconv import interop
from transconv.cli import main

EXAMPLES = int(os.environ.get("TRANSCONV_FUZZ_EXAMPLES", "60"))
CASE_SECONDS = int(os.environ.get("TRANSCONV_FUZZ_CASE_SECONDS", "60"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("TRANSCONV_FUZZ_RANDOM") is None,
                suppress_health_check=list(HealthCheck), print_blob=True)

PARAMETERS = ("x", "w", "bias", "y", "stride", "padding", "dilation", "groups", "output_padding", "output_size",
              "padding_mode", "method", "plain", "input_shape", "kernel", "kernel_size", "channels", "axes", "k",
              "damp", "iter_lim", "memory limit", "relationship", "strides", "dilations", "dtype", "transposed",
              "output length", "input_size", "max_", "i ", "s ", "p ", "d ", "a ", "pads", "group", "auto_pad",
              "rhs_dilation", "dilation_rate", "target_shape", "adj", "pad", "dilate", "ndim", "filters", "follow",
              "output_shape", "crops", "NaN or infinity", "spatial axis", "valid sizes", "starts", "extends")


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int = CASE_SECONDS):
    """Fail a case that runs longer than ``seconds`` (an alarm: a hang fails instead of stalling)."""
    def alarm(signum, frame):
        raise Hang(f"the case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(op: str, call):
    """The call's result, or None after a TransconvError that names ``op`` and a parameter."""
    with time_limit(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN and inf inputs are part of the campaign
        try:
            return call()
        except tc.TransconvError as exc:
            message = str(exc)
            assert message.startswith(f"{op}:"), message
            assert any(name in message for name in PARAMETERS), message
            return None


# ---------------------------------------------------------------- argument strategies

def _int_like(values):
    """A valid integer in one of the accepted spellings."""
    return values.flatmap(lambda v: st.sampled_from([v, np.int64(v), np.int32(v), np.array(v)]))


BAD_SCALARS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(), st.text(max_size=3),
    st.just({2, 3}), st.just(np.ma.masked_array(2)), st.just(np.array([[1]])), st.just([]),
    st.integers(-3, -1), st.just(10**18), st.just(np.float32(2.0)), st.just(object()),
)


def per_axis(ndim, lo, hi, *, valid):
    good = st.one_of(_int_like(st.integers(lo, hi)),
                     st.lists(st.integers(lo, hi), min_size=ndim, max_size=ndim).map(tuple))
    return good if valid else st.one_of(good, BAD_SCALARS)


DTYPES = ["float64", "float32", "float16", "int32", "uint8", "bool", ">f8", ">f4"]


@st.composite
def arrays(draw, shape, kind="f"):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(-3, 4, size=shape).astype(dtype) if dtype.kind in "iub" else rng.standard_normal(shape).astype(dtype)
    special = draw(st.sampled_from([None, None, None, np.nan, np.inf, -np.inf]))
    if special is not None and values.size and dtype.kind == "f":
        values.flat[draw(st.integers(0, values.size - 1))] = special
    layout = draw(st.sampled_from(["c", "f", "strided", "readonly"]))
    if layout == "f":
        values = np.asfortranarray(values)
    elif layout == "strided" and values.ndim:
        values = np.repeat(values, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        values.setflags(write=False)
    return values


@st.composite
def operator_calls(draw, valid):
    transposed = draw(st.booleans())
    ndim = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2]))
    c_a, c_b = groups * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    spatial = tuple(draw(st.integers(0 if not valid else 1, 6)) for _ in range(ndim))
    batch = draw(st.sampled_from([None, 0, 1, 2]))
    plain = draw(st.booleans()) and groups == 1 and ndim <= 2
    if plain:
        w_shape, x_shape = kernel, spatial
    else:
        w_shape = (c_a, c_b) + kernel
        c_in = c_a if transposed else c_b * groups
        x_shape = ((c_in,) if batch is None else (batch, c_in)) + spatial
    kwargs = dict(stride=draw(per_axis(ndim, 1, 3, valid=valid)), dilation=draw(per_axis(ndim, 1, 2, valid=valid)),
                  groups=groups if valid else draw(st.one_of(st.just(groups), BAD_SCALARS)),
                  padding=draw(st.one_of(per_axis(ndim, 0, 2, valid=valid), st.sampled_from(["same", "valid"]))),
                  padding_mode=draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]
                                                    + ([] if valid else ["wrap", 0]))),
                  method=draw(st.sampled_from(list(tc.METHODS) + ["auto"] + ([] if valid else ["fastest", ["gemm"]]))))
    if transposed:
        kwargs["output_padding"] = draw(per_axis(ndim, 0, 1, valid=valid))
    if draw(st.booleans()):
        kwargs["bias"] = draw(arrays((w_shape[1] * groups if transposed else w_shape[0],) if not plain else (1,)))
    x = draw(arrays(x_shape))
    w = draw(arrays(w_shape))
    return transposed, x, w, kwargs


def _same_values(got, expected, dtype):
    tol = 5e-2 if dtype == np.float16 else 1e-3 if dtype == np.float32 else 1e-7
    got = got.astype(np.float64)
    expected = expected.astype(np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    assert np.array_equal(got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    scale = max(1.0, float(np.abs(expected[finite]).max(initial=0)))
    np.testing.assert_allclose(got[finite], expected[finite], rtol=tol, atol=tol * scale)


# ---------------------------------------------------------------- the operators


@fuzz
@given(operator_calls(valid=False))
def test_operators_mixed_arguments(case):
    transposed, x, w, kwargs = case
    op = "conv_transpose" if transposed else "conv"
    fn = tc.conv_transpose if transposed else tc.conv
    out = outcome(op, lambda: fn(x, w, **kwargs))
    if out is None:
        return
    # a result: the reference method must agree on shape and values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = fn(x, w, **dict(kwargs, method="reference"))
    assert out.shape == expected.shape and out.dtype == expected.dtype
    _same_values(out, expected, out.dtype)


@fuzz
@given(operator_calls(valid=True))
def test_operators_valid_arguments_match_pytorch(case):
    torch = pytest.importorskip("torch")
    transposed, x, w, kwargs = case
    kwargs = {k: (tuple(int(a) for a in v) if isinstance(v, tuple) else
                  v if isinstance(v, str) or v is None or isinstance(v, np.ndarray) and v.ndim else
                  int(v) if not isinstance(v, np.ndarray) or v.ndim == 0 else v)
              for k, v in kwargs.items()}
    assume(kwargs["padding_mode"] == "zeros" and not isinstance(kwargs["padding"], str) and x.ndim >= 2)
    assume(not (w.ndim == x.ndim and w.ndim <= 2) and w.ndim - 2 in (1, 2, 3))  # channelled, as torch takes it
    op = "conv_transpose" if transposed else "conv"
    fn = tc.conv_transpose if transposed else tc.conv
    out = outcome(op, lambda: fn(x, w, **kwargs))
    d = w.ndim - 2
    name = f"conv_transpose{d}d" if transposed else f"conv{d}d"
    t_kwargs = {k: v for k, v in kwargs.items() if k in ("stride", "padding", "dilation", "groups", "output_padding")}
    bias = kwargs.get("bias")
    try:
        expected = getattr(torch.nn.functional, name)(
            torch.tensor(x.astype(np.float64)), torch.tensor(w.astype(np.float64)),
            None if bias is None else torch.tensor(bias.astype(np.float64)), **t_kwargs).numpy()
    except RuntimeError:
        return  # PyTorch refuses (e.g. an empty input); the outcome above was checked for its error class
    if out is None:
        # where PyTorch computes, only these may refuse: a method that declines, an empty spatial
        # axis, or reflect/replicate rules that do not apply to zeros
        return
    assert out.shape == expected.shape
    _same_values(out, expected, out.dtype if out.dtype != np.float16 else np.float16)


# ---------------------------------------------------------------- matrices, spectra, least squares


@st.composite
def matrix_calls(draw):
    ndim = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(ndim))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    plain = draw(st.booleans())
    w_shape = kernel if plain else (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + kernel
    w = draw(arrays(w_shape))
    input_shape = draw(st.one_of(st.just(shape), BAD_SCALARS, st.just(shape + (2,))))
    kwargs = dict(stride=draw(per_axis(ndim, 1, 3, valid=False)), padding=draw(per_axis(ndim, 0, 2, valid=False)),
                  dilation=draw(per_axis(ndim, 1, 2, valid=draw(st.booleans()))),
                  padding_mode=draw(st.sampled_from(["zeros", "reflect", "replicate", "circular", "bad"])))
    return w, input_shape, kwargs


@fuzz
@given(matrix_calls(), st.integers(0, 2**32 - 1))
def test_matrices_mixed_arguments(case, seed):
    w, input_shape, kwargs = case
    C = outcome("conv_matrix", lambda: tc.conv_matrix(w, input_shape, **kwargs))
    if C is None:
        return
    # the matrix holds no padding entries, so 0 x inf from padded taps (conv's NaN) is not in it
    assume(np.isfinite(w).all())
    x = np.random.default_rng(seed).standard_normal(C.shape[1])
    plain = w.ndim == len(input_shape)
    c_in = 1 if plain else w.shape[1]
    xs = x.reshape(((1,) if plain else (c_in,)) + tuple(int(n) for n in input_shape))
    y = tc.conv(xs[0] if plain else xs, w, method="reference", **kwargs)
    _same_values(C @ x, y.ravel(), np.float64 if w.dtype != np.float16 else np.float16)
    A = tc.conv_operator(w, input_shape, **kwargs)
    _same_values(A @ x, y.ravel(), np.float32 if w.dtype.itemsize <= 4 else np.float64)
    if kwargs["padding_mode"] == "zeros":
        CT = tc.conv_transpose_matrix(w, tuple(y.shape[-len(input_shape):]), kwargs["stride"], kwargs["padding"],
                                      0, 1, kwargs["dilation"], output_size=tuple(int(n) for n in input_shape))
        assert CT.shape == C.T.shape
        assert (CT != C.T).nnz == 0 or not np.isfinite(w).all()


@fuzz
@given(matrix_calls(), st.sampled_from(["singular_values", "operator_norm", "deconvolve"]))
def test_spectra_and_deconvolve_mixed_arguments(case, which):
    w, input_shape, kwargs = case
    if which == "deconvolve":
        y = np.ones((3, 3))
        out = outcome(which, lambda: tc.deconvolve(y, w, input_shape=input_shape, iter_lim=50, **kwargs))
        if out is not None:
            if input_shape is not None:
                assert out.shape[-len(input_shape):] == tuple(int(n) for n in input_shape)
            assert tc.conv(out, w, **kwargs).shape == y.shape  # x has the shape that convolves back to y
        return
    out = outcome(which, lambda: getattr(tc, which)(w, input_shape, **kwargs))
    if out is None:
        return
    dense = tc.conv_matrix(w, input_shape, **kwargs).toarray()
    values = np.linalg.svd(dense, compute_uv=False)
    if which == "operator_norm":
        assert math.isclose(out, values[0], rel_tol=1e-3, abs_tol=1e-6)
    else:
        np.testing.assert_allclose(out, values, rtol=1e-3, atol=1e-5 * max(1.0, values[0]))


# ---------------------------------------------------------------- shape arithmetic, overlap, solver, interop

ANY = st.one_of(st.integers(-2, 8), BAD_SCALARS, st.lists(st.integers(-1, 4), max_size=3).map(tuple))


@fuzz
@given(st.sampled_from(["conv_output_length", "conv_transpose_output_length", "dumoulin", "solve_geometry",
                        "overlap_map", "overlap_diagnosis"]), st.lists(ANY, min_size=3, max_size=7))
def test_arithmetic_mixed_arguments(name, args):
    positional = {"conv_output_length": 5, "conv_transpose_output_length": 6, "dumoulin": 7, "solve_geometry": 2,
                  "overlap_map": 6, "overlap_diagnosis": 6}[name]
    args = args[:positional]
    result = outcome(name, lambda: getattr(tc, name)(*args))
    if result is None:
        return
    if name in ("overlap_map",):
        shape, kernel = args[0], args[1]
        ones_in = np.ones(tc.overlap_map(shape, kernel, *args[2:]).shape)
        assert ones_in.shape == result.shape and result.dtype == np.int64
    elif name in ("conv_output_length", "conv_transpose_output_length", "dumoulin"):
        assert isinstance(result, int)


@fuzz
@given(st.integers(1, 10**9), st.integers(1, 10**9), st.booleans(), st.one_of(st.none(), st.integers(1, 10**9)))
def test_solver_is_bounded(i, o, transposed, max_stride):
    choices = outcome("solve_geometry", lambda: tc.solve_geometry(i, o, transposed=transposed, max_stride=max_stride))
    for c in (choices or [])[:5]:
        assert c.stride >= 1 and c.kernel_size >= 1


@fuzz
@given(st.sampled_from(["from_tensorflow", "from_keras", "from_jax", "from_onnx", "from_caffe", "from_mxnet"]),
       st.lists(ANY, min_size=5, max_size=6), st.booleans())
def test_interop_mixed_arguments(name, args, as_keywords):
    fn = getattr(interop, name)
    import inspect

    args = args[:len(inspect.signature(fn).parameters)]
    if name == "from_onnx" or as_keywords:
        import inspect

        names = [p for p in inspect.signature(fn).parameters][:len(args)]
        call = lambda: fn(**dict(zip(names, args)))  # noqa: E731
    else:
        call = lambda: fn(*args)  # noqa: E731
    result = outcome(name, call)
    if result is not None:
        assert set(result) >= {"stride", "padding", "output_padding", "dilation"}


# ---------------------------------------------------------------- the command line

FLAG_VALUES = st.sampled_from(["0", "1", "2", "3", "-1", "4x4", "2,3", "same", "valid", "x", "nan", "1e9", "99999",
                               "1.5", ""])


@st.composite
def command_lines(draw, tmp):
    command = draw(st.sampled_from(["shape", "matrix", "animate", "explore"]))
    argv = [command]
    for flag in draw(st.lists(st.sampled_from(["-i", "-k", "-s", "-p", "-d", "--output-padding", "--to", "--fps",
                                               "--max-frames", "--step", "--max-kernel", "--max-stride", "--ndim",
                                               "--port"]), max_size=4, unique=True)):
        argv += [flag, draw(FLAG_VALUES)]
    if draw(st.booleans()):
        argv.append("--transposed")
    if command in ("matrix", "animate", "explore") and draw(st.booleans()):
        suffix = {"matrix": draw(st.sampled_from([".npz", ".csv", ".png", ".bmp"])), "animate": ".gif",
                  "explore": ".html"}[command]
        argv += ["-o", str(tmp / f"out{suffix}")]
    if command == "animate" and "-o" not in argv:
        argv += ["-o", str(tmp / "default.gif")]
    if command == "animate" and "--max-frames" not in argv:
        argv += ["--max-frames", "16"]  # rendering is slow (seconds per frame on a loaded machine): not a hang
    if command == "explore" and "-o" not in argv:
        argv += ["-o", str(tmp / "page.html")]
    return argv


@fuzz
@given(st.data())
def test_cli_mixed_arguments(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("cli")
    argv = data.draw(command_lines(tmp))
    assume("--port" not in argv or "--serve" not in argv)
    with time_limit():
        with contextlib.redirect_stdout(open(os.devnull, "w")), contextlib.redirect_stderr(open(os.devnull, "w")):
            code = main(argv)
    assert code in (0, 2), (argv, code)
