"""Benchmarks: transconv against PyTorch on real decoder layers, in one process.

``transconv bench`` (or ``python -m transconv bench``) times ``tc.conv_transpose`` and
``tc.conv`` against ``torch.nn.functional.conv_transpose{1,2,3}d`` / ``conv{1,2,3}d`` in
NCHW and channels_last, with the same thread count, after warm-up, and reports the
ratios, GFLOP/s as a fraction of this machine's measured float32 GEMM rate, the
bandwidth of memory-bound layers against a measured copy, and the peak extra memory of
our call as a multiple of its output.  Timings never appear in the test suite.

Entry points for the CLI: :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import choose_method, conv, conv_transpose
from .spec import conv_transpose_output_length, effective_kernel

__all__ = ["Layer", "SUITE", "layer_calls", "best_time", "alternating_blocks", "with_peak_bytes", "add_arguments", "run", "main"]


@dataclass(frozen=True)
class Layer:
    """One transposed-conv layer: input (N, C_in, *spatial) -> C_out channels."""

    name: str
    batch: int
    c_in: int
    spatial: tuple[int, ...]
    c_out: int
    kernel: int
    stride: int
    padding: int = 0
    output_padding: int = 0
    groups: int = 1
    quick: bool = True
    dilation: int = 1

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.c_in, self.c_out // self.groups) + (self.kernel,) * len(self.spatial)

    def kwargs(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, output_padding=self.output_padding, groups=self.groups,
                    dilation=self.dilation)

    def conv_kwargs(self) -> dict:
        """The mirrored convolution's arguments (from this layer's output back to its input)."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def call_kwargs(self, transposed: bool) -> dict:
        """The arguments of the layer's conv_transpose, or of its mirrored conv."""
        return self.kwargs() if transposed else self.conv_kwargs()

    def input_shape(self, transposed: bool) -> tuple[int, ...]:
        """The batched input of the layer's conv_transpose, or of its mirrored conv (the
        transposed call's output grid): each is the other's ``grad_out`` in the weight gradient."""
        if transposed:
            return (self.batch, self.c_in) + self.spatial
        return (self.batch, self.c_out) + self.out_spatial()

    def out_spatial(self) -> tuple[int, ...]:
        return tuple(conv_transpose_output_length(i, self.kernel, self.stride, self.padding, self.dilation,
                                                  self.output_padding) for i in self.spatial)

    @property
    def macs(self) -> int:
        return self.batch * int(np.prod(self.spatial)) * self.kernel ** len(self.spatial) * self.c_in * self.c_out // self.groups


SUITE = [
    Layer("DCGAN 512->256 4x4 k4s2p1", 64, 512, (4, 4), 256, 4, 2, 1),
    Layer("DCGAN 256->128 8x8 k4s2p1", 64, 256, (8, 8), 128, 4, 2, 1),
    Layer("DCGAN 128->64 16x16 k4s2p1", 64, 128, (16, 16), 64, 4, 2, 1),
    Layer("DCGAN 64->3 32x32 k4s2p1", 64, 64, (32, 32), 3, 4, 2, 1),
    Layer("U-Net 512->256 32x32 k2s2", 8, 512, (32, 32), 256, 2, 2),
    Layer("U-Net 128->64 128x128 k2s2", 8, 128, (128, 128), 64, 2, 2, quick=False),
    Layer("256->128 32x32 k3s2p1op1", 16, 256, (32, 32), 128, 3, 2, 1, 1),
    Layer("FCN-32s 21->21 16x16 k64s32p16", 4, 21, (16, 16), 21, 64, 32, 16, quick=False),
    Layer("FCN-32s depthwise k64s32p16", 4, 21, (16, 16), 21, 64, 32, 16, groups=21),
    Layer("image 1024^2 k3s2p1op1", 1, 1, (1024, 1024), 1, 3, 2, 1, 1),
    Layer("image 1024^2 k4s2p1", 1, 1, (1024, 1024), 1, 4, 2, 1),
    Layer("3-d 64->32 16^3 k2s2", 2, 64, (16, 16, 16), 32, 2, 2),
    Layer("3-d 32->16 32^3 k3s2p1op1", 2, 32, (32, 32, 32), 16, 3, 2, 1, 1, quick=False),
]


def best_time(fn: Callable[[], object], repeats: int, budget: float = math.inf) -> float:
    """Minimum wall time of ``fn`` over ``repeats`` runs after a warm-up (fewer runs if they exceed ``budget`` seconds).

    >>> best_time(lambda: None, 3) >= 0
    True
    """
    fn()  # warm-up (compilation, caches, allocator)
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget and len(times) >= 2:
            break
    return min(times)


def machine_rates(threads: int) -> dict:
    """Measured float32 GEMM throughput (FLOP/s) and copy bandwidth (bytes/s) in this process."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    b = rng.standard_normal((2048, 2048), dtype=np.float32)
    gemm = 2 * 2048**3 / best_time(lambda: a @ b, 5, 2.0)
    src = np.ones(32 * 2**20 // 4, dtype=np.float32)
    dst = np.empty_like(src)
    copy = 2 * src.nbytes / best_time(lambda: np.copyto(dst, src), 10, 1.0)  # read + write
    info = {}
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            info = {k: blas[0].get(k) for k in ("internal_api", "architecture", "num_threads", "version")}
    except Exception:  # threadpoolctl is optional
        pass
    return {"gemm_flops": gemm, "copy_bytes": copy, "blas": info, "threads": threads}


def _without_scatter(fn: Callable[[], object], repeats: int, budget: float) -> float:
    """Time ``fn`` with the gemm method's scatter skipped (``compiled.tuned(scatter="none")``)."""
    from .ops import compiled

    with compiled.tuned(scatter="none"):
        return best_time(fn, repeats, budget)


def _torch_funcs(ndim: int):
    import torch.nn.functional as F

    return {1: (F.conv1d, F.conv_transpose1d), 2: (F.conv2d, F.conv_transpose2d), 3: (F.conv3d, F.conv_transpose3d)}[ndim]


def with_peak_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the peak bytes Python's allocator saw during it (NumPy's arrays included).

    >>> with_peak_bytes(lambda: np.zeros(10**6))[1] >= 8 * 10**6
    True
    """
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def layer_calls(layer: Layer, transposed: bool, seed: int = 1) -> tuple:
    """``(x, w, ours, torch_call, choice)`` for the layer's conv_transpose or its mirrored conv.

    ``ours()`` runs transconv; ``torch_call(xt, wt)`` runs PyTorch on tensors of ``x`` and
    ``w``; ``choice`` is what ``method="auto"`` picks.

    >>> import numpy as np, torch
    >>> x, w, ours, torch_call, choice = layer_calls(Layer("tiny", 1, 2, (5, 5), 3, 4, 2, 1), True)
    >>> bool(np.allclose(ours(), torch_call(torch.from_numpy(x), torch.from_numpy(w)).numpy(), atol=1e-5))
    True
    """
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(layer.weight_shape, dtype=np.float32) * 0.05
    conv_fn, transpose_fn = _torch_funcs(len(layer.spatial))
    if transposed:
        x = rng.standard_normal(layer.input_shape(True), dtype=np.float32)
        kw = layer.kwargs()
        ours = lambda: conv_transpose(x, w, **kw)  # noqa: E731
        torch_call = lambda xt, wt: transpose_fn(xt, wt, None, kw["stride"], kw["padding"],  # noqa: E731
                                                 kw["output_padding"], kw["groups"], kw["dilation"])
        choice = choose_method(x, w, transposed=True, **kw)
    else:  # the mirrored convolution: from the transposed layer's output back to its input
        x = rng.standard_normal(layer.input_shape(False), dtype=np.float32)
        kw = layer.conv_kwargs()
        # conv weight (C_out_conv, C_in_conv/g, *k) = (layer.c_in, layer.c_out/g, *k): the same array
        ours = lambda: conv(x, w, **kw)  # noqa: E731
        torch_call = lambda xt, wt: conv_fn(xt, wt, None, kw["stride"], kw["padding"], kw["dilation"],  # noqa: E731
                                            kw["groups"])
        choice = choose_method(x, w, **kw)
    return x, w, ours, torch_call, choice


def settle(ours: Callable[[], object]) -> None:
    """With autotune on, call ``ours`` until ``auto`` has measured its candidates, as a loop
    over the layer would, so that timing starts with the method it keeps."""
    from .ops import dispatch

    for _ in range(dispatch._TUNE_CALLS * dispatch._TUNE_MOST if dispatch._AUTOTUNE[0] else 0):
        ours()


def settled_method(layer: Layer, transposed: bool, ours: Callable[[], object]) -> str:
    """:func:`settle`, then the method ``auto`` runs from then on."""
    settle(ours)
    choice = choose_method(layer.input_shape(transposed), layer.weight_shape, transposed=transposed,
                           **layer.call_kwargs(transposed))
    return choice.fastest_measured or choice.method


def bench_layer(layer: Layer, transposed: bool, repeats: int, budget: float, rates: dict) -> dict:
    import torch

    x, w, ours, torch_call, choice = layer_calls(layer, transposed)
    method = settled_method(layer, transposed, ours)
    out = ours()
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    expected = torch_call(xt, wt).numpy()
    error = float(np.abs(out - expected).max() / max(1e-30, np.abs(expected).max()))
    t_ours = best_time(ours, repeats, budget)
    with torch.no_grad():
        t_nchw = best_time(lambda: torch_call(xt, wt), repeats, budget)
        fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.ndim)
        if fmt is not None:
            xc, wc = xt.contiguous(memory_format=fmt), wt.contiguous(memory_format=fmt)
            t_cl = best_time(lambda: torch_call(xc, wc), repeats, budget)
        else:
            t_cl = float("nan")
    # the floor of the gemm method: the same call with its scatter made a no-op (BLAS,
    # blocking and allocation only); conv is not measured so (its GEMM would read an
    # unfilled buffer)
    t_gemm = _without_scatter(ours, repeats, budget) if transposed and method == "gemm" else float("nan")
    result, peak = with_peak_bytes(ours)
    flops = 2 * layer.macs
    moved = x.nbytes + w.nbytes + result.nbytes
    return {
        "layer": layer.name,
        "op": "conv_transpose" if transposed else "conv",
        "method": method,
        "ours_ms": t_ours * 1e3,
        "torch_nchw_ms": t_nchw * 1e3,
        "torch_cl_ms": t_cl * 1e3,
        "gemm_only_ms": t_gemm * 1e3,
        "ratio_nchw": t_ours / t_nchw,
        "ratio_cl": t_ours / t_cl if t_cl == t_cl else float("nan"),
        "gflops": flops / t_ours / 1e9,
        "gemm_fraction": flops / t_ours / rates["gemm_flops"],
        "bandwidth_fraction": moved / t_ours / rates["copy_bytes"],
        "extra_memory_x_output": max(0, peak - result.nbytes) / result.nbytes,
        "max_rel_error_vs_torch": error,
    }


# --------------------------------------------------------------------------------------
# The random-layer sweep (documented in docs/performance.md).
# --------------------------------------------------------------------------------------

_SWEEP_NDIM = (1, 2, 2, 2, 3)  # 1-d (audio-like), 2-d images, 3-d volumes
_SWEEP_KERNELS = (1, 1, 2, 3, 3, 3, 4, 5, 7, 9)
_SWEEP_STRIDES = (1, 1, 1, 2, 2, 3, 4)
_SWEEP_SECONDS = (3e-4, 0.15)  # a call's rough time: dense FLOPs at 50 GFLOP/s plus its bytes at 1 GB/s


def sweep_layer(rng: np.random.Generator, index: int) -> Layer:
    """One random layer of the sweep's distribution (see docs/performance.md).

    >>> layer = sweep_layer(np.random.default_rng(0), 0)
    >>> 1 <= len(layer.spatial) <= 3 and 1 <= layer.kernel <= 9 and 1 <= layer.stride <= 4
    True
    """
    while True:
        ndim = int(rng.choice(_SWEEP_NDIM))
        kernel = int(rng.choice(_SWEEP_KERNELS))
        if ndim == 3:
            kernel = min(kernel, 5)
        stride = int(rng.choice(_SWEEP_STRIDES))
        dilation = int(rng.choice((2, 3))) if kernel > 1 and rng.random() < 0.15 else 1
        k_eff = effective_kernel(kernel, dilation)
        padding = int(rng.integers(0, (k_eff - 1) // 2 + 1))
        output_padding = int(rng.integers(0, stride)) if rng.random() < 0.3 else 0
        # channels log-uniform in 1-256 (biased to small), the same on both sides half the time
        c_in = int(round(2 ** rng.uniform(0, 8)))
        c_out = c_in if rng.random() < 0.5 else int(round(2 ** rng.uniform(0, 8)))
        kind = rng.random()
        if kind < 0.15:  # depthwise
            groups = c_out = c_in
        elif kind < 0.3 and c_in >= 4:  # grouped
            groups = int(rng.choice([g for g in (2, 4, 8) if c_in % g == 0] or [1]))
            c_out = max(groups, c_out // groups * groups)
        else:
            groups = 1
        batch = int(round(2 ** rng.uniform(0, 6)))
        # spatial size from a log-uniform FLOP budget, clipped to each kind's range
        flops = float(np.exp(rng.uniform(np.log(1e7), np.log(5e9))))
        per_position = 2 * batch * kernel**ndim * c_in * c_out // groups
        side = (flops / per_position) ** (1 / ndim)
        low, high = {1: (8, 16384), 2: (4, 512), 3: (4, 48)}[ndim]
        size = int(np.clip(round(side), low, high))
        spatial = (size,) * ndim
        layer = Layer(f"#{index} {ndim}d", batch, c_in, spatial, c_out, kernel, stride, padding, output_padding,
                      groups, dilation=dilation)
        out = layer.out_spatial()
        moved = 4 * batch * (c_in * size**ndim + c_out * int(np.prod(out)))
        dense = 2 * layer.macs
        if min(out) >= 1 and _SWEEP_SECONDS[0] <= dense / 5e10 + moved / 1e9 <= _SWEEP_SECONDS[1]:
            return Layer(_layer_name(layer, index), batch, c_in, spatial, c_out, kernel, stride, padding,
                         output_padding, groups, dilation=dilation)


def _layer_name(layer: Layer, index: int) -> str:
    shape = "x".join(str(s) for s in layer.spatial)
    extra = "".join([f"p{layer.padding}" if layer.padding else "", f"op{layer.output_padding}" if layer.output_padding else "",
                     f"d{layer.dilation}" if layer.dilation > 1 else "", f"g{layer.groups}" if layer.groups > 1 else ""])
    return f"#{index} {layer.batch}x{layer.c_in}x{shape}->{layer.c_out} k{layer.kernel}s{layer.stride}{extra}"


def sweep_layers(count: int, seed: int) -> list[Layer]:
    """The sweep's ``count`` layers for ``seed`` (the same on every machine)."""
    rng = np.random.default_rng(seed)
    return [sweep_layer(rng, i) for i in range(count)]


def alternating_blocks(fns: list[Callable[[], object]], rounds: int, *, block_seconds: float = 0.0,
                       calls: int = 0, gap_seconds: float = 0.0) -> list[list[float]]:
    """Per-call seconds of each function, in ``rounds`` rounds of alternating blocks.

    Each block repeats one function ``calls`` times, or for about ``block_seconds`` (at
    least one call) when ``calls`` is 0, so each side's thread pool runs warm, and the
    functions take turns block by block, so a drift of the machine touches both;
    interleaving single calls would time the hand-over between two spinning thread pools
    instead of the kernels.  Before each block the calling thread busy-waits ``gap_seconds``
    (untimed): the previous block's thread pools keep spinning after their last call
    (OpenBLAS's for about 0.1 s, GNU OpenMP's for about 10 ms) and would take a core from
    the next block's; a busy wait, not a sleep, because after an idle 0.1 s this machine
    runs the next 30 ms about 2x slower (docs/performance.md).

    >>> [len(t) for t in alternating_blocks([lambda: None, lambda: None], 3, calls=2)]
    [3, 3]
    >>> t0 = time.perf_counter(); _ = alternating_blocks([lambda: None], 2, calls=1, gap_seconds=0.01)
    >>> time.perf_counter() - t0 >= 0.02  # the gaps are waited, untimed
    True
    """
    for fn in fns:  # warm-up: compilation, plans, allocator, thread pools
        fn()
        fn()
    per_block = []
    for fn in fns:
        if calls:
            per_block.append(calls)
            continue
        t0 = time.perf_counter()
        fn()
        per_block.append(max(1, int(block_seconds / max(time.perf_counter() - t0, 1e-7))))
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < gap_seconds:
                pass
            t0 = time.perf_counter()
            for _ in range(per_block[i]):
                fn()
            times[i].append((time.perf_counter() - t0) / per_block[i])
    return times


def _weight_grad_calls(layer: Layer, transposed: bool, seed: int = 1):
    """``(x, w, ours, torch_call, method)`` for the weight gradient of the layer's
    conv_transpose or mirrored conv, or ``None`` without ``transconv.conv_weight_grad``;
    PyTorch's side is ``aten.convolution_backward`` with only the weight gradient asked for."""
    import transconv

    if not hasattr(transconv, "conv_weight_grad"):
        return None
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(layer.weight_shape, dtype=np.float32) * 0.05
    if transposed:
        x = rng.standard_normal(layer.input_shape(True), dtype=np.float32)
        g = rng.standard_normal(layer.input_shape(False), dtype=np.float32)
        kw = dict(layer.kwargs(), transposed=True)
        op_pad = (layer.output_padding,) * len(layer.spatial)
    else:
        x = rng.standard_normal(layer.input_shape(False), dtype=np.float32)
        g = rng.standard_normal(layer.input_shape(True), dtype=np.float32)
        kw = layer.conv_kwargs()
        op_pad = (0,) * len(layer.spatial)
    ours = lambda: transconv.conv_weight_grad(x, g, w.shape, **kw)  # noqa: E731
    nd = len(layer.spatial)

    def torch_call(xt, wt, gt):
        import torch

        return torch.ops.aten.convolution_backward(
            gt, xt, wt, None, (layer.stride,) * nd, (layer.padding,) * nd, (layer.dilation,) * nd, transposed,
            op_pad, layer.groups, [False, True, False])[1]

    return x, w, g, ours, torch_call, "auto"


SWEEP_BLOCK_SECONDS = 0.05  # each side's block of calls in the sweep
SWEEP_GAP_SECONDS = 0.12  # busy wait before each block: the other side's pools stop spinning (alternating_blocks)


def sweep_row(layer: Layer, transposed: bool, rounds: int, block_seconds: float = SWEEP_BLOCK_SECONDS,
              weight_grad: bool = False, gap_seconds: float = SWEEP_GAP_SECONDS) -> dict:
    """Ours against PyTorch NCHW on one sweep layer: the median over rounds of the per-round ratio."""
    import torch

    if weight_grad:
        x, w, g, ours, torch_grad, method = _weight_grad_calls(layer, transposed)
        settle(ours)
        gt, reference_bytes = torch.from_numpy(g), g.nbytes
        torch_call = lambda xt, wt: torch_grad(xt, wt, gt)  # noqa: E731
    else:
        x, w, ours, torch_call, choice = layer_calls(layer, transposed)
        method, reference_bytes = settled_method(layer, transposed, ours), None
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    result = ours()
    with torch.no_grad():
        expected = torch_call(xt, wt).numpy()
        error = float(np.abs(result - expected).max() / max(1e-30, np.abs(expected).max()))
        t_ours, t_torch = alternating_blocks([ours, lambda: torch_call(xt, wt)], rounds, block_seconds=block_seconds,
                                             gap_seconds=gap_seconds)
    result, peak = with_peak_bytes(ours)
    ratios = [a / b for a, b in zip(t_ours, t_torch)]
    return {
        "layer": layer.name,
        "op": ("conv_transpose" if transposed else "conv") + ("_weight_grad" if weight_grad else ""),
        "method": method,
        "ours_ms": statistics.median(t_ours) * 1e3,
        "torch_nchw_ms": statistics.median(t_torch) * 1e3,
        "ratio_nchw": statistics.median(ratios),
        # for the weight gradients: relative to the layer's output (their own result is the small weight)
        "extra_memory_x_output": max(0, peak - result.nbytes) / max(1, reference_bytes or result.nbytes),
        "max_rel_error_vs_torch": error,
    }


def sweep_summary(rows: list[dict]) -> dict:
    """Per operation: median, worst (and which layer), how many at or under 1.0, peak extra memory."""
    summary = {}
    for op in ("conv_transpose", "conv", "conv_transpose_weight_grad", "conv_weight_grad"):
        sel = [r for r in rows if r["op"] == op]
        if sel:
            worst = max(sel, key=lambda r: r["ratio_nchw"])
            summary[op] = {"median": statistics.median(r["ratio_nchw"] for r in sel), "worst": worst["ratio_nchw"],
                           "worst_layer": worst["layer"], "at_or_under_1": sum(r["ratio_nchw"] <= 1.0 for r in sel),
                           "layers": len(sel), "max_mem_x_output": max(r["extra_memory_x_output"] for r in sel)}
    return summary


def _sweep_line(r: dict) -> str:
    short = {"conv_transpose": "convT", "conv": "conv", "conv_transpose_weight_grad": "dW_T",
             "conv_weight_grad": "dW"}[r["op"]]
    return (f"{short:5s} {r['layer'][:44]:44s} {r['method'][:15]:15s} "
            f"{r['ours_ms']:9.3f} {r['torch_nchw_ms']:9.3f} {r['ratio_nchw']:6.2f} {r['extra_memory_x_output']:6.2f}")


def _sweep_table(rows: list[dict], seed: int) -> str:
    lines = [f"sweep seed {seed}, {len(rows)} calls, float32; ratio = median over rounds of ours/torch NCHW",
             f"{'op':5s} {'layer':44s} {'method':15s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>6s} {'mem x':>6s}"]
    lines += [_sweep_line(r) for r in rows]
    for op, s in sweep_summary(rows).items():
        lines.append(f"{op}: median {s['median']:.2f}, worst {s['worst']:.2f} ({s['worst_layer']}), "
                     f"{s['at_or_under_1']} of {s['layers']} at or under 1.0, peak extra memory {s['max_mem_x_output']:.2f}x")
    return "\n".join(lines)


def run_sweep(args: argparse.Namespace, rates: dict) -> int:
    layers = sweep_layers(args.sweep, args.seed)
    ops = {"both": (True, False), "conv_transpose": (True,), "conv": (False,)}[args.op]
    rounds = args.repeats or 7
    rows = []
    grads = (False, True) if _weight_grad_calls(layers[0], True) is not None and not args.no_weight_grad else (False,)
    for weight_grad in grads:
        for transposed in ops:
            for layer in layers:
                rows.append(sweep_row(layer, transposed, rounds, weight_grad=weight_grad))
                if not args.json:
                    print(_sweep_line(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        protocol = {"rounds": rounds, "block_seconds": SWEEP_BLOCK_SECONDS, "gap_seconds": SWEEP_GAP_SECONDS,
                    "autotune": bool(getattr(args, "autotune", False))}
        print(json.dumps({"seed": args.seed, "count": args.sweep, "machine": rates, "protocol": protocol, "rows": rows,
                          "summary": sweep_summary(rows)}, indent=2))
    else:
        print(_sweep_table(rows, args.seed))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a subset of the layers and fewer repeats (under a minute)")
    parser.add_argument("--op", choices=("conv_transpose", "conv", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 7, quick 3)")
    parser.add_argument("--layer", action="append", default=None, help="only layers whose name contains this text")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--sweep", type=int, default=0, metavar="N",
                        help="instead of the suite, N random layers (see docs/performance.md) in alternating blocks")
    parser.add_argument("--seed", type=int, default=0, help="the sweep's seed (default: 0)")
    parser.add_argument("--no-weight-grad", action="store_true", help="the sweep without the weight gradients")
    parser.add_argument("--no-save-rates", action="store_true",
                        help="do not cache the measured GEMM and copy rates for the cost model")
    parser.add_argument("--autotune", action="store_true",
                        help="method='auto' measures close candidates on each layer's first calls "
                             "(transconv.set_autotune(True)) and is timed once they are settled")
    parser.add_argument("--train", action="store_true",
                        help="instead of the suite, one training step of the shipped up-sampler against PyTorch")
    parser.add_argument("--scale", type=int, default=2, choices=(2, 4), help="--train: which shipped model (default: 2)")
    parser.add_argument("--blocks", type=int, default=7, help="--train: alternating blocks per measurement (default: 7)")
    parser.add_argument("--dask", action="store_true",
                        help="instead of the suite, transconv.dask's throughput against the in-memory call "
                             "(needs the dask extra; defaults; other sizes: python benchmarks/bench_dask.py --help)")


def _row(r: dict) -> str:
    return (
        f"{'convT' if r['op'] == 'conv_transpose' else 'conv':5s} {r['layer'][:32]:32s} {r['method'][:15]:15s} "
        f"{r['ours_ms']:9.2f} {r['torch_nchw_ms']:9.2f} {r['torch_cl_ms']:9.2f} {r['ratio_nchw']:6.2f} "
        f"{r['ratio_cl']:6.2f} {r['gflops']:8.1f} {100 * r['gemm_fraction']:5.0f}% {100 * r['bandwidth_fraction']:5.0f}% "
        f"{r['extra_memory_x_output']:6.2f} "
        + (f"{r['gemm_only_ms']:7.2f}" if r["gemm_only_ms"] == r["gemm_only_ms"] else f"{'-':>7s}")
    )


def _table(rows: list[dict], rates: dict) -> str:
    lines = [
        f"float32, {rates['threads']} threads; measured GEMM {rates['gemm_flops'] / 1e9:.0f} GFLOP/s, "
        f"copy {rates['copy_bytes'] / 1e9:.1f} GB/s; BLAS {rates['blas'].get('internal_api', '?')} "
        f"{rates['blas'].get('architecture', '?')}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}",
        f"{'op':5s} {'layer':32s} {'method':15s} {'ours ms':>9s} {'torch ms':>9s} {'t_cl ms':>9s} "
        f"{'/nchw':>6s} {'/cl':>6s} {'GFLOP/s':>8s} {'%GEMM':>6s} {'%copy':>6s} {'mem x':>6s} {'GEMM ms':>7s}",
    ]
    lines += [_row(r) for r in rows]
    for op in ("conv_transpose", "conv"):
        sel = [r for r in rows if r["op"] == op]
        if sel:
            med = statistics.median(r["ratio_nchw"] for r in sel)
            cl = [r["ratio_cl"] for r in sel if r["ratio_cl"] == r["ratio_cl"]]
            worst = max(sel, key=lambda r: r["ratio_nchw"])
            lines.append(
                f"{op}: median ours/torch NCHW {med:.2f}, channels_last {statistics.median(cl) if cl else float('nan'):.2f}; "
                f"worst {worst['ratio_nchw']:.2f} ({worst['layer']})"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dask", False):
        from .dask import bench as dask_bench

        return int(dask_bench([]) or 0)
    try:
        import torch
    except ImportError:
        print("transconv bench: PyTorch is needed as the reference (pip install 'transconv[torch]')", file=sys.stderr)
        return 2
    if getattr(args, "train", False):
        from .bench_train import run as run_train

        return run_train(args)
    try:
        import numba

        threads = numba.get_num_threads()
    except ImportError:
        threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    if getattr(args, "autotune", False):
        from .ops.dispatch import set_autotune

        set_autotune(True)
    if args.repeats is not None and args.repeats < 1:
        print(f"transconv bench: error: --repeats must be >= 1, got {args.repeats}", file=sys.stderr)
        return 2
    layers = [l for l in SUITE if (l.quick or not args.quick)]
    if args.layer:  # checked before anything is measured or cached
        layers = [l for l in layers if any(text.lower() in l.name.lower() for text in args.layer)]
        if not layers:
            print(f"transconv bench: error: no layer matches --layer {' '.join(args.layer)} "
                  f"(layers: {', '.join(l.name for l in SUITE)})", file=sys.stderr)
            return 2
    rates = machine_rates(threads)
    if not args.no_save_rates:  # the cost model of method="auto" reads them (see docs/performance.md)
        from .ops.dispatch import save_machine_rates

        print(f"machine rates cached in {save_machine_rates(rates)}", file=sys.stderr)
    if args.sweep:
        return run_sweep(args, rates)
    repeats = args.repeats or (3 if args.quick else 7)
    budget = 1.5 if args.quick else 5.0
    ops = {"both": (True, False), "conv_transpose": (True,), "conv": (False,)}[args.op]
    rows = []
    for transposed in ops:
        for layer in layers:
            rows.append(bench_layer(layer, transposed, repeats, budget, rates))
            if not args.json:  # progress, one line per layer, on stderr
                print(_row(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"machine": rates, "rows": rows}, indent=2))
    else:
        print(_table(rows, rates))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m transconv.bench``: the same as ``transconv bench``."""
    from .cli import main as cli_main

    return cli_main(["bench"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
