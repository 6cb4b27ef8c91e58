"""Fork safety: a process that forks after a transconv call gets a working library in the child.

Each method runs in the parent first (so its thread pools and OpenMP runtime exist), then the
same call runs in a forked child (serially there, so the last bits may differ: results are
compared to 1e-5); every child is waited on with a timeout, so a hang fails the test
instead of stalling the suite.
"""

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import transconv as tc

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")

METHODS = ["reference", "direct", "gemm", "compiled_direct", "phase"]
TIMEOUT = 120.0  # seconds: the child compiles the serial kernels on first use


def _arrays():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    return x, w


def _both(method):
    x, w = _arrays()
    return (tc.conv_transpose(x, w, stride=2, padding=1, method=method),
            tc.conv(x, w.transpose(1, 0, 2, 3).copy(), stride=2, padding=1, method=method))


def _wait(pid: int) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {TIMEOUT} s")


@pytest.mark.parametrize("method", METHODS)
def test_os_fork_after_each_method(method):
    expected = _both(method)
    pid = os.fork()
    if pid == 0:  # child: exit 0 only if the results equal the parent's
        try:
            got = _both(method)
            ok = all(np.allclose(a, b, rtol=1e-5, atol=1e-5) for a, b in zip(expected, got))
            os._exit(0 if ok else 3)
        except BaseException:
            os._exit(4)
    assert _wait(pid) == 0


def _child_task(method):
    return _both(method)


def test_multiprocessing_fork_context_after_every_method():
    expected = {m: _both(m) for m in METHODS}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        results = {m: pool.apply_async(_child_task, (m,)) for m in METHODS}
        for m in METHODS:
            got = results[m].get(timeout=TIMEOUT)
            for a, b in zip(expected[m], got):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_process_pool_executor_fork_after_auto():
    x, w = _arrays()
    expected = tc.conv_transpose(x, w, stride=2)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(tc.conv_transpose, x, w, stride=2) for _ in range(2)]
        for f in futures:
            np.testing.assert_allclose(f.result(timeout=TIMEOUT), expected, rtol=1e-5, atol=1e-5)
