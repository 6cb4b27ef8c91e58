"""Public operators: validate once at the boundary (:func:`transconv.spec.validate_call`), plan, run.

Methods are registered in :data:`METHODS`.  Each receives batched arrays
``(N, C, *spatial)`` in the compute dtype and a :class:`~transconv.spec.ConvSpec`, and
returns the result without bias.  A method may decline a call (``supports`` returns
the reason), and reports an estimated cost in seconds; ``method="auto"`` takes the
cheapest method that accepts the call, and :func:`choose_method` says why.  Where the
estimates of other methods come close, ``auto`` also measures them on the problem's first
calls and keeps the fastest, once :func:`set_autotune` turns that on (:class:`Trials`).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import TransconvError
from ..files import atomic_write
from ..connectivity import axis_tap_indices
from ..limits import check_allocation
from ..spec import ConvSpec, Layout, integer_or_none, as_numeric, compute_dtypes, validate_call
from . import compiled, phase
from .direct import conv_direct, conv_transpose_direct
from .reference import conv_reference, conv_transpose_reference

__all__ = ["conv", "conv_transpose", "choose_method", "MethodChoice", "Method", "METHODS", "register_method", "Problem",
           "Plan", "plan", "run_spec", "check_method", "set_autotune", "Trials", "trials_for"]


@dataclass(frozen=True)
class Problem:
    """What a method needs to decide whether and how fast it runs: shapes, dtype and spec."""

    transposed: bool
    x_shape: tuple[int, ...]  # batched (N, C, *spatial) input of the operation
    w_shape: tuple[int, ...]
    spec: ConvSpec
    dtype: np.dtype

    @cached_property
    def output_spatial(self) -> tuple[int, ...]:
        return self.spec.output_shape(self.x_shape[2:], self.transposed)

    @property
    def macs(self) -> int:
        """Multiply-adds of the dense formulation (taps x channel pairs x small-grid positions)."""
        small = self.x_shape[2:] if self.transposed else self.output_spatial
        taps = math.prod(self.spec.kernel_size)
        return int(self.x_shape[0] * np.prod(small) * taps * self.w_shape[0] * self.w_shape[1])


@dataclass(frozen=True)
class Method:
    """One way of computing conv / conv_transpose.

    ``supports(problem)`` returns ``None`` when the method can run the call, otherwise
    the reason it declines; ``cost(problem)`` estimates seconds on this machine.
    """

    name: str
    conv: Callable[[np.ndarray, np.ndarray, ConvSpec], np.ndarray]
    conv_transpose: Callable[[np.ndarray, np.ndarray, ConvSpec], np.ndarray]
    cost: Callable[[Problem], float]
    supports: Callable[[Problem], Optional[str]] = field(default=lambda problem: None)
    auto: bool = True  # whether "auto" may pick it

    def run(self, problem: Problem, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        fn = self.conv_transpose if problem.transposed else self.conv
        return fn(x, w, problem.spec)


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Add a method to the registry (later registrations of a name replace earlier ones)."""
    METHODS[method.name] = method
    if "_forget_plans" in globals():  # registrations after import change what "auto" may pick
        _forget_plans()
    return method


# Fallback rates of the cost model, used until `transconv bench` has measured this machine
# (docs/performance.md: where they were fitted and how).
FALLBACK_RATES = {
    "gemm_flops": 1.5e11,  # sustained float32 GEMM rate of well-shaped products
    "compiled_macs": 1.2e10,  # compiled direct kernels' multiply-adds on rows of 64+ outputs
    "write_bytes": 1.5e10,  # compiled kernels writing fresh output
    "scatter_elements": 1.2e9,  # gemm's scatter / gather, elements per second
    "copy_bytes": 4.0e9,  # numpy's strided copies
}
# what bench.machine_rates measured on the machine the fallbacks were fitted on: a
# measurement elsewhere scales the compute rates by its GEMM rate and the rest by its copy rate
_FITTED_ON = {"gemm_flops": 3.42e11, "copy_bytes": 2.98e10}
_SCALES_WITH = {"gemm_flops": "gemm_flops", "compiled_macs": "gemm_flops", "write_bytes": "copy_bytes",
                "scatter_elements": "copy_bytes", "copy_bytes": "copy_bytes"}


def rates_path() -> Path:
    """Where ``transconv bench`` caches this machine's measured rates: ``$TRANSCONV_CACHE_DIR``
    or the user cache directory (``$XDG_CACHE_HOME``, ``~/.cache``; ``%LOCALAPPDATA%`` on Windows)."""
    root = os.environ.get("TRANSCONV_CACHE_DIR")
    if not root:
        base = os.environ.get("LOCALAPPDATA") if os.name == "nt" else os.environ.get("XDG_CACHE_HOME")
        root = os.path.join(base or os.path.join(os.path.expanduser("~"), ".cache"), "transconv")
    return Path(root) / "machine_rates.json"


def save_machine_rates(measured: dict) -> Path:
    """Cache ``bench.machine_rates`` output for the cost model (temporary file, then rename)."""
    path = rates_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {k: float(measured[k]) for k in _FITTED_ON}
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(record))
    cost_rates.cache_clear()
    _forget_plans()
    return path


@lru_cache(maxsize=1)
def cost_rates() -> dict:
    """The cost model's rates: the fallbacks scaled by this machine's cached measurement, if any.

    >>> sorted(cost_rates()) == sorted(FALLBACK_RATES)
    True
    """
    try:
        measured = json.loads(rates_path().read_text())
        scale = {k: float(measured[k]) / v for k, v in _FITTED_ON.items()}
        if not all(0 < v < 1e3 for v in scale.values()):
            raise ValueError(scale)
    except (OSError, ValueError, KeyError, TypeError):  # nothing measured yet, or an unreadable cache
        return dict(FALLBACK_RATES)
    return {k: v * scale[_SCALES_WITH[k]] for k, v in FALLBACK_RATES.items()}


_GEMM_BLOCK_LIMIT = 128 * 2**20  # bytes of gemm's smallest work block
_CALL_SECONDS = 4e-6  # one numpy or compiled call from Python


def _small_positions(p: Problem) -> int:
    small = p.x_shape[2:] if p.transposed else p.output_spatial
    return int(p.x_shape[0] * np.prod(small))


def _channels(p: Problem) -> tuple[int, int]:
    """(channels contracted per group, channels produced per group)."""
    g = p.spec.groups
    if p.transposed:
        return p.w_shape[0] // g, p.w_shape[1]
    return p.w_shape[1], p.w_shape[0] // g


def _output_bytes(p: Problem) -> int:
    return p.x_shape[0] * math.prod(p.output_spatial) * _channels(p)[1] * p.spec.groups * p.dtype.itemsize


def _gemm_efficiency(m: int, k: int, n: int) -> float:
    """Fraction of peak a GEMM of this shape reaches: thin products are memory-bound."""
    return min(1.0, m / 64) * min(1.0, k / 64) * min(1.0, n / 256) + 1e-3


def _direct_cost(p: Problem) -> float:
    taps = math.prod(p.spec.kernel_size)
    c_sum, c_make = _channels(p)
    moved = _small_positions(p) * taps * (c_sum + c_make) * p.spec.groups * p.dtype.itemsize
    overhead = _CALL_SECONDS * (2 + taps * p.spec.groups)  # numpy calls per tap and group
    r = cost_rates()
    if c_sum == c_make == 1:  # one channel per group: scaled adds, bound by memory traffic
        return 2 * moved / r["copy_bytes"] + overhead
    eff = _gemm_efficiency(c_make, c_sum, math.prod(p.output_spatial))
    return 2 * p.macs / (r["gemm_flops"] * eff) + moved / r["copy_bytes"] + overhead


def _reference_cost(p: Problem) -> float:
    return 50 * _direct_cost(p)


def _gemm_cost(p: Problem) -> float:
    taps = math.prod(p.spec.kernel_size)
    c_sum, c_make = _channels(p)
    positions = _small_positions(p)
    eff = _gemm_efficiency(c_make * (taps if p.transposed else 1), c_sum * (1 if p.transposed else taps), positions)
    moved = positions * taps * (c_make if p.transposed else c_sum) * p.spec.groups  # scatter / gather elements
    r = cost_rates()
    # every output element is written once more after the GEMM (the scatter's interleave, the
    # conv's copy out of a folded block): the write term keeps a 1x1 stride-4 transposed
    # call, whose output is 64x its input, off gemm (refitted on the sweep, docs/performance.md)
    return (2 * p.macs / (r["gemm_flops"] * eff) + moved / r["scatter_elements"] + _output_bytes(p) / r["write_bytes"]
            + _CALL_SECONDS * (4 + 6 * p.spec.groups))


def _compiled_direct_cost(p: Problem) -> float:
    # vectorised along rows of the output: short rows pay loop overhead per row
    width = p.output_spatial[-1]
    out_bytes = _output_bytes(p)
    r = cost_rates()
    split = 0  # conv with stride: every (output channel, input channel, outer tap) splits a big row into phases
    if not p.transposed and p.spec.stride[-1] > 1:
        c_sum, c_make = _channels(p)
        outer_taps = math.prod(p.spec.kernel_size[:-1])
        split = (p.x_shape[0] * c_make * p.spec.groups * c_sum * outer_taps * math.prod(p.output_spatial[:-1])
                 * p.x_shape[-1] * p.dtype.itemsize)
    return (p.macs / (r["compiled_macs"] * min(1.0, width / 64)) + (out_bytes + split) / r["write_bytes"]
            + 2 * _CALL_SECONDS)


def _needs_numba(p: Problem) -> Optional[str]:
    if compiled.NUMBA_ERROR:
        return compiled.NUMBA_ERROR
    if p.dtype not in (np.float32, np.float64):
        return f"the compiled kernels compute in float32 or float64, this call in {p.dtype}"
    small = p.x_shape[2:] if p.transposed else p.output_spatial
    size = compiled.plan_bytes(p.spec, small)
    if size > compiled.TABLE_LIMIT:
        return f"its connectivity table would take {size / 2**20:.0f} MB (limit {compiled.TABLE_LIMIT // 2**20} MB)"
    return None


def _gemm_supports(p: Problem) -> Optional[str]:
    why_not = _needs_numba(p)
    if why_not:
        return why_not
    # the smallest block gemm can work in: one output channel plane of the transposed GEMM
    # result, or the gather of one output row of one sample for the convolution
    taps = math.prod(p.spec.kernel_size)
    if p.transposed:
        smallest, what = taps * math.prod(p.x_shape[2:]) * p.dtype.itemsize, "one output channel's GEMM result"
    else:
        smallest = p.w_shape[1] * taps * p.output_spatial[-1] * p.dtype.itemsize
        what = "the gather of one output row"
    if smallest > _GEMM_BLOCK_LIMIT:
        return (f"{what} would take {smallest / 2**20:.0f} MB (limit {_GEMM_BLOCK_LIMIT // 2**20} MB; "
                f"kernel {p.spec.kernel_size})")
    return None


register_method(Method("reference", conv_reference, conv_transpose_reference, _reference_cost, auto=False))
register_method(Method("direct", conv_direct, conv_transpose_direct, _direct_cost))
register_method(Method("gemm", compiled.gemm_conv, compiled.gemm_conv_transpose, _gemm_cost, _gemm_supports))
register_method(Method("compiled_direct", compiled.direct_conv, compiled.direct_conv_transpose, _compiled_direct_cost,
                       _needs_numba))


def _shift_supports(p: Problem) -> Optional[str]:
    return _needs_numba(p) or compiled.shift_supports(p.spec, p.transposed)


def _shift_cost(p: Problem) -> float:
    taps = math.prod(p.spec.kernel_size)
    c_sum, c_make = _channels(p)
    # the convolution shift_conv runs: on the transposed call's input with the flipped spec
    spec = compiled.flipped_conv_spec(p.spec) if p.transposed else p.spec
    waste = compiled.shift_waste(spec, p.x_shape[2:])
    positions = p.x_shape[0] * math.prod(p.output_spatial)
    r = cost_rates()
    if taps == 1:  # stacked matmuls straight over the input: thin ones stream it once
        streamed = positions * (c_sum + c_make) * p.spec.groups * p.dtype.itemsize
        eff = min(1.0, c_make / 16) * min(1.0, c_sum / 16) + 1e-3
        return max(2 * p.macs / (r["gemm_flops"] * eff), streamed / r["write_bytes"]) + _CALL_SECONDS * 3
    eff = _gemm_efficiency(c_make, c_sum * taps, positions)
    copied = positions * waste * taps * c_sum * p.spec.groups
    return (2 * p.macs * waste / (r["gemm_flops"] * eff) + copied * p.dtype.itemsize / r["copy_bytes"]
            + _CALL_SECONDS * (3 + 3 * p.spec.groups))


# Stride-1 layers (compiled.shift_conv): one GEMM over shifted contiguous runs of the padded input.
register_method(Method("shift", compiled.shift_conv, compiled.shift_conv_transpose, _shift_cost, _shift_supports))


def _phase_supports(p: Problem) -> Optional[str]:
    why_not = _needs_numba(p)
    if why_not:
        return why_not
    if p.transposed:
        return None
    spec = p.spec
    if any(s > 1 for s in spec.stride) or any(lo or hi for lo, hi in spec.padding):
        lengths, used = phase.conv_grid(spec, p.x_shape[2:])
        copy = p.x_shape[0] * p.x_shape[1] * len(used) * math.prod(lengths) * p.dtype.itemsize
        out = p.x_shape[0] * p.w_shape[0] * math.prod(p.output_spatial) * p.dtype.itemsize
        if copy > max(2 * out, _PHASE_COPY_FLOOR):
            return (f"its copy of the input's stride phases ({copy / 2**20:.1f} MB) would exceed twice the output "
                    f"({out / 2**20:.1f} MB)")
    return None


_PHASE_COPY_FLOOR = 4 * 2**20  # the phase copy may always take this much
_PHASE_RATE = 3.0  # the phase kernels' multiply-adds per second in units of compiled_macs (fitted on the sweep)


def _phase_cost(p: Problem) -> float:
    spec = p.spec
    c_sum, c_make = _channels(p)
    out = p.output_spatial
    if p.transposed:  # one stride-1 correlation per output phase, on the padded input's grid
        _, _, lengths = phase.transpose_grid(spec, p.x_shape[2:])
        phases = 1
        grid = -(-out[0] // spec.stride[0]) * math.prod(lengths[1:])
    else:  # the input's stride phases, output rows at their grid's width
        lengths, used = phase.conv_grid(spec, p.x_shape[2:])
        phases = len(used)
        grid = out[0] * math.prod(lengths[1:])
    adds = p.x_shape[0] * grid * math.prod(spec.kernel_size) * c_sum * c_make * spec.groups
    tasks = p.x_shape[0] * spec.groups * max(1, grid * c_make // 4096) * (math.prod(spec.stride) if p.transposed else 1)
    idle = compiled.thread_count() / min(max(1, tasks), compiled.thread_count())
    r = cost_rates()
    copied = 0.0  # the stride phases or the padded copy of the input
    if p.transposed or any(s > 1 for s in spec.stride) or any(lo or hi for lo, hi in spec.padding):
        copied = 2 * p.x_shape[0] * p.x_shape[1] * math.prod(lengths) * phases * p.dtype.itemsize / r["copy_bytes"]
    out_bytes = _output_bytes(p)
    # few output channels per group leave the input's loads unshared (the gathered GEMM, a
    # matrix-vector product then, streams better, unless one input channel makes it a scaled
    # add); many shorten the L1-sized blocks' runs, and the more channel pairs, the better a
    # GEMM's register blocking pays; a transposed call with many output phases (FCN's stride
    # 32) cuts the work into many small correlations
    thin = (1 + (2 / c_make if c_sum > 1 else 0)) * (1 + c_make / 64) * (1 + c_sum * c_make / 2048)
    if p.transposed:
        thin *= 1 + math.prod(spec.stride) / 64
    compute = thin * idle * adds / (_PHASE_RATE * r["compiled_macs"])
    return compute + copied + out_bytes / r["write_bytes"] + _CALL_SECONDS * 3


# Polyphase decomposition as shifted runs (transconv.ops.phase): the input's stride phases
# (conv) or one stride-1 correlation per output phase (conv_transpose), no GEMM.
register_method(Method("phase", phase.conv_phase, phase.conv_transpose_phase, _phase_cost, _phase_supports))


@dataclass(frozen=True)
class MethodChoice:
    """The method the cost model picks for a call, why, and the estimate for every method considered.

    ``measured`` holds the seconds ``"auto"`` measured for the candidates close to that pick
    on the problem's first calls (empty before them, or with :func:`set_autotune` off), and
    ``fastest_measured`` the one it runs from then on.
    """

    method: str
    reason: str
    costs: dict[str, float]
    declined: dict[str, str]
    measured: dict[str, float] = field(default_factory=dict)
    fastest_measured: Optional[str] = None

    def __str__(self) -> str:
        text = f"{self.method}: {self.reason}"
        if self.measured:
            times = ", ".join(f"{n} {t * 1e3:.3g} ms" for n, t in sorted(self.measured.items(), key=lambda kv: kv[1]))
            text += f"; measured on its first calls: {times}"
            if self.fastest_measured:
                text += f"; runs {self.fastest_measured}"
        return text


def _choose(problem: Problem) -> MethodChoice:
    """The cheapest method for ``problem`` (cached: a layer's calls repeat its problem)."""
    return _choose_cached(problem)


@lru_cache(maxsize=512)
def _choose_cached(problem: Problem) -> MethodChoice:
    costs: dict[str, float] = {}
    declined: dict[str, str] = {}
    for name, method in METHODS.items():
        if not method.auto:
            continue
        why_not = method.supports(problem)
        if why_not is not None:
            declined[name] = why_not
        else:
            costs[name] = float(method.cost(problem))
    best = min(costs, key=costs.__getitem__)
    ranked = sorted(costs.items(), key=lambda kv: kv[1])
    runners = ", ".join(f"{n} {c * 1e3:.3g} ms" for n, c in ranked)
    reason = f"lowest estimated cost ({runners})"
    if declined:
        reason += "; declined: " + "; ".join(f"{n}: {r}" for n, r in declined.items())
    return MethodChoice(best, reason, costs, declined)


# --------------------------------------------------------------------------------------
# Measured choice: the cost model ranks, the problem's first calls decide between close ranks.
# --------------------------------------------------------------------------------------

_TUNE_WITHIN = 4.0  # candidates estimated within this factor of the cheapest estimate ...
_TUNE_CANDIDATES = 3  # ... at most this many; those that split calls over the cores ...
_SPLITS = ("gemm", "shift")  # ... (compiled._split) also measured as one range ...
_ONE_RANGE = " one range"  # ... under their name with this suffix (compiled.ONE_RANGE) ...
_ONE_RANGE_BELOW = 64_000_000  # ... below this many multiply-adds
_TUNE_MOST = 2 * _TUNE_CANDIDATES  # candidates at most
_TUNE_CALLS = 3  # calls per candidate: the first warms its kernels, caches and thread pool; the fastest counts
_TUNE_ABOVE = 50e-6  # estimated seconds under which auto trusts the model (timer noise, dispatch overhead)
_TUNE_LIMIT = 512  # problems remembered
_AUTOTUNE = [os.environ.get("TRANSCONV_AUTOTUNE", "0").strip().lower() in ("1", "true", "yes", "on")]


def set_autotune(enabled: bool) -> bool:
    """Whether ``method="auto"`` measures close candidates on a problem's first calls; returns
    the previous setting.  Off by default (``TRANSCONV_AUTOTUNE=1`` starts it on), as
    ``torch.backends.cudnn.benchmark``: results are then bitwise repeatable.

    Off, ``auto`` runs the cost model's pick on every call, so repeated calls, and runs of
    a program, give bitwise the same result.  On, the first calls of each problem run the
    candidates whose estimates are within 4x of the pick, the split ones also on one range
    (every call computes the full, correct result; methods agree to rounding, not bit for
    bit), and later calls run the fastest of them: worth it for a layer called many times.

    >>> import transconv as tc
    >>> previous = tc.set_autotune(True)
    >>> tc.set_autotune(previous)
    True
    """
    if not isinstance(enabled, (bool, np.bool_)):
        raise TransconvError(f"set_autotune: enabled must be True or False, got {enabled!r}")
    previous = _AUTOTUNE[0]
    _AUTOTUNE[0] = bool(enabled)
    _forget_plans()  # cached plans hold their measurements
    return previous


class Trials:
    """``auto``'s measurement of one problem: its candidates take turns on its first calls,
    ``_TUNE_CALLS`` each, and the fastest (by each candidate's fastest call) runs every call
    after that.  Nothing is computed twice: each trial call returns its real result."""

    def __init__(self, candidates: list[str]) -> None:
        self.candidates = candidates
        self.seconds: dict[str, float] = {}
        self.fastest: Optional[str] = None
        self._started = 0
        self._recorded = 0
        self._lock = threading.Lock()

    def next_method(self) -> Optional[str]:
        """The candidate the next call runs, or ``None`` once every trial call has started."""
        with self._lock:
            turn, self._started = self._started, self._started + 1
        return self.candidates[turn // _TUNE_CALLS] if turn < len(self.candidates) * _TUNE_CALLS else None

    def record(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = min(seconds, self.seconds.get(name, math.inf))
            self._recorded += 1
            if self._recorded == len(self.candidates) * _TUNE_CALLS:
                self.fastest = min(self.seconds, key=self.seconds.__getitem__)

    def call(self, run: Callable[[str], Any], pick: str) -> Any:
        """``run(name)`` for this call's candidate, timed while trials last; the fastest once
        they are over; ``pick`` while the last trials still run in other threads."""
        if self.fastest is not None:
            return run(self.fastest)
        name = self.next_method()
        if name is None:
            return run(pick)
        start = time.perf_counter()
        out = run(name)
        self.record(name, time.perf_counter() - start)
        return out


_TRIALS: dict[Any, Trials] = {}  # by Problem, or by a weight gradient's key (transconv.ops.weight_grad)


def trials_for(key: Any, candidates: Callable[[], list[str]]) -> Optional[Trials]:
    """The :class:`Trials` of ``key``, made on its first call from ``candidates()`` (the pick
    first), or ``None``: autotune off, or fewer than two candidates."""
    if not _AUTOTUNE[0]:
        return None
    found = _TRIALS.get(key)
    if found is None:
        names = candidates()
        if len(names) < 2:
            return None
        if len(_TRIALS) >= _TUNE_LIMIT:
            _TRIALS.clear()
        found = _TRIALS.setdefault(key, Trials(names))
    return found


def _trials(problem: Problem, choice: MethodChoice) -> Optional[Trials]:
    """The problem's :class:`Trials`: the methods estimated within ``_TUNE_WITHIN`` of the
    cheapest, none for a call too small to time."""
    if not _AUTOTUNE[0]:  # the default: nothing more on the call's path
        return None
    best = choice.costs[choice.method]
    if best < _TUNE_ABOVE:
        return None

    def candidates() -> list[str]:
        ranked = sorted(choice.costs, key=choice.costs.__getitem__)
        close = [n for n in ranked if choice.costs[n] <= _TUNE_WITHIN * best][:_TUNE_CANDIDATES]
        # sub-50-ms calls split over cores often lose to one range (the GEMM alone threaded)
        # and as often win; the model cannot tell, so both are measured (smaller calls, which
        # compiled.splits runs as one range anyway, once)
        data_bytes = math.prod(problem.x_shape) * problem.dtype.itemsize + _output_bytes(problem)
        if (problem.macs < _ONE_RANGE_BELOW and compiled.thread_count() > 1
                and compiled.splits(problem.macs, data_bytes)):
            close += [n + _ONE_RANGE for n in close if n in _SPLITS]
        return close

    return trials_for(problem, candidates)


# --------------------------------------------------------------------------------------
# Plan and run: a validated call, a chosen method.
# --------------------------------------------------------------------------------------


def _work_bytes(problem: Problem) -> int:
    """Estimated peak bytes of one call: the result, a work buffer of up to 1.5 times it
    (the compiled methods' cap), the inputs' copies in the compute dtype, and the padded
    grid (the input of a convolution, the uncropped output of a transposed one) that
    padding modes and the connectivity's per-axis tables span."""
    spec = problem.spec
    spatial = problem.output_spatial
    c_in, c_out = problem.x_shape[1], _channels(problem)[1] * spec.groups
    out = problem.x_shape[0] * c_out * math.prod(spatial) * problem.dtype.itemsize
    inputs = (math.prod(problem.x_shape) + math.prod(problem.w_shape)) * problem.dtype.itemsize
    big, channels = (spatial, c_out) if problem.transposed else (problem.x_shape[2:], c_in)
    padded = spec.padded_shape(big)
    return int(2.5 * out + inputs + problem.x_shape[0] * channels * math.prod(padded) * problem.dtype.itemsize
               + 16 * sum(padded) * max(spec.kernel_size))


@dataclass(frozen=True)
class Plan:
    """A validated problem and the method that runs it: ``plan(x, w)`` checks the memory
    estimate ``work_bytes`` against the limit in force, then computes the result (batched,
    without bias) from batched, C-contiguous arrays in ``problem.dtype``."""

    method: Method
    problem: Problem
    op: str = "plan"
    work_bytes: int = 0
    trials: Optional[Trials] = None  # auto's measurement of close candidates, if any

    @cached_property
    def _multiplies_zero_padding(self) -> bool:
        """A convolution with zero padding: PyTorch multiplies the padding by the weight."""
        spec = self.problem.spec
        return not self.problem.transposed and spec.padding_mode == "zeros" and any(lo or hi for lo, hi in spec.padding)

    def _nonfinite_weights_matter(self, method: Method) -> bool:
        """Whether a NaN or infinite weight needs more than the method's own arithmetic:
        zero padding it multiplies (conv), or phase's zero margins (conv_transpose)."""
        return self._multiplies_zero_padding or (self.problem.transposed and method.name == "phase")

    def __call__(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        check_allocation(self.op, "the result and its work buffers", self.work_bytes)
        problem = self.problem
        if problem.x_shape[0] == 0:  # an empty batch gives an empty batch, as in PyTorch
            c_out = _channels(problem)[1] * problem.spec.groups
            return np.zeros((0, c_out) + problem.output_spatial, dtype=problem.dtype)
        if self.trials is None:
            return self._run(self.method, x, w)
        return self.trials.call(lambda name: self._run_candidate(name, x, w), self.method.name)

    def _run_candidate(self, name: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        if not name.endswith(_ONE_RANGE):
            return self._run(METHODS[name], x, w)
        token = compiled.ONE_RANGE.set(True)
        try:
            return self._run(METHODS[name[: -len(_ONE_RANGE)]], x, w)
        finally:
            compiled.ONE_RANGE.reset(token)

    def _run(self, method: Method, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        problem = self.problem
        if not self._nonfinite_weights_matter(method) or compiled.all_finite(w):
            return method.run(problem, x, w)
        if problem.transposed:
            # phase's gather margins are zeros that PyTorch never multiplies: 0 x inf would add NaNs
            method = METHODS["gemm"] if _gemm_supports(problem) is None else METHODS["reference"]
        out = method.run(problem, x, w)
        if not problem.transposed:
            _padding_times_weight(out, w, problem)
        return out


def _padding_times_weight(out: np.ndarray, w: np.ndarray, problem: Problem) -> None:
    """PyTorch multiplies zero padding by the weight: a NaN or infinite tap makes NaN (0 x inf)
    in every output whose window puts that tap on the padding, which methods that skip
    padded taps would miss.  Sets those outputs to NaN, in place."""
    spec = problem.spec
    if spec.padding_mode != "zeros" or not any(lo or hi for lo, hi in spec.padding):
        return
    maps = axis_tap_indices(spec, problem.x_shape[2:])
    for co, _, *tap in zip(*np.nonzero(~np.isfinite(w))):
        on_padding = maps[0][:, tap[0]] < 0
        for a in range(1, len(tap)):
            on_padding = np.logical_or.outer(on_padding, maps[a][:, tap[a]] < 0)
        out[:, co][..., on_padding] = np.nan


def check_method(op: str, method: Any) -> None:
    """Refuse a ``method=`` that is neither ``"auto"`` nor a registered method's name."""
    if not isinstance(method, str) or method != "auto" and method not in METHODS:
        raise TransconvError(f"{op}: method must be 'auto' or one of {sorted(METHODS)}, got {method!r}")


def plan(op: str, transposed: bool, spec: ConvSpec, x_shape: tuple[int, ...], w_shape: tuple[int, ...],
         dtype: Any, method: Any = "auto") -> Plan:
    """The internal seam: run ``spec`` on these batched shapes with this method (``"auto"`` chooses).

    Callers that already hold a spec (the matrix-free operator, the CLI) plan once and call
    the plan for every product, without re-validating keyword arguments.  The memory guard
    runs here, before any method is asked about the call.
    """
    check_method(op, method)
    problem = Problem(transposed, x_shape, w_shape, spec, np.dtype(dtype))
    work_bytes = _work_bytes(problem)
    check_allocation(op, "the result and its work buffers", work_bytes)
    if method == "auto":
        choice = _choose(problem)
        return Plan(METHODS[choice.method], problem, op, work_bytes, _trials(problem, choice))
    chosen = METHODS[method]
    why_not = chosen.supports(problem)
    if why_not is not None:
        raise TransconvError(f"{op}: method {method!r} cannot run this call: {why_not}")
    return Plan(chosen, problem, op, work_bytes)


# The plans of repeated calls: validate_call returns the same Layout object for the same
# arguments, so a layout's identity, the dtypes and the method name key everything a plan
# depends on; the entry holds the layout, so its id cannot be reused while the entry lives.
_CALLS: dict = {}
_CALLS_LIMIT = 512


def _forget_plans() -> None:
    """Drop every cached plan, method choice and measurement (the methods or the cost model changed)."""
    _choose_cached.cache_clear()
    _CALLS.clear()
    _TRIALS.clear()


def _call_plan(op: str, layout: Layout, x_dtype: np.dtype, w_dtype: np.dtype, bias_dtype: Optional[np.dtype],
               method: Any) -> tuple[Layout, np.dtype, Plan]:
    """``(layout, result dtype, plan)`` of a call, planned once per layout, dtypes and method."""
    key = (id(layout), x_dtype, w_dtype, bias_dtype, method) if type(method) is str else None
    found = _CALLS.get(key) if key is not None else None
    if found is not None and found[0] is layout:
        return found
    out_dtype, compute = compute_dtypes(x_dtype, w_dtype, bias_dtype)
    found = (layout, out_dtype, plan(op, layout.transposed, layout.spec, layout.x_shape, layout.w_shape, compute,
                                     method))
    if key is not None:
        if len(_CALLS) >= _CALLS_LIMIT:
            _CALLS.clear()
        _CALLS[key] = found
    return found


def run_spec(op: str, transposed: bool, spec: ConvSpec, x: np.ndarray, w: np.ndarray,
             bias: Optional[np.ndarray] = None, method: Any = "auto") -> np.ndarray:
    """The internal seam for callers that hold a validated spec and batched arrays ``(N, C, *spatial)``
    (the layers, the public operators): plan, run in the compute dtype, add the bias, return the
    result dtype.  Nothing here re-validates the geometry."""
    out_dtype, compute = compute_dtypes(x.dtype, w.dtype, None if bias is None else bias.dtype)
    run = plan(op, transposed, spec, x.shape, w.shape, compute, method)
    out = run(np.ascontiguousarray(x, dtype=compute), np.ascontiguousarray(w, dtype=compute))
    if bias is not None:
        out += bias.astype(compute).reshape((1, -1) + (1,) * (out.ndim - 2))
    return out.astype(out_dtype, copy=False)


def _execute(op: str, layout: Layout, x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray], method: Any) -> np.ndarray:
    _, out_dtype, run = _call_plan(op, layout, x.dtype, w.dtype, None if bias is None else bias.dtype, method)
    compute = run.problem.dtype
    out = run(np.ascontiguousarray(x.reshape(layout.x_shape), dtype=compute),
              np.ascontiguousarray(w.reshape(layout.w_shape), dtype=compute))
    if bias is not None:
        out += bias.astype(compute, copy=False).reshape((1, -1) + (1,) * (out.ndim - 2))
    out = out.astype(out_dtype, copy=False)
    return out.reshape(out.shape[layout.squeeze:])


def _arrays(op: str, x: Any, w: Any, bias: Any) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    return as_numeric(op, "x", x), as_numeric(op, "w", w), None if bias is None else as_numeric(op, "bias", bias)


def conv(
    x: Any,
    w: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    method: str = "auto",
    plain: Optional[bool] = None,
) -> np.ndarray:
    """N-dimensional convolution (cross-correlation, no kernel flip), as ``torch.nn.functional.conv{1,2,3}d``.

    Parameters
    ----------
    x : array_like
        ``(N, C_in, *spatial)``, unbatched ``(C_in, *spatial)``, or with a plain kernel
        just ``spatial`` (see ``plain``).
    w : array_like
        ``(C_out, C_in / groups, *kernel)``, or a plain kernel ``kernel`` with no channel axes.
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of int
        One value for every spatial axis or one per axis; >= 1.
    padding : int, tuple, tuple of (lo, hi) pairs, "valid" or "same"
        Implicit padding on both sides, per axis, or per side.  ``"same"`` keeps
        ``ceil(input / stride)`` outputs with the odd pixel of padding on the high side
        (TensorFlow's rule; PyTorch's ``"same"`` for stride 1).
    groups : int
        Channels are split into ``groups`` independent convolutions (``groups = C_in``
        is depthwise).
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        What the padding holds, as PyTorch's ``padding_mode``.
    method : str
        ``"auto"`` (cheapest method that accepts the call, see :func:`choose_method`),
        ``"reference"`` (the definition, slow) or any name in ``transconv.METHODS``.
    plain : bool, optional
        Treat ``x`` and ``w`` as plain arrays without batch or channel axes.  Defaults to
        True when ``w`` has fewer than 3 axes (a 1-d or 2-d plain kernel cannot be a
        channelled weight); pass ``plain=True`` for plain 3-d and higher kernels.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *out)`` (the batch and channel axes as given).  Float inputs keep
        their dtype (float16 is computed in float32), integer inputs give float64.

    Notes
    -----
    Shape, per spatial axis, with ``k_eff = dilation * (kernel - 1) + 1``::

        out = floor((in + pad_lo + pad_hi - k_eff) / stride) + 1

    Examples
    --------
    The worked example: a 3x3 kernel over a 4x4 input, no padding.

    >>> import transconv as tc
    >>> x = [[4, 5, 8, 7], [1, 8, 8, 8], [3, 6, 6, 4], [6, 5, 7, 8]]
    >>> k = [[1, 4, 1], [1, 4, 3], [3, 3, 1]]
    >>> tc.conv(x, k)
    array([[122., 148.],
           [126., 134.]])
    """
    x, w, bias = _arrays("conv", x, w, bias)
    layout = validate_call("conv", False, x.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                           groups=groups, padding_mode=padding_mode, plain=plain,
                           bias_shape=None if bias is None else bias.shape)
    return _execute("conv", layout, x, w, bias, method)


def conv_transpose(
    x: Any,
    w: Any,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    *,
    output_size: Any = None,
    padding_mode: str = "zeros",
    method: str = "auto",
    plain: Optional[bool] = None,
) -> np.ndarray:
    """N-dimensional transposed convolution, as ``torch.nn.functional.conv_transpose{1,2,3}d``.

    The exact adjoint of :func:`conv` with the same weight and geometry: for every
    ``x`` and ``y``, ``<conv(x), y> == <x, conv_transpose(y)>``.  One input value reaches
    ``prod(kernel)`` outputs, spaced ``stride`` apart between neighbouring inputs.

    Parameters
    ----------
    x : array_like
        ``(N, C_in, *spatial)``, ``(C_in, *spatial)``, or plain ``spatial``.
    w : array_like
        ``(C_in, C_out / groups, *kernel)`` (PyTorch's layout), or a plain kernel.
    bias : array_like, optional
        ``(C_out,)``.
    stride, dilation : int or tuple of int
    padding : int, tuple, tuple of (lo, hi) pairs, "valid" or "same"
        How much the output is cropped on each side (the padding of the convolution it
        transposes).  ``"same"`` gives ``out = in * stride`` with the odd pixel cropped on
        the high side (TensorFlow, ONNX ``SAME_UPPER``); PyTorch has no such option.
    output_padding : int or tuple of int
        Extra length on the high side of the output, ``< max(stride, dilation)``.  It only
        chooses the output size: the added positions receive kernel contributions too.
    groups : int
    output_size : sequence of int, optional
        Requested spatial output size (or a full shape); resolved to ``output_padding``.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}
        The adjoint of :func:`conv` with that mode: border outputs fold back onto the
        samples the padding copied.  PyTorch only accepts "zeros" here.
    method, plain
        As in :func:`conv`.

    Returns
    -------
    numpy.ndarray
        ``(N, C_out, *out)``.

    Notes
    -----
    Shape, per spatial axis::

        out = (in - 1) * stride - pad_lo - pad_hi + dilation * (kernel - 1) + 1 + output_padding

    Examples
    --------
    >>> import transconv as tc
    >>> k = [[1, 4, 1], [1, 4, 3], [3, 3, 1]]
    >>> tc.conv_transpose([[2, 1], [4, 4]], k)
    array([[ 2.,  9.,  6.,  1.],
           [ 6., 29., 30.,  7.],
           [10., 29., 33., 13.],
           [12., 24., 16.,  4.]])
    """
    x, w, bias = _arrays("conv_transpose", x, w, bias)
    layout = validate_call("conv_transpose", True, x.shape, w.shape, stride=stride, padding=padding,
                           output_padding=output_padding, groups=groups, dilation=dilation, output_size=output_size,
                           padding_mode=padding_mode, plain=plain, bias_shape=None if bias is None else bias.shape)
    return _execute("conv_transpose", layout, x, w, bias, method)


def choose_method(
    x: Any,
    w: Any,
    *,
    transposed: bool = False,
    bias: Any = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
    output_size: Any = None,
    padding_mode: str = "zeros",
    dtype: Any = None,
    plain: Optional[bool] = None,
) -> MethodChoice:
    """The method ``method="auto"`` would use for a call, and why.

    ``x`` and ``w`` may be arrays or just their shapes (tuples); ``dtype`` sets the dtype
    assumed for shapes (float32 by default).

    >>> import transconv as tc
    >>> choice = tc.choose_method((8, 64, 32, 32), (64, 32, 4, 4), transposed=True, stride=2, padding=1)
    >>> choice.method in tc.METHODS
    True
    """
    op = "choose_method"

    def shape_and_dtype(name, value):
        if isinstance(value, tuple) and all(integer_or_none(v) is not None for v in value):
            return tuple(integer_or_none(v) for v in value), None
        array = as_numeric(op, name, value)
        return array.shape, array.dtype

    try:
        assumed = np.dtype(np.float32 if dtype is None else dtype)
    except TypeError:
        raise TransconvError(f"{op}: dtype must be a NumPy dtype such as 'float32', got {dtype!r}") from None
    if assumed.kind not in "biuf":
        raise TransconvError(f"{op}: dtype must be a real numeric dtype (bool, int, float), got {assumed}")
    (x_shape, x_dtype), (w_shape, w_dtype) = shape_and_dtype("x", x), shape_and_dtype("w", w)
    bias_arr = None if bias is None else as_numeric(op, "bias", bias)
    if not isinstance(transposed, (bool, np.bool_)):
        raise TransconvError(f"{op}: transposed must be True or False, got {transposed!r}")
    transposed = bool(transposed)
    if not transposed and (not (output_padding is None or integer_or_none(output_padding) == 0) or output_size is not None):
        raise TransconvError(f"{op}: output_padding and output_size apply only with transposed=True")
    layout = validate_call(op, transposed, x_shape, w_shape, stride=stride, padding=padding,
                           output_padding=output_padding if transposed else 0, groups=groups, dilation=dilation,
                           output_size=output_size, padding_mode=padding_mode, plain=plain,
                           bias_shape=None if bias_arr is None else bias_arr.shape)
    _, compute = compute_dtypes(x_dtype or assumed, w_dtype or assumed, None if bias_arr is None else bias_arr.dtype)
    problem = Problem(layout.transposed, layout.x_shape, layout.w_shape, layout.spec, compute)
    choice = _choose(problem)
    trials = _TRIALS.get(problem) if _AUTOTUNE[0] else None
    measured = dict(trials.seconds) if trials is not None else {}
    return MethodChoice(choice.method, choice.reason, dict(choice.costs), dict(choice.declined), measured,
                        trials.fastest if trials is not None else None)
