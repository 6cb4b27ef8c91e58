"""transconv: transposed convolution made exact, visible and fast.

A convolution is a sparse matrix C; a transposed convolution is C^T.  This package
computes both (``conv``, ``conv_transpose``), builds both matrices, and explains them.
"""

from . import interop
from .errors import TransconvError
from .limits import check_allocation, get_memory_limit, set_memory_limit
from .ops import METHODS, MethodChoice, choose_method, conv, conv_transpose, set_autotune
from .ops.weight_grad import conv_weight_grad
from .matrix import (
    DeconvolveInfo,
    conv_matrix,
    conv_operator,
    conv_transpose_matrix,
    deconvolve,
    format_matrix,
    operator_norm,
    singular_values,
)
from .overlap import overlap_diagnosis, overlap_map
from .spec import (
    ConvSpec,
    conv_output_length,
    conv_transpose_output_length,
    dumoulin,
    solve_geometry,
)

# the learned up-sampler (importing these binds the functions over the same-named submodules)
from .upsample import upsample  # noqa: E402
from .train import train  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str):
    """``tc.nn`` is imported on first use (keeps ``import transconv`` fast)."""
    if name == "nn":
        import importlib

        return importlib.import_module(".nn", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "interop",
    "TransconvError",
    "set_memory_limit",
    "get_memory_limit",
    "check_allocation",
    "ConvSpec",
    "conv",
    "conv_transpose",
    "conv_weight_grad",
    "nn",
    "choose_method",
    "MethodChoice",
    "set_autotune",
    "METHODS",
    "conv_output_length",
    "conv_transpose_output_length",
    "dumoulin",
    "solve_geometry",
    "overlap_map",
    "overlap_diagnosis",
    "conv_matrix",
    "conv_transpose_matrix",
    "conv_operator",
    "deconvolve",
    "DeconvolveInfo",
    "singular_values",
    "operator_norm",
    "format_matrix",
]
__all__ += ["upsample", "train"]
