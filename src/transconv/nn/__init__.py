"""transconv.nn: layers that learn, with exact backward passes written beside their forwards.

NumPy arrays in and out, PyTorch layouts and parameter names.  See ``docs/learning.md``.

>>> import numpy as np, transconv as tc
>>> model = tc.nn.Sequential(tc.nn.Conv(1, 8, 3, padding=1, seed=0), tc.nn.ReLU(), tc.nn.ConvTranspose(8, 1, 4, stride=2, padding=1, seed=1))
>>> model(np.zeros((1, 1, 6, 6), np.float32)).shape
(1, 1, 12, 12)
"""

from ..ops.weight_grad import conv_weight_grad
from .conv import Conv, Conv1d, Conv2d, Conv3d, ConvTranspose, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .init import INITS, bilinear_kernel
from .layers import LeakyReLU, PixelShuffle, PixelUnshuffle, PReLU, ReLU, Sigmoid, Tanh, Upsample
from .losses import charbonnier_loss, l1_loss, mse_loss
from .module import LAYERS, Module, Sequential, register_layer
from .optim import SGD, Adam

__all__ = [
    "Module", "Sequential", "LAYERS", "register_layer",
    "Conv", "ConvTranspose", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "ReLU", "LeakyReLU", "PReLU", "Tanh", "Sigmoid", "PixelShuffle", "PixelUnshuffle", "Upsample",
    "mse_loss", "l1_loss", "charbonnier_loss", "SGD", "Adam", "INITS", "bilinear_kernel", "conv_weight_grad",
]

_IO_NAMES = {"save": "io", "load": "io", "from_torch": "convert", "to_torch": "convert", "to_onnx": "convert", "from_keras": "convert"}


def __getattr__(name: str):
    """save/load and the converters live in ``nn/io.py`` / ``nn/convert.py``; found in either, imported on first use."""
    if name in _IO_NAMES:
        import importlib

        for module_name in (_IO_NAMES[name], "io", "convert"):
            try:
                module = importlib.import_module(f"{__name__}.{module_name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{module_name}":
                    raise
                continue
            if hasattr(module, name):
                return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# ---- save/load, converters and equivalences (branch nnio: nn/io.py, nn/convert.py, nn/extra_layers.py) ----
from .extra_layers import Crop, ZeroInsert  # noqa: E402  (registers both in LAYERS)
from .io import load, save  # noqa: E402
from .convert import (  # noqa: E402
    convtranspose_as_conv, convtranspose_to_pixelshuffle, from_keras, from_torch, pixelshuffle_to_convtranspose, resize_conv, to_torch,
)

__all__ += ["Crop", "ZeroInsert", "save", "load", "from_torch", "to_torch", "from_keras",
            "convtranspose_to_pixelshuffle", "pixelshuffle_to_convtranspose", "convtranspose_as_conv", "resize_conv"]
from .onnx_export import to_onnx  # noqa: E402

__all__ += ["to_onnx"]
