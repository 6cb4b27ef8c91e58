"""The one error class for bad arguments."""

from __future__ import annotations

__all__ = ["TransconvError"]


class TransconvError(ValueError):
    """A bad argument to a transconv function.

    The message names the operation, the rule that was broken, the values received
    and the valid range, e.g. ``conv_transpose: output_padding (2) must be smaller
    than stride (2) or dilation (1)``. It subclasses :class:`ValueError` so code that
    already catches ``ValueError`` keeps working.
    """
