"""transconv.nn: layers that learn, with exact backward passes written beside their forwards.

NumPy arrays in and out, PyTorch layouts and parameter names.  See ``docs/learning.md``.

>>> import numpy as np, transconv as tc
>>> model = tc.nn.Sequential(tc.nn.Conv(1, 8, 3, padding=1, seed=0), tc.nn.ReLU(), tc.nn.ConvTranspose(8, 1, 4, stride=2, padding=1, seed=1))
>>> model(np.zeros((1, 1, 6, 6), np.float32)).shape
(1, 1, 12, 12)
"""

from ..ops.weight_grad import conv_weight_grad
from .conv import Conv, Conv1d, Conv2d, Conv3d, ConvTranspose, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .convert import (
    convtranspose_as_conv, convtranspose_to_pixelshuffle, from_keras, from_torch, pixelshuffle_to_convtranspose,
    resize_conv, to_torch,
)
from .extra_layers import Crop, ZeroInsert
from .init import INITS, bilinear_kernel
from .io import load, save
from .layers import LeakyReLU, PixelShuffle, PixelUnshuffle, PReLU, ReLU, Sigmoid, Tanh, Upsample
from .losses import charbonnier_loss, l1_loss, mse_loss
from .module import LAYERS, Module, Sequential, register_layer
from .onnx_export import to_onnx
from .optim import SGD, Adam

__all__ = [
    "Module", "Sequential", "LAYERS", "register_layer",
    "Conv", "ConvTranspose", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "ReLU", "LeakyReLU", "PReLU", "Tanh", "Sigmoid", "PixelShuffle", "PixelUnshuffle", "Upsample", "Crop", "ZeroInsert",
    "mse_loss", "l1_loss", "charbonnier_loss", "SGD", "Adam", "INITS", "bilinear_kernel", "conv_weight_grad",
    "save", "load", "from_torch", "to_torch", "from_keras", "to_onnx",
    "convtranspose_to_pixelshuffle", "pixelshuffle_to_convtranspose", "convtranspose_as_conv", "resize_conv",
]
