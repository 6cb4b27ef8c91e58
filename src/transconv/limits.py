"""Memory guard: every large allocation is estimated first and refused past a limit.

The limit is, in order: the value given to :func:`set_memory_limit`, the environment
variable ``TRANSCONV_MEMORY_LIMIT`` (bytes, or with a ``K``/``M``/``G``/``T`` suffix), or
:data:`SAFETY_FACTOR` times the memory the system has available (``MemAvailable`` from
``/proc/meminfo``, else psutil, else a fixed :data:`FALLBACK_BYTES`).  A call whose
estimate exceeds it raises :class:`~transconv.TransconvError` with both figures instead of
a ``MemoryError`` halfway through, or the machine swapping.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, Optional

from .errors import TransconvError

__all__ = ["set_memory_limit", "get_memory_limit", "check_allocation", "ENV_VAR"]

ENV_VAR = "TRANSCONV_MEMORY_LIMIT"
SAFETY_FACTOR = 0.8  # of the available memory: results, copies and the interpreter need the rest
FALLBACK_BYTES = 4 * 2**30  # when the available memory cannot be read
_UNCHECKED_BELOW = 32 * 2**20  # allocations this small pass without reading the system's figure
_AVAILABLE_TTL = 1.0  # seconds a reading of the available memory is reused

_user_limit: Optional[int] = None
try:  # CPython's os.environ keeps its entries in a dict: `ENV_VAR in os.environ` raises and catches a KeyError
    _ENVIRON, _ENV_KEY = os.environ._data, os.environ.encodekey(ENV_VAR)  # type: ignore[attr-defined]
except AttributeError:  # another implementation: the public mapping
    _ENVIRON, _ENV_KEY = os.environ, ENV_VAR
_available: list = [0.0, 0]  # (monotonic time of reading, bytes)
_SUFFIX = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def _bytes(what: str, value: Any) -> int:
    from .spec import describe_value, integer_or_none

    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", value.upper())
        if not match:
            raise TransconvError(f"{what} must be a number of bytes, optionally with K, M, G or T, got {value!r}")
        number = int(float(match.group(1)) * _SUFFIX[match.group(2)])
    else:
        number = integer_or_none(value)
        if number is None:
            raise TransconvError(f"{what} must be an integer number of bytes or None, got {describe_value(value)}")
    if number < 1:
        raise TransconvError(f"{what} must be at least 1 byte, got {value!r}")
    return number


def set_memory_limit(nbytes: Any) -> None:
    """Set the largest allocation a transconv call may make, in bytes; ``None`` restores the default.

    A string with a suffix (``"512M"``, ``"2G"``) is read as in ``TRANSCONV_MEMORY_LIMIT``.

    >>> import transconv as tc
    >>> tc.set_memory_limit("1G"); tc.get_memory_limit()
    1073741824
    >>> tc.set_memory_limit(None)
    """
    global _user_limit
    _user_limit = None if nbytes is None else _bytes("set_memory_limit: nbytes", nbytes)


def _available_bytes() -> int:
    now = time.monotonic()
    if now - _available[0] < _AVAILABLE_TTL:
        return _available[1]
    found = 0
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if not found:
        try:
            import psutil

            found = int(psutil.virtual_memory().available)
        except Exception:  # psutil missing or unsupported here: the fixed fallback below
            found = 0
    _available[:] = [now, found or int(FALLBACK_BYTES / SAFETY_FACTOR)]
    return _available[1]


def get_memory_limit() -> int:
    """The allocation limit in bytes now in force (see the module docstring for its sources).

    >>> import transconv as tc
    >>> tc.get_memory_limit() > 0
    True
    """
    if _user_limit is not None:
        return _user_limit
    env = os.environ.get(ENV_VAR)
    if env:
        return _bytes(f"the environment variable {ENV_VAR}", env)
    return int(_available_bytes() * SAFETY_FACTOR)


def _size(nbytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} bytes"


def check_allocation(op: str, what: str, nbytes: float) -> None:
    """Raise :class:`TransconvError` if allocating ``nbytes`` for ``what`` would pass the limit.

    >>> check_allocation("conv", "the output", 1024)
    >>> check_allocation("conv", "the output", 2**80)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    transconv.errors.TransconvError: conv: the output would take 1.1e+12 TiB, more than the memory limit ...
    """
    if nbytes < _UNCHECKED_BELOW and (_user_limit is None or nbytes <= _user_limit) and _ENV_KEY not in _ENVIRON:
        return
    limit = get_memory_limit()
    if nbytes > limit:
        raise TransconvError(
            f"{op}: {what} would take {_size(nbytes)}, more than the memory limit of {_size(limit)} "
            f"(set it with transconv.set_memory_limit or {ENV_VAR})"
        )
