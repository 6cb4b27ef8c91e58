"""auto's measured choice: close candidates take turns on a problem's first calls, then the fastest runs."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import transconv as tc
from transconv.ops import compiled, dispatch

RNG = np.random.default_rng(0)
Y = RNG.standard_normal((2, 6, 9, 8)).astype(np.float32)
W = RNG.standard_normal((6, 4, 3, 3)).astype(np.float32)
KWARGS = dict(stride=2, padding=1, groups=2)


@pytest.fixture
def ran(monkeypatch):
    """Autotune on for calls of any size, split over the cores at any size (so their one-range
    variants are measured too); every method records its name when it runs."""
    names = []
    monkeypatch.setattr(dispatch, "_TUNE_ABOVE", 0.0)
    monkeypatch.setattr(compiled, "_SERIAL_BELOW", 0)
    monkeypatch.setattr(compiled, "_SPLIT_MACS", 0)
    for name, method in list(dispatch.METHODS.items()):
        def recorded(fn, name=name):
            def run(*args):
                names.append(name + (dispatch._ONE_RANGE if compiled.ONE_RANGE.get() else ""))
                return fn(*args)
            return run
        monkeypatch.setitem(dispatch.METHODS, name, dispatch.Method(
            name, recorded(method.conv), recorded(method.conv_transpose), method.cost, method.supports, method.auto))
    previous = tc.set_autotune(True)
    yield names
    tc.set_autotune(previous)


def _candidates() -> list[str]:
    costs = tc.choose_method(Y, W, transposed=True, **KWARGS).costs
    ranked = sorted(costs, key=costs.get)
    close = [m for m in ranked if costs[m] <= dispatch._TUNE_WITHIN * costs[ranked[0]]][: dispatch._TUNE_CANDIDATES]
    assert len(close) >= 2, costs  # the test needs a problem with close candidates
    if compiled.thread_count() > 1:
        close += [m + dispatch._ONE_RANGE for m in close if m in dispatch._SPLITS]
    return close


def test_close_candidates_take_turns_then_the_fastest_runs(ran):
    candidates = _candidates()
    expected = tc.conv_transpose(Y, W, method="reference", **KWARGS)
    ran.clear()
    trial_calls = dispatch._TUNE_CALLS * len(candidates)
    for _ in range(trial_calls + 3):
        np.testing.assert_allclose(tc.conv_transpose(Y, W, **KWARGS), expected, rtol=1e-5, atol=1e-5)
    assert ran[:trial_calls] == [m for m in candidates for _ in range(dispatch._TUNE_CALLS)]
    choice = tc.choose_method(Y, W, transposed=True, **KWARGS)
    assert set(choice.measured) == set(candidates)
    assert choice.fastest_measured == min(choice.measured, key=choice.measured.get)
    assert ran[trial_calls:] == [choice.fastest_measured] * 3
    assert "measured on its first calls" in str(choice) and f"runs {choice.fastest_measured}" in str(choice)


def test_one_range_runs_the_split_as_one_range_in_the_callers_thread():
    calls = []
    token = compiled.ONE_RANGE.set(True)
    try:
        compiled._split(5, 7, lambda *args: calls.append(args), macs=10**12, data_bytes=2**30)
    finally:
        compiled.ONE_RANGE.reset(token)
    assert calls == [(0, 5, 0, 7, True)]
    calls.clear()
    compiled._split(5, 7, lambda *args: calls.append(args), macs=10**12, data_bytes=2**30)  # unset again: the split as before
    covered = np.zeros((5, 7), dtype=int)
    for n0, n1, u0, u1, _ in calls:
        covered[n0:n1, u0:u1] += 1
    assert (covered == 1).all() and (len(calls) > 1) == (compiled.thread_count() > 1)


def test_explicit_methods_are_never_measured(ran):
    for _ in range(6):
        tc.conv_transpose(Y, W, method="direct", **KWARGS)
    assert ran == ["direct"] * 6
    assert tc.choose_method(Y, W, transposed=True, **KWARGS).measured == {}


def test_off_runs_the_models_pick_with_bitwise_repeatable_results(ran):
    tc.set_autotune(False)
    first = tc.conv_transpose(Y, W, **KWARGS)
    for _ in range(7):
        assert np.array_equal(tc.conv_transpose(Y, W, **KWARGS), first)
    choice = tc.choose_method(Y, W, transposed=True, **KWARGS)
    assert ran == [choice.method] * 8 and choice.measured == {} and choice.fastest_measured is None


def test_trials_shared_by_threads_give_correct_results(ran):
    candidates = _candidates()
    expected = tc.conv_transpose(Y, W, method="reference", **KWARGS)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tc.conv_transpose(Y, W, **KWARGS), range(24)))
    for got in results:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert tc.choose_method(Y, W, transposed=True, **KWARGS).fastest_measured in candidates


def test_layers_share_the_measurement(ran):
    layer = tc.nn.ConvTranspose2d(6, 8, 3, **KWARGS, bias=False)
    layer.weight[...] = W
    candidates = _candidates()
    for _ in range(dispatch._TUNE_CALLS * len(candidates) + 1):
        np.testing.assert_allclose(layer(Y), tc.conv_transpose(Y, W, method="reference", **KWARGS), rtol=1e-5,
                                   atol=1e-5)
    assert tc.choose_method(Y, W, transposed=True, **KWARGS).fastest_measured in candidates


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_set_autotune_takes_only_a_bool(value):
    with pytest.raises(tc.TransconvError, match=r"set_autotune: enabled must be True or False, got"):
        tc.set_autotune(value)


@pytest.mark.parametrize("value, expected", [(None, "False"), ("0", "False"), ("1", "True"), ("on", "True")])
def test_off_by_default_and_the_environment_variable_starts_it_on(value, expected):
    env = dict(os.environ, PYTHONPATH=str(Path(tc.__file__).parents[1]))
    env.pop("TRANSCONV_AUTOTUNE", None)
    if value is not None:
        env["TRANSCONV_AUTOTUNE"] = value
    code = "import transconv as tc; print(tc.set_autotune(False))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def _weight_grad_trials():
    return [t for k, t in dispatch._TRIALS.items() if k[0] == "conv_weight_grad"]


@pytest.mark.parametrize("transposed", [False, True])
def test_weight_gradient_measures_gemm_phase_and_swap(monkeypatch, transposed):
    from transconv.ops import weight_grad

    monkeypatch.setattr(weight_grad, "_TUNE_ABOVE", 0)
    previous = tc.set_autotune(True)
    try:
        if transposed:
            x, g = Y, tc.conv_transpose(Y, W, **KWARGS)
        else:
            x = RNG.standard_normal((2, 6, 11, 10)).astype(np.float32)
            g = tc.conv(x, W.reshape(6, 4, 3, 3)[:, :3], **KWARGS)
        shape = W.shape if transposed else (6, 3, 3, 3)
        expected = tc.conv_weight_grad(x, g, shape, transposed=transposed, method="reference", **KWARGS)
        for _ in range(3 * dispatch._TUNE_CALLS + 2):
            got = tc.conv_weight_grad(x, g, shape, transposed=transposed, **KWARGS)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        (trials,) = _weight_grad_trials()
        assert sorted(trials.candidates) == ["gemm", "phase", "swap"]
        assert trials.fastest == min(trials.seconds, key=trials.seconds.get)
    finally:
        tc.set_autotune(previous)


def test_weight_gradient_leaves_phase_out_when_its_partials_are_large(monkeypatch):
    from transconv.ops import weight_grad

    monkeypatch.setattr(weight_grad, "_TUNE_ABOVE", 0)
    monkeypatch.setattr(weight_grad, "_COLUMN_BYTES", 1)
    previous = tc.set_autotune(True)
    try:
        x = RNG.standard_normal((2, 64, 9, 9)).astype(np.float32)  # 64 x 64 channel pairs: the rule picks gemm
        g = RNG.standard_normal((2, 64, 7, 7)).astype(np.float32)
        tc.conv_weight_grad(x, g, (64, 64, 3, 3))
        (trials,) = _weight_grad_trials()
        assert trials.candidates == ["gemm", "swap"]
    finally:
        tc.set_autotune(previous)


def test_small_calls_run_as_one_range_and_large_ones_split():
    """Under ``_SPLIT_MACS`` multiply-adds on under ``_SPLIT_BYTES`` of data a call runs as one
    range in the caller's thread; past either bound the cores split it (with two or more threads)."""
    for macs, data_bytes, split in [(compiled._SPLIT_MACS - 1, compiled._SPLIT_BYTES - 1, False),
                                    (compiled._SPLIT_MACS, compiled._SPLIT_BYTES - 1, True),
                                    (compiled._SERIAL_BELOW, compiled._SPLIT_BYTES, True),
                                    (compiled._SERIAL_BELOW - 1, 2**40, False)]:
        calls = []
        compiled._split(5, 7, lambda *args: calls.append(args), macs=macs, data_bytes=data_bytes)
        assert compiled.splits(macs, data_bytes) == split
        if split and compiled.thread_count() > 1:
            assert len(calls) > 1 and all(args[4] for args in calls)
        else:
            assert calls == [(0, 5, 0, 7, True)]


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_split_ranges_tile_the_call_and_cut_samples_unless_they_leave_a_core_idle(workers):
    """``_split``'s ranges cover every (sample, unit) pair once; they cut samples when those keep
    the cores busy over ``_EVEN_ENOUGH`` of the time, else the axis that shares out more evenly."""
    for n in range(1, 26):
        for units in (1, 2, 3, 7, 62):
            if n < workers and units < workers:
                continue  # _split runs these as one range with parallel kernels
            ranges = compiled._ranges(n, units, workers)
            covered = np.zeros((n, units), dtype=int)
            for n0, n1, u0, u1 in ranges:
                covered[n0:n1, u0:u1] += 1
            assert (covered == 1).all() and len(ranges) <= workers
            busy, busy_units = (count / (workers * -(-count // workers)) for count in (n, units))
            by_samples = all((u0, u1) == (0, units) for _, _, u0, u1 in ranges)
            if n < workers:
                assert not by_samples or units == 1
            elif by_samples:
                assert busy > compiled._EVEN_ENOUGH or busy >= busy_units
            else:
                assert busy <= compiled._EVEN_ENOUGH and busy_units > busy
    assert compiled._ranges(3, 62, 2) == [(0, 3, 0, 31), (0, 3, 31, 62)]
