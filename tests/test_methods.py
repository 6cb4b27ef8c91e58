"""The fast methods: blocking, every method on larger layers, choose_method's explanation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import transconv as tc
from transconv.ops import compiled

from _strategies import cases

FAST = [m for m in tc.METHODS if m != "reference"]
STRIDE_ONE = {"shift"}  # methods that decline strides above 1 (unless the kernel has one tap)


def _stride(method: str, stride: int) -> int:
    return 1 if method in STRIDE_ONE else stride


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize("batch", [1, 5])  # 1: parallel kernels in row chunks; 5: one range per worker
def test_blocks_of_samples_agree_with_one_block(method, transposed, batch):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    kwargs = dict(stride=_stride(method, 2), padding=1, groups=2)
    if transposed:
        x = rng.standard_normal((batch, 6, 7, 6)).astype(np.float32)
        run = lambda m: tc.conv_transpose(x, w, output_padding=kwargs["stride"] - 1, method=m, **kwargs)  # noqa: E731
    else:
        x = rng.standard_normal((batch, 8, 13, 12)).astype(np.float32)
        w_conv = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)  # (C_out, C_in/groups, k, k)
        run = lambda m: tc.conv(x, w_conv, method=m, **kwargs)  # noqa: E731
    expected = run("reference")
    np.testing.assert_allclose(run(method), expected, rtol=1e-4, atol=1e-4)
    # the smallest blocks: one sample, one output channel (conv_transpose) or one output row (conv)
    with compiled.tuned(block_bytes=1):
        np.testing.assert_allclose(run(method), expected, rtol=1e-4, atol=1e-4)


@settings(deadline=None)
@given(case=cases(max_ndim=3), transposed=st.booleans())
def test_row_plan_is_the_connectivity(case, transposed):
    """Rebuilding every (tap, small position) -> large position from the row plan gives the
    connectivity's own per-axis maps, for the conv and the transposed direction."""
    from transconv.connectivity import axis_tap_indices, transpose_axis_tap_indices
    from transconv.spec import conv_spec, conv_transpose_spec

    if transposed:
        spec = conv_transpose_spec("conv_transpose", case.small, case.kernel, case.stride, case.padding,
                                   case.output_padding, case.groups, case.dilation)
        small, big = case.small, spec.transpose_output_shape(case.small)
        plan = compiled.transpose_row_plan(spec, small)
        maps = transpose_axis_tap_indices(spec, small)
    else:
        spec = conv_spec("conv", case.big, case.kernel, case.stride, case.padding, case.dilation, case.groups)
        big = case.big
        small = spec.conv_output_shape(big)
        plan = compiled.conv_row_plan(spec, big)
        maps = axis_tap_indices(spec, big)
    # expected: the full table from the maps, as big flat positions
    grids = np.meshgrid(*[np.arange(k) for k in case.kernel], *[np.arange(n) for n in small], indexing="ij")
    d = len(small)
    expected = np.zeros(grids[0].shape, dtype=np.int64)
    valid = np.ones(grids[0].shape, dtype=bool)
    for a in range(d):
        m = maps[a][grids[d + a], grids[a]]
        valid &= m >= 0
        expected = expected * big[a] + np.where(m >= 0, m, 0)
    expected = np.where(valid, expected, -1).reshape(int(np.prod(case.kernel)), -1)
    # from the plan: outer rows and last-axis runs
    kl, w_small, w_big = plan.last_taps, plan.small_width, plan.big_width
    got = np.full_like(expected, -1)
    for t in range(expected.shape[0]):
        to, j = divmod(t, kl)
        for r in range(plan.small_rows):
            row = plan.outer[to, r]
            i = np.arange(plan.lo[j], plan.hi[j])
            if row >= 0 and i.size:
                got[t, r * w_small + i] = row * w_big + plan.stride * (i + plan.shift[j]) + plan.phase[j]
    np.testing.assert_array_equal(got, expected)
    # zero-margined phase slots: every read in range, and on data exactly where the tap meets the row
    margin, pitch = compiled.phase_margins(plan)
    i = np.arange(w_small)
    for j in np.nonzero(plan.hi > plan.lo)[0]:
        m = i + plan.shift[j]
        assert margin + m.min() >= 0 and margin + m.max() < pitch
        count = -(-(w_big - plan.phase[j]) // plan.stride)  # positions of the tap's phase
        np.testing.assert_array_equal((m >= 0) & (m < count), (i >= plan.lo[j]) & (i < plan.hi[j]))
    # the scatter's phase planes, merged into one run per tap or one per input row: rebuild the table from them
    if transposed:
        for merge in (True, False):
            planes = compiled.phase_planes(spec, small, merge)
            whole = tuple(-(-b // s) for b, s in zip(big, spec.stride))
            merged = merge and all(q <= n for q, n in zip(whole[1:], small[1:])) and (
                expected.shape[0] * whole[0] * int(np.prod(small[1:])) <= compiled._MASK_BYTES)
            assert planes.grid == ((whole[0],) + tuple(small[1:]) if merged else whole)
            rebuilt = np.full_like(expected, -1)
            rho = np.array(np.unravel_index(planes.phase_of, spec.stride))  # (ndim, T)
            T, block_len = expected.shape[0], planes.block_rows * planes.grid[-1]
            assert planes.blocks == -(-int(np.prod(planes.grid[:-1])) // planes.block_rows)
            for b, t in np.ndindex(planes.blocks, T):
                e = slice(planes.seg_ptr[b * T + t], planes.seg_ptr[b * T + t + 1])
                for src, dst, length in zip(planes.src[e], planes.dst[e], planes.length[e]):
                    assert 0 <= dst and dst + length <= block_len  # inside its block
                    k = np.arange(length)
                    position = b * block_len + dst + k
                    if planes.masked[t]:
                        k, position = k[planes.mask[t, position] == 1], position[planes.mask[t, position] == 1]
                    elif merged:  # a run with no mask meets no padding
                        assert planes.mask[t, position].all()
                    J = np.array(np.unravel_index(position, planes.grid))
                    pos = J * np.array(spec.stride)[:, None] + rho[:, t:t + 1]
                    assert (rebuilt[t, src + k] == -1).all()  # each pair once
                    rebuilt[t, src + k] = np.ravel_multi_index(tuple(pos), big)
            np.testing.assert_array_equal(rebuilt, expected)
            # output row o is interleaved from grid row row_of[o] of its outer phase's planes, in its block
            width = planes.grid[-1]
            block_of = np.zeros(len(planes.row_start), dtype=np.int64)
            assert sorted(planes.row_order.tolist()) == list(range(len(block_of)))
            for b in range(planes.blocks):
                rows = planes.row_order[planes.row_ptr[b]:planes.row_ptr[b + 1]]
                assert (np.diff(rows) > 0).all()
                block_of[rows] = b
            assert (planes.row_start % width == 0).all() and (planes.row_start < planes.block_rows * width).all()
            row_of = block_of * planes.block_rows + planes.row_start // width
            if len(big) > 1:
                outer = np.indices(big[:-1]).reshape(len(big) - 1, -1)
                stride = np.array(spec.stride[:-1])[:, None]
                np.testing.assert_array_equal(row_of, np.ravel_multi_index(tuple(outer // stride), planes.grid[:-1]))
                np.testing.assert_array_equal(planes.row_phase // spec.stride[-1],
                                              np.ravel_multi_index(tuple(outer % stride), spec.stride[:-1]))
            else:
                assert row_of.tolist() == [0] and planes.row_phase.tolist() == [0]
    # the inverse (pairs per big row) lists exactly the valid outer entries
    pairs = sorted(zip(plan.pair_tap.tolist(), plan.pair_row.tolist()))
    assert pairs == sorted(zip(*[v.tolist() for v in np.nonzero(plan.outer >= 0)]))
    for o in range(plan.big_rows):
        e = slice(plan.ptr[o], plan.ptr[o + 1])
        assert (plan.outer[plan.pair_tap[e], plan.pair_row[e]] == o).all()


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("layer", [
    # (x shape, w shape, kwargs): decoder layers in small, the shapes the benchmark runs in large
    ((4, 32, 4, 4), (32, 16, 4, 4), dict(stride=2, padding=1)),
    ((2, 16, 8, 8), (16, 8, 2, 2), dict(stride=2)),
    ((2, 8, 6, 6), (8, 4, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((1, 4, 3, 3), (4, 1, 16, 16), dict(stride=8, padding=4, groups=4)),
    ((1, 1, 64, 64), (1, 1, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 8, 4, 4, 4), (8, 4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((3, 6, 17), (6, 2, 5), dict(stride=3, padding=2, dilation=2, groups=3)),
    # stride 1 and one-tap kernels: small channels, k3 / k5, k1 with and without stride
    ((2, 12, 9, 10), (12, 12, 3, 3), dict(padding=1)),
    ((2, 6, 7, 8, 5), (6, 4, 3, 3, 3), dict(padding=1, dilation=(1, 2, 1))),
    ((3, 4, 40), (4, 8, 5), dict(padding=2, groups=2)),
    ((2, 56, 6, 6), (56, 12, 1, 1), dict()),
    ((2, 16, 5, 6), (16, 8, 1, 1), dict(stride=2, padding=1, output_padding=1)),
    # past the serial floor: split by samples, and (one sample) by positions
    ((3, 64, 24, 24), (64, 32, 1, 1), dict()),
    ((1, 64, 48, 48), (64, 16, 1, 1), dict(groups=2)),
    ((2, 16, 24, 24), (16, 16, 3, 3), dict(padding=1)),
])
def test_decoder_layers_match_the_reference(method, layer, monkeypatch):
    monkeypatch.setattr(compiled, "_SPLIT_MACS", 0)  # past the serial floor, the cores split even small calls
    x_shape, w_shape, kwargs = layer
    if method in STRIDE_ONE and tc.choose_method(x_shape, w_shape, transposed=True, **kwargs).declined.get(method):
        assert kwargs.get("stride", 1) > 1  # only strides are declined
        with pytest.raises(tc.TransconvError, match="cannot run this call"):
            tc.conv_transpose(np.ones(x_shape, np.float32), np.ones(w_shape, np.float32), method=method, **kwargs)
        return
    rng = np.random.default_rng(sum(x_shape))
    y = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    expected = tc.conv_transpose(y.astype(float), w.astype(float), method="reference", **kwargs)
    got = tc.conv_transpose(y, w, method=method, **kwargs)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    conv_kwargs = {k: v for k, v in kwargs.items() if k != "output_padding"}
    x = rng.standard_normal(expected.shape).astype(np.float32)
    expected = tc.conv(x.astype(float), w.astype(float), method="reference", **conv_kwargs)
    np.testing.assert_allclose(tc.conv(x, w, method=method, **conv_kwargs), expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


def test_mutating_the_weight_between_calls_is_seen():
    """No weight cache can go stale: methods read the weight in its own layout every call."""
    rng = np.random.default_rng(1)
    y = rng.standard_normal((2, 8, 5, 5)).astype(np.float32)
    w = rng.standard_normal((8, 4, 4, 4)).astype(np.float32)
    for method in FAST:
        s = _stride(method, 2)
        first = tc.conv_transpose(y, w, stride=s, padding=1, method=method)
        w *= 2
        np.testing.assert_allclose(tc.conv_transpose(y, w, stride=s, padding=1, method=method), 2 * first, rtol=1e-5)
        w /= 2


def test_choose_method_reports_every_estimate():
    big = tc.choose_method((64, 256, 8, 8), (256, 128, 4, 4), transposed=True, stride=2, padding=1)
    assert set(big.costs) == {m for m, spec in tc.METHODS.items() if spec.auto and m not in big.declined}
    assert big.method == min(big.costs, key=big.costs.get)
    assert all(name in big.reason for name in big.costs)
    single = tc.choose_method((1, 1, 1024, 1024), (1, 1, 3, 3), transposed=True, stride=2, padding=1, output_padding=1)
    assert single.method == "compiled_direct"


def test_compiled_methods_decline_tables_too_large_with_a_reason(monkeypatch):
    monkeypatch.setattr(compiled, "TABLE_LIMIT", 1000)
    choice = tc.choose_method((1, 1, 64, 64), (1, 1, 3, 3), transposed=True, stride=2, padding=1)
    assert choice.method == "direct"
    assert "connectivity table" in choice.declined["compiled_direct"]
    with pytest.raises(tc.TransconvError, match="compiled_direct.*connectivity table"):
        tc.conv_transpose(np.ones((64, 64)), np.ones((3, 3)), stride=2, padding=1, method="compiled_direct")


def test_concurrent_calls_are_correct_and_leave_blas_threads_as_they_were():
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    def blas_threads():
        return sorted(i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas")

    before = blas_threads()
    rng = np.random.default_rng(2)
    ys = [rng.standard_normal((4, 16, 6, 6)).astype(np.float32) for _ in range(6)]
    w = rng.standard_normal((16, 8, 4, 4)).astype(np.float32)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda y: tc.conv_transpose(y, w, stride=2, padding=1, method="gemm"), ys))
    for y, got in zip(ys, results):
        np.testing.assert_allclose(got, tc.conv_transpose(y, w, stride=2, padding=1, method="reference"),
                                   rtol=1e-4, atol=1e-4)
    assert blas_threads() == before


@settings(deadline=None, max_examples=60)
@given(case=cases(max_ndim=3), mode=st.sampled_from(["zeros", "reflect", "circular"]))
def test_along_kernel_loops_agree_with_the_reference(case, mode):
    """The long-kernel loop order of the direct kernels (dot products / spans along the
    kernel row), forced on for every kernel length, on random specs in every direction."""
    from _strategies import tolerance

    assume(mode == "zeros" or min(case.big) >= 2 + max(case.padding))
    with compiled.tuned(along_kernel=1):
        x, w, b = case.arrays(transposed=True)
        kwargs = dict(stride=case.stride, padding=case.padding, groups=case.groups, dilation=case.dilation,
                      padding_mode=mode)
        expected = tc.conv_transpose(x, w, b, method="reference", output_padding=case.output_padding, **kwargs)
        got = tc.conv_transpose(x, w, b, method="compiled_direct", output_padding=case.output_padding, **kwargs)
        np.testing.assert_allclose(got, expected, **tolerance(case.dtype, x, w, b))
        xc, wc, bc = case.arrays(transposed=False)
        expected = tc.conv(xc, wc, bc, method="reference", **kwargs)
        np.testing.assert_allclose(tc.conv(xc, wc, bc, method="compiled_direct", **kwargs), expected,
                                   **tolerance(case.dtype, xc, wc, bc))


@settings(deadline=None, max_examples=60)
@given(case=cases(max_ndim=3), mover=st.sampled_from(["planes", "flat", "rows", "channels_last"]),
       mode=st.sampled_from(["zeros", "reflect"]))
def test_gemm_data_movers_agree_with_the_reference(case, mover, mode):
    """gemm's data movers in each direction, each forced on: the conv_transpose scatter's
    phase planes as chosen (one masked run per tap where the grid allows) or with one run
    per input row; the conv gather's flat table at every width and depth, or its row runs
    only; or both channels-last."""
    from _strategies import tolerance

    assume(mode == "zeros" or min(case.big) >= 2 + max(case.padding))
    scatter, gather = {"planes": ("auto", "auto"), "flat": ("auto", "flat"), "rows": ("rows", "rows"),
                       "channels_last": ("channels_last", "channels_last")}[mover]
    with compiled.tuned(scatter=scatter, gather=gather):
        kwargs = dict(stride=case.stride, padding=case.padding, groups=case.groups, dilation=case.dilation,
                      padding_mode=mode)
        x, w, b = case.arrays(transposed=True)
        expected = tc.conv_transpose(x, w, b, method="reference", output_padding=case.output_padding, **kwargs)
        np.testing.assert_allclose(tc.conv_transpose(x, w, b, method="gemm", output_padding=case.output_padding,
                                                     **kwargs), expected, **tolerance(case.dtype, x, w, b))
        xc, wc, bc = case.arrays(transposed=False)
        expected = tc.conv(xc, wc, bc, method="reference", **kwargs)
        np.testing.assert_allclose(tc.conv(xc, wc, bc, method="gemm", **kwargs), expected,
                                   **tolerance(case.dtype, xc, wc, bc))


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="long double is float64 here")
def test_compiled_methods_decline_long_double_and_auto_falls_back():
    x = np.ones((2, 4, 9, 9), dtype=np.longdouble)
    w = np.ones((4, 3, 4, 4))
    expected = tc.conv_transpose(x, w, stride=2, padding=1, method="reference")
    got = tc.conv_transpose(x, w, stride=2, padding=1)  # auto: a method that computes in long double
    assert got.dtype == np.longdouble
    np.testing.assert_allclose(got, expected)
    for method in ("gemm", "compiled_direct", "phase"):
        with pytest.raises(tc.TransconvError, match=f"{method}.*float32 or float64"):
            tc.conv_transpose(x, w, stride=2, padding=1, method=method)
        with pytest.raises(tc.TransconvError, match=f"{method}.*float32 or float64"):
            tc.conv(x, np.ones((3, 4, 3, 3)), method=method)


@pytest.mark.parametrize("transposed", [True, False])
def test_one_sample_splits_channels_or_rows_and_stays_lean(transposed):
    """With one sample the cores split output channels (conv_transpose) or output rows
    (conv): the result equals the reference and the work buffers stay bounded."""
    import tracemalloc

    rng = np.random.default_rng(3)
    if transposed:
        x = rng.standard_normal((1, 16, 8, 8, 8)).astype(np.float32)
        w = rng.standard_normal((16, 16, 5, 5, 5)).astype(np.float32)
        run = lambda m: tc.conv_transpose(x, w, padding=2, method=m)  # noqa: E731
    else:
        x = rng.standard_normal((1, 32, 40, 40)).astype(np.float32)
        w = rng.standard_normal((32, 32, 5, 5)).astype(np.float32)
        run = lambda m: tc.conv(x, w, padding=2, method=m)  # noqa: E731
    expected = run("reference")
    np.testing.assert_allclose(run("gemm"), expected, rtol=1e-4, atol=1e-3)
    tracemalloc.start()
    result = run("gemm")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # one GEMM block per core of at most max(output share, 1 MB, and for the channels-last
    # scatter's runs 4 MB), plus small plans; a single-threaded numba runs one block of at most
    # max(output, 8 MB)
    import numba

    if numba.get_num_threads() >= 2:
        bound = 2 * max(result.nbytes, compiled._WORKER_FLOOR, compiled._RUN_BLOCK_CAP if transposed else 0) + 2**20
    else:
        bound = max(2 * result.nbytes, compiled._PARALLEL_FLOOR) + 2**20
    assert peak - result.nbytes < bound


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("batch", [1, 3])  # 1: split by output positions or channels; 3: by samples
@pytest.mark.parametrize("block_bytes", [compiled.Tuning().block_bytes, 1])  # 1: the smallest blocks
@pytest.mark.parametrize("geometry", [
    dict(big=(6, 6), kernel=(5, 5), stride=1, padding=1, dilation=1, groups=1),
    dict(big=(14, 13), kernel=(4, 3), stride=2, padding=(0, 2), dilation=1, groups=2),
    dict(big=(15,), kernel=(5,), stride=1, padding=1, dilation=3, groups=3),
    dict(big=(9, 7, 9), kernel=(5, 3, 5), stride=(2, 1, 2), padding=1, dilation=1, groups=1),
])
def test_gemm_channels_last_movers_agree_with_torch(geometry, block_bytes, batch, transposed):
    """gemm's channels-last gather (conv) and scatter (conv_transpose) against PyTorch, in the
    smallest blocks too.  ``auto`` takes them where a group's channels outnumber an output
    row's positions (the first geometry: 24 channels, rows of 4 and 8)."""
    torch = pytest.importorskip("torch")
    from transconv.spec import conv_spec, conv_transpose_spec

    g = geometry
    rng = np.random.default_rng(len(g["big"]) + batch)
    kwargs = {k: g[k] for k in ("stride", "padding", "dilation", "groups")}
    name = f"conv{'_transpose' if transposed else ''}{len(g['big'])}d"
    x = rng.standard_normal((batch, 24) + g["big"]).astype(np.float32)
    if transposed:  # (C_in, C_out / groups, *kernel)
        w = rng.standard_normal((24, 12) + g["kernel"]).astype(np.float32)
        expected = getattr(torch.nn.functional, name)(torch.from_numpy(x), torch.from_numpy(w), None, g["stride"],
                                                      g["padding"], 0, g["groups"], g["dilation"]).numpy()
    else:
        w = rng.standard_normal((6 * g["groups"], 24 // g["groups"]) + g["kernel"]).astype(np.float32)
        expected = getattr(torch.nn.functional, name)(torch.from_numpy(x), torch.from_numpy(w), None, **kwargs).numpy()
    with compiled.tuned(block_bytes=block_bytes, scatter="channels_last", gather="channels_last"):
        got = (tc.conv_transpose if transposed else tc.conv)(x, w, method="gemm", **kwargs)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    if g["big"] == (6, 6):
        spec = conv_spec("conv", g["big"], g["kernel"], g["stride"], g["padding"], g["dilation"], g["groups"])
        if transposed:  # rows of the small grid: the input's, 6 wide against 12 channels; planes of 8 > 6: unmerged
            planes = compiled.phase_planes(conv_transpose_spec("conv_transpose", g["big"], g["kernel"], g["stride"],
                                                               g["padding"]), g["big"])
            assert not planes.merged
            assert compiled._scatters_channels_last("auto", 12, g["big"], expected.shape[2:], 25, w.nbytes, False)
        else:
            assert compiled.column_gather(spec, g["big"]).channels_last(w.shape[1], w.nbytes)


def test_conv_transpose_scatters_channels_last_by_its_rule():
    """The scatter's rule against the gather's: channel runs at least twice the input's rows,
    and larger weights only where the phase planes would add a run per input row."""
    rule = compiled._scatters_channels_last
    small, big, taps = (9, 9, 9), (19, 19, 19), 125  # seed 1 #1: 12 channels on 9-wide rows
    assert compiled._moves_channels_last("auto", 12, small, big, taps, 10**4)
    assert not rule("auto", 12, small, big, taps, 10**4, False)
    assert rule("auto", 18, small, big, taps, 10**4, False)
    weights = compiled._CHANNELS_LAST_WEIGHTS + 1  # seed 2 #18's 1.9 MB on 4^3 grids
    assert rule("auto", 62, (4, 4, 4), (8, 8, 8), taps, weights, False)
    assert not rule("auto", 62, (4, 4, 4), (8, 8, 8), taps, weights, True)
    assert not rule("auto", 62, (4, 4, 4), (8, 8, 8), taps, compiled._CHANNELS_LAST_SCATTER_WEIGHTS + 1, False)
    assert rule("channels_last", 1, small, big, taps, 10**9, True) and not rule("rows", 62, small, big, taps, 0, False)


def test_gemm_declines_when_its_smallest_block_is_too_large():
    conv = tc.choose_method((1, 8, 4096, 4096), (8, 8, 64, 64))
    assert "gather of one output row would take 504 MB" in conv.declined["gemm"]
    transposed = tc.choose_method((1, 1, 128, 128), (1, 1, 64, 64), transposed=True)
    assert "one output channel's GEMM result would take 256 MB" in transposed.declined["gemm"]
    assert transposed.method == "compiled_direct"


def test_every_compiled_kernel_has_its_own_cache_entry():
    """numba's cache names an entry by the function's qualified name and line and keys it
    by signature and bytecode, not by options: two dispatchers (a parallel kernel and
    its serial twin) built from one function would overwrite each other's entry, and a
    later process could run the parallel code inside each worker thread."""
    from numba.core.registry import CPUDispatcher

    kernels = {name: k for name, k in vars(compiled).items() if isinstance(k, CPUDispatcher)}
    assert {"_scatter_planes", "_scatter_planes_serial", "_gather", "_gather_serial"} <= set(kernels)
    identities = [(k.py_func.__qualname__, k.py_func.__code__.co_firstlineno) for k in kernels.values()]
    assert len(set(identities)) == len(identities), sorted(identities)
    for name in [n for n in kernels if n + "_serial" in kernels]:
        assert kernels[name].targetoptions.get("parallel") and not kernels[name + "_serial"].targetoptions.get("parallel")


@pytest.mark.parametrize("method", ["auto"] + list(tc.METHODS))
def test_an_empty_batch_gives_an_empty_batch_as_in_torch(method):
    torch = pytest.importorskip("torch")
    y, w = np.ones((0, 4, 5), np.float32), np.ones((4, 3, 3), np.float32)
    s, a = _stride(method, 2), _stride(method, 2) - 1
    got = tc.conv_transpose(y, w, stride=s, output_padding=a, method=method)
    expected = torch.nn.functional.conv_transpose1d(torch.from_numpy(y), torch.from_numpy(w), stride=s, output_padding=a)
    assert got.shape == tuple(expected.shape) and got.dtype == np.float32
    x = np.ones((0, 3, 11))
    got = tc.conv(x, np.ones((4, 3, 3)), stride=s, method=method)
    assert got.shape == tuple(torch.nn.functional.conv1d(torch.from_numpy(x), torch.ones(4, 3, 3, dtype=torch.float64), stride=s).shape)


@pytest.mark.parametrize("transposed", [True, False])
def test_phase_in_float64_on_an_odd_batch(transposed):
    """3 samples, float64, stride 2 in 1-d: the phase method to 1e-12 of the reference."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 3, 3))
    x = rng.standard_normal((3, 4, 5) if transposed else (3, 3, 11))
    op = tc.conv_transpose if transposed else tc.conv
    np.testing.assert_allclose(op(x, w, stride=2, method="phase"), op(x, w, stride=2, method="reference"),
                               rtol=1e-12, atol=1e-12)


@st.composite
def up_sampling_cases(draw):
    """conv_transpose specs whose output is exactly stride x the input on every axis."""
    ndim = draw(st.integers(1, 3))
    axes = []
    for _ in range(ndim):
        stride, dilation = draw(st.integers(1, 4)), draw(st.integers(1, 2))
        kernel = draw(st.integers(1, 6))
        output_padding = draw(st.integers(0, max(stride, dilation) - 1))
        twice_pad = dilation * (kernel - 1) + 1 + output_padding - stride
        assume(twice_pad >= 0 and twice_pad % 2 == 0)
        axes.append((stride, dilation, kernel, output_padding, twice_pad // 2))
    small = tuple(draw(st.integers(1, {1: 12, 2: 7, 3: 4}[ndim])) for _ in range(ndim))
    groups = draw(st.sampled_from([1, 2]))
    return axes, small, groups, draw(st.integers(1, 5)), draw(st.sampled_from([np.float32, np.float64]))


@settings(deadline=None, max_examples=80)
@given(case=up_sampling_cases(), general=cases(max_ndim=3), scatter=st.sampled_from(["auto", "rows"]),
       plane_bytes=st.sampled_from([None, 1]))
def test_phase_plane_scatter_agrees_with_the_reference(case, general, scatter, plane_bytes):
    """The phase-plane scatter, merged (one masked run per tap, as the usual up-sampling by
    ``stride`` gets) or one run per input row, on up-sampling specs and on any spec, with the
    planes in blocks of one grid row (runs cut at the blocks' edges) or whole, batches of 1-5
    in GEMM blocks down to one sample and one channel."""
    from _strategies import tolerance

    from transconv.spec import conv_transpose_spec

    axes, small, groups, batch, dtype = case
    stride, dilation, kernel, output_padding, padding = (tuple(a[i] for a in axes) for i in range(5))
    rng = np.random.default_rng(sum(small) + batch)
    y = rng.standard_normal((batch, 2 * groups) + small).astype(dtype)
    w = rng.standard_normal((2 * groups, 3) + kernel).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    spec = conv_transpose_spec("conv_transpose", small, kernel, stride, padding, output_padding, groups, dilation)
    assert compiled.phase_planes(spec, small).grid == small  # up-sampling by stride: the input's grid, merged
    yg, wg, _ = general.arrays(transposed=True)
    general_kwargs = dict(stride=general.stride, padding=general.padding, output_padding=general.output_padding,
                          dilation=general.dilation, groups=general.groups)
    saved = compiled._PLANE_BYTES, compiled._PLANE_BLOCK_BYTES
    try:
        if plane_bytes:  # blocks of one grid row
            compiled._PLANE_BYTES = compiled._PLANE_BLOCK_BYTES = plane_bytes
        compiled._transpose_planes.cache_clear()
        for x, weights, kw in ((y, w, kwargs), (yg, wg, general_kwargs)):
            expected = tc.conv_transpose(x, weights, method="reference", **kw)
            for block_bytes in (compiled.Tuning().block_bytes, 1):
                with compiled.tuned(block_bytes=block_bytes, scatter=scatter):
                    got = tc.conv_transpose(x, weights, method="gemm", **kw)
                np.testing.assert_allclose(got, expected, **tolerance(x.dtype, x, weights))
    finally:
        compiled._PLANE_BYTES, compiled._PLANE_BLOCK_BYTES = saved
        compiled._transpose_planes.cache_clear()


@settings(deadline=None, max_examples=80)
@given(case=cases(max_ndim=3), mode=st.sampled_from(["zeros", "reflect", "circular"]), k1=st.booleans())
def test_shift_agrees_with_the_reference_and_torch(case, mode, k1):
    """The stride-1 shifted GEMM (and the one-tap GEMM at any stride), forced through
    method="shift" in both directions, against the reference and PyTorch."""
    from dataclasses import replace

    from _strategies import tolerance

    torch = pytest.importorskip("torch")
    if k1:
        case = replace(case, kernel=(1,) * case.ndim, dilation=(1,) * case.ndim,
                       output_padding=tuple(min(a, s - 1) for a, s in zip(case.output_padding, case.stride)))
    else:
        case = replace(case, stride=(1,) * case.ndim,
                       output_padding=tuple(min(a, d - 1) for a, d in zip(case.output_padding, case.dilation)))
    assume(all(b >= 1 for b in case.big))
    assume(mode == "zeros" or min(case.big) >= 2 + max(case.padding))
    kwargs = dict(stride=case.stride, padding=case.padding, groups=case.groups, dilation=case.dilation)
    x, w, b = case.arrays(transposed=True)
    if tc.choose_method(x, w, transposed=True, output_padding=case.output_padding, **kwargs).declined.get("shift"):
        assume(False)  # padding beyond dilation * (kernel - 1): the flip would crop
    expected = tc.conv_transpose(x, w, b, method="reference", output_padding=case.output_padding, padding_mode=mode,
                                 **kwargs)
    got = tc.conv_transpose(x, w, b, method="shift", output_padding=case.output_padding, padding_mode=mode, **kwargs)
    np.testing.assert_allclose(got, expected, **tolerance(case.dtype, x, w, b))
    xc, wc, bc = case.arrays(transposed=False)
    expected = tc.conv(xc, wc, bc, method="reference", padding_mode=mode, **kwargs)
    got = tc.conv(xc, wc, bc, method="shift", padding_mode=mode, **kwargs)
    np.testing.assert_allclose(got, expected, **tolerance(case.dtype, xc, wc, bc))
    if mode == "zeros":  # PyTorch as the independent oracle
        conv = getattr(torch.nn.functional, f"conv{case.ndim}d")
        t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        oracle = conv(t(xc), t(wc), t(bc), case.stride, case.padding, case.dilation, case.groups).numpy()
        np.testing.assert_allclose(got, oracle, **tolerance(case.dtype, xc, wc, bc))


@pytest.mark.parametrize("ndim, size, multiplier, dilation, padding", [
    (1, 9000, 1, 1, 2), (2, 75, 2, 2, 3), (2, 20, 1, 1, (0, 4)), (3, 19, 1, 1, 1), (3, 6, 3, 2, 0)])
def test_depthwise_at_stride_1_agrees_with_torch(ndim, size, multiplier, dilation, padding):
    """Depthwise (one input channel per group) at stride 1 goes to the phase method's shifted
    runs: planes of one to several 4096-position blocks, channel multipliers, dilation, uneven
    padding; shift's per-group GEMMs agree."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(size)
    groups = 3
    x = rng.standard_normal((2, groups) + (size,) * ndim).astype(np.float32)
    w = rng.standard_normal((groups * multiplier, 1) + (3,) * ndim).astype(np.float32)
    pad = (padding,) * ndim if isinstance(padding, int) else (padding[:1] * (ndim - 1) + padding[1:])[:ndim]
    conv = getattr(torch.nn.functional, f"conv{ndim}d")
    expected = conv(torch.from_numpy(x), torch.from_numpy(w), None, 1, pad, dilation, groups).numpy()
    for method in ("phase", "shift"):
        got = tc.conv(x, w, padding=pad, dilation=dilation, groups=groups, method=method)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=method)
    wt = rng.standard_normal((groups, multiplier) + (3,) * ndim).astype(np.float32)
    transpose = getattr(torch.nn.functional, f"conv_transpose{ndim}d")
    expected = transpose(torch.from_numpy(x), torch.from_numpy(wt), None, 1, 0, 0, groups, dilation).numpy()
    for method in ("phase", "shift"):
        got = tc.conv_transpose(x, wt, dilation=dilation, groups=groups, method=method)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=method)
    # auto takes the shifted runs on a realistic depthwise layer (the sweep's seed 2 #6)
    assert tc.choose_method((32, 28, 20, 20), (28, 1, 5, 5), padding=2, groups=28).method == "phase"


@settings(deadline=None, max_examples=120)
@given(case=cases(max_ndim=3), mode=st.sampled_from(["zeros", "reflect", "circular"]))
def test_phase_agrees_with_the_reference_and_torch(case, mode):
    """Shifted runs: of the stride phases for any convolution (strides, dilation, groups,
    ragged phases), per output phase for any transposed one, against the reference and PyTorch."""
    from _strategies import tolerance

    torch = pytest.importorskip("torch")
    assume(all(b >= 1 for b in case.big) and any(k > 1 for k in case.kernel))
    assume(mode == "zeros" or min(case.big) >= 2 + max(case.padding))
    kwargs = dict(stride=case.stride, padding=case.padding, groups=case.groups, dilation=case.dilation)
    xc, wc, bc = case.arrays(transposed=False)
    expected = tc.conv(xc, wc, bc, method="reference", padding_mode=mode, **kwargs)
    got = tc.conv(xc, wc, bc, method="phase", padding_mode=mode, **kwargs)
    np.testing.assert_allclose(got, expected, **tolerance(case.dtype, xc, wc, bc))
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    if mode == "zeros":
        conv = getattr(torch.nn.functional, f"conv{case.ndim}d")
        oracle = conv(t(xc), t(wc), t(bc), case.stride, case.padding, case.dilation, case.groups).numpy()
        np.testing.assert_allclose(got, oracle, **tolerance(case.dtype, xc, wc, bc))
    x, w, b = case.arrays(transposed=True)
    kwargs = dict(stride=case.stride, padding=case.padding, groups=case.groups, dilation=case.dilation,
                  output_padding=case.output_padding)
    expected = tc.conv_transpose(x, w, b, method="reference", padding_mode=mode, **kwargs)
    got = tc.conv_transpose(x, w, b, method="phase", padding_mode=mode, **kwargs)
    np.testing.assert_allclose(got, expected, **tolerance(case.dtype, x, w, b))
    if mode == "zeros":
        transpose = getattr(torch.nn.functional, f"conv_transpose{case.ndim}d")
        oracle = transpose(t(x), t(w), t(b), case.stride, case.padding, case.output_padding, case.groups,
                           case.dilation).numpy()
        np.testing.assert_allclose(got, oracle, **tolerance(case.dtype, x, w, b))


@settings(deadline=None, max_examples=150)
@given(case=cases(max_ndim=3), transposed=st.booleans())
def test_phase_geometry_is_the_connectivity(case, transposed):
    """Every (tap, position) pair that the phase method's terms and kept positions imply is the
    connectivity's own pair, and no other: for the stride phases of a convolution and for the
    output phases of a transposed one."""
    from transconv.connectivity import axis_tap_indices, transpose_axis_tap_indices
    from transconv.ops import phase
    from transconv.spec import conv_spec, conv_transpose_spec

    T = int(np.prod(case.kernel))
    if transposed:
        spec = conv_transpose_spec("conv_transpose", case.small, case.kernel, case.stride, case.padding,
                                   case.output_padding, case.groups, case.dilation)
        small, big = case.small, spec.transpose_output_shape(case.small)
        maps = transpose_axis_tap_indices(spec, small)
    else:
        spec = conv_spec("conv", case.big, case.kernel, case.stride, case.padding, case.dilation, case.groups)
        big = case.big
        small = spec.conv_output_shape(big)
        maps = axis_tap_indices(spec, big)
    # expected[t, small flat] = big flat position, or -1 where the tap meets padding
    taps = np.indices(case.kernel).reshape(len(small), -1)
    positions = np.indices(small).reshape(len(small), -1)
    expected = np.zeros((T, positions.shape[1]), dtype=np.int64)
    inside = np.ones_like(expected, dtype=bool)
    for a in range(len(small)):
        m = maps[a][positions[a][None, :], taps[a][:, None]]
        inside &= m >= 0
        expected = expected * big[a] + np.where(m >= 0, m, 0)
    expected = np.where(inside, expected, -1)
    got = np.full_like(expected, -1)
    if transposed:
        geometry = phase.transpose_phases(spec, small, 1, 1)
        for b in range(len(geometry.blk_phase)):
            ph = geometry.blk_phase[b]
            kept = slice(geometry.blk_k0[b], geometry.blk_k1[b])
            src, dst = geometry.keep_src[kept], geometry.keep_dst[kept]
            for k in range(geometry.phase_ptr[ph], geometry.phase_ptr[ph + 1]):
                grid = np.array(np.unravel_index(src + geometry.term_off[k], geometry.lengths))
                i = grid - np.array(geometry.lead)[:, None]
                ok = np.all((i >= 0) & (i < np.array(small)[:, None]), axis=0)
                got[geometry.term_w[k], np.ravel_multi_index(tuple(i[:, ok]), small)] = dst[ok]
    else:
        geometry = phase.conv_phases(spec, big, 1, 1)
        grid_size = int(np.prod(geometry.lengths))
        lo = np.array([p[0] for p in spec.padding])[:, None]
        for t in range(T):
            k, q = np.divmod(geometry.keep + geometry.terms[t], grid_size)
            rho = np.array(np.unravel_index(np.array(geometry.used)[k], spec.stride))
            i = np.array(np.unravel_index(q, geometry.lengths)) * np.array(spec.stride)[:, None] + rho - lo
            ok = np.all((i >= 0) & (i < np.array(big)[:, None]), axis=0)
            got[t, ok] = np.ravel_multi_index(tuple(i[:, ok]), big)
    np.testing.assert_array_equal(got, expected)


@given(steps=st.lists(st.sampled_from([(1, 1), (1, 2), (2, 1), (3, 3)]), max_size=40))
def test_runs_ahead_are_the_longest_consecutive_runs(steps):
    """phase.runs_ahead: from each kept position, the run over which grid and output positions
    both advance by one, checked against a plain scan."""
    from transconv.ops.phase import runs_ahead

    src = np.cumsum([0] + [a for a, _ in steps])
    dst = np.cumsum([0] + [b for _, b in steps])
    expected = []
    for p in range(len(src)):
        run = 1
        while p + run < len(src) and src[p + run] == src[p] + run and dst[p + run] == dst[p] + run:
            run += 1
        expected.append(run)
    assert runs_ahead(src, dst).tolist() == expected
