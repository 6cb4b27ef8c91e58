"""Bounded work: the memory guard refuses what would not fit, the geometry solver never searches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import transconv as tc
from transconv.cli import main
from transconv.limits import ENV_VAR
from transconv.spec import conv_output_length, conv_transpose_output_length, effective_kernel


@pytest.fixture
def one_gib():
    tc.set_memory_limit(2**30)
    yield 2**30
    tc.set_memory_limit(None)


BIG_CALLS = [  # issue 13's reproducers: MemoryError, "array is too big", or gigabytes before failing
    ("conv_transpose", lambda: tc.conv_transpose(np.ones((1, 1, 4, 4), "f4"), np.ones((1, 1, 3, 3), "f4"), stride=10**6)),
    ("conv_transpose", lambda: tc.conv_transpose(np.ones((1, 1, 4), "f4"), np.ones((1, 1, 3), "f4"), stride=10**18)),
    ("conv", lambda: tc.conv(np.ones((1, 1, 4)), np.ones((1, 1, 3)), padding=10**15)),
    ("conv_matrix", lambda: tc.conv_matrix(np.ones((9, 9)), (20000, 20000))),
    ("conv_transpose_matrix", lambda: tc.conv_transpose_matrix(np.ones((9, 9)), (20000, 20000))),
    ("singular_values", lambda: tc.singular_values(np.ones((64, 64, 3, 3)), (1024, 1024), padding=1,
                                                   padding_mode="circular")),
    ("singular_values", lambda: tc.singular_values(np.ones((3, 3)), (600, 200000), k=3)),
    ("overlap_map", lambda: tc.overlap_map((10**5, 10**5), 3, stride=2)),
    ("operator_norm", lambda: tc.operator_norm(np.ones((3, 3)), (20000, 20000))),
]


@pytest.mark.parametrize("op, call", BIG_CALLS)
def test_allocations_past_the_limit_are_refused_before_they_start(op, call, one_gib):
    with pytest.raises(tc.TransconvError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{op}:") and "memory limit of 1 GiB" in message, message


def test_conv_operator_checks_each_product_before_it_runs():
    A = tc.conv_operator(np.ones((3, 3)), (1000, 1000))  # nothing allocated yet
    v = np.ones(A.shape[1], dtype=np.float32)
    tc.set_memory_limit(2**20)
    try:
        with pytest.raises(tc.TransconvError, match="conv_operator: .* memory limit"):
            A @ v  # 4 MB in, 10 MB of result and work
    finally:
        tc.set_memory_limit(None)
    assert (A @ v).shape == (998 * 998,)


def test_limit_sources_in_order(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    default = tc.get_memory_limit()
    assert 0 < default
    monkeypatch.setenv(ENV_VAR, "64M")
    assert tc.get_memory_limit() == 64 * 2**20
    monkeypatch.setenv(ENV_VAR, "1.5G")
    assert tc.get_memory_limit() == int(1.5 * 2**30)
    monkeypatch.setenv(ENV_VAR, "4096")
    assert tc.get_memory_limit() == 4096
    tc.set_memory_limit(np.int64(5000))
    try:
        assert tc.get_memory_limit() == 5000  # the call beats the environment
    finally:
        tc.set_memory_limit(None)
    monkeypatch.setenv(ENV_VAR, "lots")
    with pytest.raises(tc.TransconvError, match=ENV_VAR):
        tc.get_memory_limit()


@pytest.mark.parametrize("bad", [0, -5, 1.5, "x", True, [1]])
def test_set_memory_limit_refuses_non_sizes(bad):
    with pytest.raises(tc.TransconvError, match="set_memory_limit"):
        tc.set_memory_limit(bad)


def test_a_small_limit_refuses_small_calls_and_none_restores_it():
    x, w = np.ones((1, 1, 64, 64)), np.ones((1, 1, 3, 3))
    tc.set_memory_limit(1000)
    try:
        with pytest.raises(tc.TransconvError, match="conv: the result and its work buffers would take"):
            tc.conv(x, w)
    finally:
        tc.set_memory_limit(None)
    assert tc.conv(x, w).shape == (1, 1, 62, 62)


def test_cli_checks_limits_before_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "1M")
    assert main(["matrix", "-i", "300", "-k", "3", "-o", str(tmp_path / "C.npy")]) == 2
    assert "memory limit" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- the geometry solver: closed form, no search


def _search(i, o, transposed, max_kernel, max_stride, max_dilation):
    """The definition, by exhaustive search (the old implementation)."""
    found = set()
    for d in range(1, max_dilation + 1):
        for k in range(1, max_kernel + 1):
            if d > 1 and k == 1:
                continue
            k_eff = effective_kernel(k, d)
            for s in range(1, max_stride + 1):
                for p in range(k_eff):
                    if transposed:
                        a = o - conv_transpose_output_length(i, k, s, (p, p), d, 0)
                        if 0 <= a < max(s, d):
                            found.add((k, s, p, a, d))
                    elif i + 2 * p >= k_eff and conv_output_length(i, k, s, (p, p), d) == o:
                        found.add((k, s, p, 0, d))
    return found


@given(st.integers(1, 12), st.integers(1, 30), st.booleans(), st.integers(1, 5), st.integers(1, 14), st.integers(1, 3))
def test_solver_lists_exactly_what_the_search_finds(i, o, transposed, max_kernel, max_stride, max_dilation):
    got = tc.solve_geometry(i, o, transposed=transposed, max_kernel=max_kernel, max_stride=max_stride,
                            max_dilation=max_dilation)
    listed = [(c.kernel_size, c.stride, c.padding, c.output_padding, c.dilation) for c in got]
    assert len(listed) == len(set(listed))
    assert set(listed) == _search(i, o, transposed, max_kernel, max_stride, max_dilation)


@pytest.mark.parametrize("args, kwargs", [((1, 10**7), {}), ((5, 10), dict(max_stride=10**9)),
                                          ((1, 10**9), {}), ((10**9, 1), dict(transposed=False))])
def test_solver_is_bounded_for_huge_sizes(args, kwargs):
    choices = tc.solve_geometry(*args, **kwargs)
    assert choices and len(choices) < 1000
    c = choices[0]
    length = (conv_transpose_output_length(args[0], c.kernel_size, c.stride, (c.padding, c.padding), c.dilation, c.output_padding)
              if kwargs.get("transposed", True) else
              conv_output_length(args[0], c.kernel_size, c.stride, (c.padding, c.padding), c.dilation))
    assert length == args[1]


def test_cli_solver_with_a_billion_returns(capsys):
    assert main(["shape", "-i", "1", "--to", "1000000000", "--transposed"]) == 0
    assert "stride=1000000000" in capsys.readouterr().out
