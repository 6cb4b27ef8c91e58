"""Move ``transconv.nn`` models to and from PyTorch and Keras, and rewrite up-sampling layers exactly.

* :func:`from_torch` / :func:`to_torch`: ``torch.nn`` modules <-> ``transconv.nn`` layers
  (same parameter names, so ``state_dict`` keys match).  PyTorch is imported lazily.
* :func:`from_keras`: Keras 3 ``Conv{1,2,3}D`` / ``Conv{1,2,3}DTranspose`` layers (or a
  ``Sequential`` of them) with their kernels moved to PyTorch's layouts and Keras'
  ``"same"`` / ``"valid"`` padding translated to explicit ``(lo, hi)`` pairs.
* Equivalences (Shi et al. 2016; Dumoulin & Visin 2016; Odena et al. 2016), each exact to
  rounding in outputs and gradients: :func:`convtranspose_to_pixelshuffle`,
  :func:`pixelshuffle_to_convtranspose`, :func:`convtranspose_as_conv`, :func:`resize_conv`.

See ``docs/learning-interop.md``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import TransconvError
from ..ops.direct import flipped_weight
from ..spec import ConvSpec, effective_kernel, transposed_as_direct_conv
from .conv import PROBE_LENGTH, Conv, Conv1d, Conv2d, Conv3d, ConvTranspose, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .extra_layers import Crop, ZeroInsert
from .layers import LeakyReLU, PixelShuffle, PixelUnshuffle, PReLU, ReLU, Sigmoid, Tanh, Upsample
from .module import Module, Sequential

__all__ = [
    "from_torch",
    "to_torch",
    "from_keras",
    "convtranspose_to_pixelshuffle",
    "pixelshuffle_to_convtranspose",
    "convtranspose_as_conv",
    "resize_conv",
]

_CONV = {1: Conv1d, 2: Conv2d, 3: Conv3d}
_CONV_T = {1: ConvTranspose1d, 2: ConvTranspose2d, 3: ConvTranspose3d}


def _torch(op: str):
    try:
        import torch
    except ImportError:
        raise TransconvError(f"{op}: PyTorch is not installed (pip install 'transconv[torch]')") from None
    return torch


def _float_dtype(op: str, where: str, dtype: Any) -> np.dtype:
    name = str(dtype).replace("torch.", "")
    if name not in ("float32", "float64"):
        raise TransconvError(f"{op}: {where} has dtype {name}; transconv.nn layers are float32 or float64")
    return np.dtype(name)


# --------------------------------------------------------------------------------------
# PyTorch.
# --------------------------------------------------------------------------------------


def from_torch(module: Any) -> Module:
    """A ``torch.nn`` module as the equivalent ``transconv.nn`` model, parameters copied.

    Supported: ``Conv{1,2,3}d`` and ``ConvTranspose{1,2,3}d`` (every option: padding ints or
    ``"same"``/``"valid"``, ``padding_mode``, ``groups``, ``dilation``, ``output_padding``,
    ``bias=False``), ``PixelShuffle``, ``PixelUnshuffle``, ``Upsample`` (integer
    ``scale_factor``; ``"nearest"``, or ``"linear"``/``"bilinear"``/``"trilinear"`` with
    ``align_corners=False``), ``ReLU``, ``LeakyReLU``, ``PReLU``, ``Tanh``, ``Sigmoid`` and
    ``Sequential`` (nested).  Anything else raises :class:`~transconv.TransconvError`
    naming the module.  The layers take the dtype of the torch parameters (float32 / float64).

    Examples
    --------
    >>> import torch, numpy as np, transconv as tc
    >>> net = torch.nn.Sequential(torch.nn.ConvTranspose2d(2, 1, 4, stride=2, padding=1), torch.nn.Tanh())
    >>> model = tc.nn.from_torch(net)
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 3, 3)).astype(np.float32)
    >>> bool(np.allclose(model(x), net(torch.from_numpy(x)).detach().numpy(), atol=1e-6))
    True
    """
    torch = _torch("from_torch")
    return _from_torch(torch, module, "")


def _from_torch(torch, module: Any, where: str) -> Module:
    nn = torch.nn
    label = f"module {where or '<root>'} ({type(module).__name__})"
    if type(module) is nn.Sequential:
        return Sequential(*[_from_torch(torch, child, f"{where}.{name}" if where else name) for name, child in module.named_children()])
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)) and type(module) in (
        nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    ):
        dtype = _float_dtype("from_torch", label, module.weight.dtype)
        ndim = module.weight.ndim - 2
        common = dict(in_channels=module.in_channels, out_channels=module.out_channels, kernel_size=tuple(module.kernel_size),
                      stride=tuple(module.stride), groups=module.groups, bias=module.bias is not None,
                      dilation=tuple(module.dilation), padding_mode=module.padding_mode, dtype=dtype)
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        if module.transposed:
            layer = _CONV_T[ndim](**common, padding=padding, output_padding=tuple(module.output_padding))
        else:
            layer = _CONV[ndim](**common, padding=padding)
        state = {"weight": module.weight.detach().cpu().numpy()}
        if module.bias is not None:
            state["bias"] = module.bias.detach().cpu().numpy()
        layer.load_state_dict(state)
        return layer
    if type(module) is nn.PixelShuffle:
        return PixelShuffle(module.upscale_factor)
    if type(module) is nn.PixelUnshuffle:
        return PixelUnshuffle(module.downscale_factor)
    if isinstance(module, nn.Upsample):
        return _upsample_from_torch(module, label)
    if type(module) is nn.ReLU:
        return ReLU()
    if type(module) is nn.LeakyReLU:
        return LeakyReLU(module.negative_slope)
    if type(module) is nn.Tanh:
        return Tanh()
    if type(module) is nn.Sigmoid:
        return Sigmoid()
    if type(module) is nn.PReLU:
        dtype = _float_dtype("from_torch", label, module.weight.dtype)
        layer = PReLU(module.num_parameters, dtype=dtype)
        layer.load_state_dict({"weight": module.weight.detach().cpu().numpy()})
        return layer
    raise TransconvError(
        f"from_torch: {label} is not supported; supported are Conv1d/2d/3d, ConvTranspose1d/2d/3d, PixelShuffle, "
        f"PixelUnshuffle, Upsample, ReLU, LeakyReLU, PReLU, Tanh, Sigmoid and Sequential"
    )


def _upsample_from_torch(module: Any, label: str) -> Upsample:
    if module.size is not None or module.scale_factor is None:
        raise TransconvError(f"from_torch: {label}: only scale_factor up-sampling is supported, got size={module.size!r}")
    factors = module.scale_factor if isinstance(module.scale_factor, tuple) else (module.scale_factor,)
    if any(float(f) != int(f) or f < 1 for f in factors):
        raise TransconvError(f"from_torch: {label}: scale_factor must be integers >= 1, got {module.scale_factor!r}")
    scale: Any = [int(f) for f in factors] if isinstance(module.scale_factor, tuple) else int(factors[0])
    if module.mode == "nearest":
        return Upsample(scale, mode="nearest")
    if module.mode in ("linear", "bilinear", "trilinear") and not module.align_corners:
        return Upsample(scale, mode="bilinear")
    raise TransconvError(
        f"from_torch: {label}: mode={module.mode!r} align_corners={module.align_corners!r} is not supported "
        f"(use 'nearest', or a linear mode with align_corners=False)"
    )


def to_torch(model: Module):
    """The ``torch.nn`` module equivalent to a ``transconv.nn`` model, parameters copied.

    The inverse of :func:`from_torch`: ``Sequential`` indices, and so ``state_dict`` keys,
    are kept.  Layers PyTorch cannot express raise :class:`~transconv.TransconvError`:
    more than 3 spatial axes, asymmetric padding, ``"same"`` with stride > 1, a transposed
    layer with a padding mode other than zeros, ``Crop`` / ``ZeroInsert``.

    Examples
    --------
    >>> import torch, numpy as np, transconv as tc
    >>> model = tc.nn.Sequential(tc.nn.Conv(1, 4, 3, padding=1, seed=0), tc.nn.PixelShuffle(2))
    >>> net = tc.nn.to_torch(model)
    >>> x = np.ones((1, 1, 3, 3), np.float32)
    >>> bool(np.allclose(net(torch.from_numpy(x)).detach().numpy(), model(x), atol=1e-6))
    True
    """
    torch = _torch("to_torch")
    return _to_torch(torch, model, "")


def _to_torch(torch, model: Module, where: str):
    nn = torch.nn
    label = f"layer {where or '<root>'} ({type(model).__name__})"
    if type(model) is Sequential:
        return nn.Sequential(*[_to_torch(torch, layer, f"{where}.{i}" if where else str(i)) for i, layer in enumerate(model.layers)])
    if isinstance(model, (Conv, ConvTranspose)):
        ndim = model.ndim
        if ndim > 3:
            raise TransconvError(f"to_torch: {label} has {ndim} spatial axes; PyTorch has 1-d to 3-d convolutions")
        tdtype = getattr(torch, model.dtype.name)
        if isinstance(model, ConvTranspose):
            pads = model.spec.padding
            if model.padding_mode != "zeros":
                raise TransconvError(f"to_torch: {label} has padding_mode={model.padding_mode!r}; PyTorch's transposed convolutions only have 'zeros'")
            if any(lo != hi for lo, hi in pads):
                raise TransconvError(f"to_torch: {label} has asymmetric padding {pads}; PyTorch pads both ends equally")
            module = getattr(nn, f"ConvTranspose{ndim}d")(
                model.in_channels, model.out_channels, model.kernel_size, model.stride, tuple(lo for lo, _ in pads),
                tuple(model.output_padding), model.groups, model.bias is not None, model.dilation, "zeros", dtype=tdtype)
        else:
            if isinstance(model.padding, str):
                if model.padding == "same" and any(s > 1 for s in model.stride):
                    raise TransconvError(f"to_torch: {label} has padding='same' with stride {model.stride}; PyTorch allows 'same' only with stride 1")
                padding: Any = model.padding
            else:
                pads = model.spec.padding
                if any(lo != hi for lo, hi in pads):
                    raise TransconvError(f"to_torch: {label} has asymmetric padding {pads}; PyTorch pads both ends equally")
                padding = tuple(lo for lo, _ in pads)
            module = getattr(nn, f"Conv{ndim}d")(
                model.in_channels, model.out_channels, model.kernel_size, model.stride, padding, model.dilation,
                model.groups, model.bias is not None, model.padding_mode, dtype=tdtype)
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(model.weight))
            if model.bias is not None:
                module.bias.copy_(torch.from_numpy(model.bias))
        return module
    if type(model) is PixelShuffle:
        return nn.PixelShuffle(model.upscale_factor)
    if type(model) is PixelUnshuffle:
        return nn.PixelUnshuffle(model.downscale_factor)
    if type(model) is Upsample:
        scale = tuple(float(s) for s in model.scale_factor) if isinstance(model.scale_factor, list) else float(model.scale_factor)
        if model.mode == "nearest":
            return nn.Upsample(scale_factor=scale, mode="nearest")
        # torch names the multilinear mode by the number of axes; resolved from the input at run time
        return _TorchLinearUpsample(torch, scale)
    if type(model) is ReLU:
        return nn.ReLU()
    if type(model) is LeakyReLU:
        return nn.LeakyReLU(model.negative_slope)
    if type(model) is Tanh:
        return nn.Tanh()
    if type(model) is Sigmoid:
        return nn.Sigmoid()
    if type(model) is PReLU:
        module = nn.PReLU(model.num_parameters, dtype=getattr(torch, model.dtype.name))
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(model.weight))
        return module
    raise TransconvError(
        f"to_torch: {label} has no PyTorch equivalent; supported are Conv/ConvTranspose (1-3 d), PixelShuffle, "
        f"PixelUnshuffle, Upsample, ReLU, LeakyReLU, PReLU, Tanh, Sigmoid and Sequential"
    )


_LINEAR_UPSAMPLE: dict[str, type] = {}


def _TorchLinearUpsample(torch, scale):
    """``torch.nn.Upsample(mode="bilinear")`` whose linear mode follows the input's number of spatial axes."""
    if "cls" not in _LINEAR_UPSAMPLE:

        class LinearUpsample(torch.nn.Upsample):
            def forward(self, x):
                mode = {3: "linear", 4: "bilinear", 5: "trilinear"}.get(x.dim(), self.mode)
                return torch.nn.functional.interpolate(x, scale_factor=self.scale_factor, mode=mode, align_corners=False)

        _LINEAR_UPSAMPLE["cls"] = LinearUpsample
    return _LINEAR_UPSAMPLE["cls"](scale_factor=scale, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------
# Keras.
# --------------------------------------------------------------------------------------

_KERAS_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def _keras_activation(name: Any, label: str) -> Optional[Module]:
    if name in (None, "linear"):
        return None
    if name in _KERAS_ACTIVATIONS:
        return _KERAS_ACTIVATIONS[name]()
    raise TransconvError(f"from_keras: {label}: activation {name!r} is not supported (relu, tanh, sigmoid, linear)")


def _keras_array(variable: Any) -> np.ndarray:
    """A Keras variable's value as NumPy (through the backend's tensor: ``np.array(variable)`` warns)."""
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable.value))


def from_keras(layer: Any) -> Module:
    """A Keras 3 layer (or a ``Sequential`` / plain chain ``Model`` of them) as a ``transconv.nn`` model.

    The result takes **channels-first** input ``(N, C, *spatial)`` whatever the Keras
    ``data_format`` (move NHWC data with :func:`transconv.interop.channels_first`).

    * ``Conv{1,2,3}D``: kernel ``(*k, in/groups, out)`` -> ``(out, in/groups, *k)``;
      ``"same"`` is TensorFlow's rule (odd pixel on the high side, resolved per input
      length, as :class:`~transconv.nn.Conv` ``padding="same"``), ``"valid"`` is no padding.
    * ``Conv{1,2,3}DTranspose``: kernel ``(*k, out, in)`` -> ``(in, out, *k)``
      (:func:`transconv.interop.weight_from_tensorflow`); ``padding`` / ``output_padding``
      become explicit ``(lo, hi)`` pairs and ``output_padding`` by
      :func:`transconv.interop.from_keras` (``"same"``: output = input * stride).
    * A conv's ``activation`` (relu, tanh, sigmoid) becomes a following layer;
      ``ReLU`` (plain), ``LeakyReLU``, ``Activation``, ``UpSampling{1,2,3}D`` (nearest,
      bilinear) are converted; ``InputLayer`` is skipped.  Anything else raises
      :class:`~transconv.TransconvError` naming the layer.

    Examples
    --------
    >>> import os; os.environ.setdefault("KERAS_BACKEND", "jax")  # doctest: +ELLIPSIS
    '...'
    >>> import keras, numpy as np, transconv as tc
    >>> up = keras.layers.Conv2DTranspose(3, 3, strides=2, padding="same")
    >>> x = np.random.default_rng(0).standard_normal((1, 5, 5, 2)).astype(np.float32)
    >>> y = np.asarray(up(x))
    >>> model = tc.nn.from_keras(up)
    >>> model
    ConvTranspose2d(2, 3, kernel_size=(3, 3), stride=(2, 2), padding=((0, 1), (0, 1)))  # checkerboard-prone: kernel 3 is not divisible by stride 2 on axis 0 (uneven overlap)
    >>> bool(np.allclose(tc.interop.channels_last(model(tc.interop.channels_first(x))), y, atol=1e-5))
    True
    """
    layers = _from_keras(layer, "")
    if len(layers) == 1:
        return layers[0]
    return Sequential(*layers)


def _from_keras(layer: Any, where: str) -> list[Module]:
    from .. import interop

    kind = type(layer).__name__
    label = f"layer {where or '<root>'} ({kind}{', ' + layer.name if getattr(layer, 'name', None) else ''})"
    if kind in ("Sequential", "Functional", "Model") and hasattr(layer, "layers"):
        out: list[Module] = []
        for i, child in enumerate(layer.layers):
            out += _from_keras(child, f"{where}.{i}" if where else str(i))
        return out
    if kind == "InputLayer":
        return []
    if not hasattr(layer, "get_config"):
        raise TransconvError(f"from_keras: {label} is not a Keras layer")
    cfg = layer.get_config()
    dtype_cfg = cfg.get("dtype")
    dtype_name = dtype_cfg.get("config", {}).get("name") if isinstance(dtype_cfg, dict) else dtype_cfg
    if kind.startswith("Conv") and kind[4:5] in "123" and kind[5:6] == "D":
        nd = int(kind[4])
        dtype = _float_dtype("from_keras", label, dtype_name or "float32")
        weights = [_keras_array(v) for v in layer.weights]  # kernel, then bias
        kernel = np.asarray(weights[0])
        bias = np.asarray(weights[1]) if cfg.get("use_bias", True) else None
        k, strides, dilation = tuple(cfg["kernel_size"]), tuple(cfg["strides"]), tuple(cfg["dilation_rate"])
        padding = str(cfg["padding"]).lower()
        if kind.endswith("DTranspose"):
            if padding not in ("same", "valid"):
                raise TransconvError(f"from_keras: {label}: padding {padding!r} is not supported (same, valid)")
            geometry = interop.from_keras((PROBE_LENGTH,) * nd, k, strides, padding, cfg.get("output_padding"), dilation)
            weight = interop.weight_from_tensorflow(kernel)
            conv: Module = _CONV_T[nd](weight.shape[0], weight.shape[1], k, geometry["stride"], geometry["padding"],
                                       geometry["output_padding"], 1, bias is not None, geometry["dilation"], dtype=dtype)
        elif kind == f"Conv{nd}D":
            if padding not in ("same", "valid"):
                raise TransconvError(f"from_keras: {label}: padding {padding!r} is not supported (same, valid)")
            groups = int(cfg.get("groups", 1))
            weight = np.ascontiguousarray(np.moveaxis(kernel, (-1, -2), (0, 1)))
            conv = _CONV[nd](weight.shape[1] * groups, weight.shape[0], k, strides, padding, dilation, groups, bias is not None, dtype=dtype)
        else:
            raise TransconvError(f"from_keras: {label} is not supported")
        state = {"weight": weight}
        if bias is not None:
            state["bias"] = bias
        conv.load_state_dict(state)
        activation = _keras_activation(cfg.get("activation"), label)
        return [conv] + ([activation] if activation is not None else [])
    if kind == "Activation":
        activation = _keras_activation(cfg.get("activation"), label)
        return [activation] if activation is not None else []
    if kind == "ReLU":
        if cfg.get("max_value") is not None or cfg.get("threshold", 0) != 0:
            raise TransconvError(f"from_keras: {label}: only a plain ReLU (no max_value, threshold 0) is supported")
        slope = float(cfg.get("negative_slope", 0.0))
        return [ReLU() if slope == 0 else LeakyReLU(slope)]
    if kind == "LeakyReLU":
        return [LeakyReLU(float(cfg.get("negative_slope", cfg.get("alpha", 0.3))))]
    if kind in ("UpSampling1D", "UpSampling2D", "UpSampling3D"):
        size = cfg["size"]
        size = [int(v) for v in size] if isinstance(size, (tuple, list)) else int(size)
        interpolation = cfg.get("interpolation", "nearest")
        if interpolation not in ("nearest", "bilinear"):
            raise TransconvError(f"from_keras: {label}: interpolation {interpolation!r} is not supported (nearest, bilinear)")
        return [Upsample(size, mode=interpolation)]
    raise TransconvError(
        f"from_keras: {label} is not supported; supported are Conv1D/2D/3D, Conv1D/2D/3DTranspose, ReLU, LeakyReLU, "
        f"Activation, UpSampling1D/2D/3D, InputLayer and Sequential"
    )


# --------------------------------------------------------------------------------------
# Equivalences.
# --------------------------------------------------------------------------------------


def _dense_kernel(weight: np.ndarray, dilation: tuple[int, ...]) -> np.ndarray:
    """The kernel with ``dilation - 1`` zeros between taps: the same layer at dilation 1."""
    if all(d == 1 for d in dilation):
        return weight
    k = weight.shape[2:]
    out = np.zeros(weight.shape[:2] + tuple(effective_kernel(n, d) for n, d in zip(k, dilation)), weight.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = weight
    return out


def _zeros_mode(op: str, layer: Module) -> None:
    if layer.padding_mode != "zeros":
        raise TransconvError(f"{op}: padding_mode={layer.padding_mode!r} is not expressible this way; only 'zeros' is exact")


def _transposed_spec(op: str, layer: Any) -> ConvSpec:
    """The spec of a ``ConvTranspose`` with zero padding, the layer the rewrites below accept."""
    if not isinstance(layer, ConvTranspose):
        raise TransconvError(f"{op}: layer must be a transconv.nn.ConvTranspose, got {type(layer).__name__}")
    _zeros_mode(op, layer)
    return layer.spec


def convtranspose_to_pixelshuffle(layer: ConvTranspose) -> Sequential:
    """A stride-``s`` transposed convolution as ``Conv`` (low resolution) + ``PixelShuffle(s)`` (+ ``Crop``).

    Shi et al. 2016: output phase ``phi`` (position mod ``s``) of the full transposed
    convolution is a stride-1 correlation of the input with the sub-kernel of taps
    ``phi, phi + s, ...`` (reversed); the ``s**ndim`` sub-kernels become the channels of one
    convolution with ``ceil(k_eff / s)`` taps that ``PixelShuffle`` interleaves.  The
    layer's padding crops the result: whole multiples of ``s`` are absorbed into the
    convolution's padding, the rest needs a :class:`Crop`, which is omitted when not needed
    (e.g. ``kernel = 2 * stride``, ``padding = stride / 2``... gives a crop; ``kernel = stride``,
    ``padding = 0`` does not).  Exact for every geometry with ``padding_mode="zeros"``
    and the same stride on every axis (``PixelShuffle`` has one factor); dilation is folded
    into a dense kernel.  Outputs and gradients equal the layer's to rounding.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> up = tc.nn.ConvTranspose(2, 3, 4, stride=2, padding=1, seed=0, dtype=np.float64)
    >>> model = tc.nn.convtranspose_to_pixelshuffle(up)
    >>> [type(m).__name__ for m in model]
    ['Conv', 'PixelShuffle', 'Crop']
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 5, 5))
    >>> bool(np.allclose(model(x), up(x), atol=1e-12))
    True
    """
    op = "convtranspose_to_pixelshuffle"
    spec = _transposed_spec(op, layer)
    s = spec.stride[0]
    if any(v != s for v in spec.stride):
        raise TransconvError(f"{op}: PixelShuffle has one factor for all axes; stride {spec.stride} differs between axes")
    nd = spec.ndim
    w = _dense_kernel(layer.weight, spec.dilation)
    k = w.shape[2:]
    taps = tuple(-(-kk // s) for kk in k)  # M = ceil(k_eff / s) taps per phase
    g = layer.groups
    c_in, c_out = layer.in_channels, layer.out_channels
    cin_g, cout_g = c_in // g, c_out // g
    # sub-kernels: W[c * s^d + phase, i, j] = w[i, c, phase + (M - 1 - j) * s] (0 past the kernel)
    padded = np.zeros(w.shape[:2] + tuple(m * s for m in taps), w.dtype)
    padded[(slice(None), slice(None)) + tuple(slice(0, kk) for kk in k)] = w
    sub = padded.reshape(w.shape[:2] + tuple(a for m in taps for a in (m, s)))  # (Cin, Cout/g, M1, s, M2, s, ...)
    sub = np.flip(sub, axis=tuple(2 + 2 * a for a in range(nd)))  # j = M - 1 - m
    order = (1,) + tuple(3 + 2 * a for a in range(nd)) + (0,) + tuple(2 + 2 * a for a in range(nd))
    sub = sub.transpose(order)  # (Cout/g, s, ..., Cin, M1, M2, ...)
    sub = sub.reshape((cout_g * s**nd, c_in) + taps)
    weight = np.zeros((c_out * s**nd, cin_g) + taps, w.dtype)
    block = cout_g * s**nd
    for j in range(g):
        weight[j * block:(j + 1) * block] = sub[:, j * cin_g:(j + 1) * cin_g]
    conv_pads, crops = [], []
    for (p_lo, p_hi), kk, m, a in zip(spec.padding, k, taps, spec.output_padding):
        start = p_lo  # in the full output; low-resolution row q covers [q s, (q + 1) s)
        absorbed = min(start // s, m - 1)
        lo = m - 1 - absorbed
        end_minus_l_s = kk - s - p_hi + a  # end - L s, with end = (L - 1) s + k - p_hi + a
        hi_steps = -(-end_minus_l_s // s)  # ceil(end / s) - L
        hi = max(hi_steps, 0)
        crop_lo = start - absorbed * s
        crop_hi = (hi - hi_steps) * s + (hi_steps * s - end_minus_l_s)
        conv_pads.append((lo, hi))
        crops.append([crop_lo, crop_hi])
    conv = Conv(c_in, c_out * s**nd, taps, 1, conv_pads, 1, g, layer.bias is not None, dtype=layer.dtype)
    state = {"weight": weight}
    if layer.bias is not None:
        state["bias"] = np.repeat(layer.bias, s**nd)
    conv.load_state_dict(state)
    layers: list[Module] = [conv, PixelShuffle(s)]
    if any(v for p in crops for v in p):
        layers.append(Crop(crops))
    return Sequential(*layers)


def pixelshuffle_to_convtranspose(conv: Conv, shuffle: PixelShuffle) -> ConvTranspose:
    """``Conv`` (stride 1) followed by ``PixelShuffle(r)`` as one stride-``r`` ``ConvTranspose``.

    The reverse of :func:`convtranspose_to_pixelshuffle`: output phase ``phi`` of the
    shuffle is channel ``c * r**ndim + phi``, so tap ``phi + r * (K - 1 - j)`` of the
    transposed kernel (size ``r * K``) is tap ``j`` of that channel.  Exact when the
    convolution has stride 1, ``padding_mode="zeros"``, at most ``K - 1`` padding per side
    (in taps of the dense kernel), groups dividing its output channels per shuffle block,
    and a bias equal across each channel's ``r**ndim`` phases.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> conv = tc.nn.Conv(2, 4 * 3, 3, padding=1, seed=0, dtype=np.float64)
    >>> conv.bias[...] = np.repeat(conv.bias[::4], 4)
    >>> up = tc.nn.pixelshuffle_to_convtranspose(conv, tc.nn.PixelShuffle(2))
    >>> up
    ConvTranspose(2, 3, kernel_size=(6, 6), stride=(2, 2), padding=(2, 2))
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    >>> bool(np.allclose(up(x), tc.nn.PixelShuffle(2)(conv(x)), atol=1e-12))
    True
    """
    op = "pixelshuffle_to_convtranspose"
    if not isinstance(conv, Conv):
        raise TransconvError(f"{op}: conv must be a transconv.nn.Conv, got {type(conv).__name__}")
    if not isinstance(shuffle, PixelShuffle):
        raise TransconvError(f"{op}: shuffle must be a transconv.nn.PixelShuffle, got {type(shuffle).__name__}")
    _zeros_mode(op, conv)
    spec = conv.spec
    if any(v != 1 for v in spec.stride):
        raise TransconvError(f"{op}: the convolution must have stride 1, got {spec.stride}")
    r, nd = shuffle.upscale_factor, spec.ndim
    phases = r**nd
    if conv.out_channels % phases:
        raise TransconvError(f"{op}: conv.out_channels ({conv.out_channels}) must be divisible by r**ndim = {phases}")
    c_out = conv.out_channels // phases
    g = conv.groups
    if c_out % g:
        raise TransconvError(f"{op}: groups ({g}) must divide the shuffled channels ({c_out}) so each output channel stays in one group")
    w = _dense_kernel(conv.weight, spec.dilation)
    taps = w.shape[2:]
    for a, ((lo, hi), m) in enumerate(zip(spec.padding, taps)):
        if lo > m - 1 or hi > m - 1:
            raise TransconvError(f"{op}: padding {(lo, hi)} on axis {a} exceeds kernel - 1 = {m - 1}; the transposed convolution cannot extend its output there")
    bias = None
    if conv.bias is not None:
        per_phase = conv.bias.reshape(c_out, phases)
        if not np.all(per_phase == per_phase[:, :1]):
            raise TransconvError(f"{op}: conv.bias differs between the {phases} phases of a shuffled channel; a transposed convolution has one bias per channel")
        bias = per_phase[:, 0].copy()
    cin_g, cout_g = conv.in_channels // g, c_out // g
    # w[(Cout, phases), Cin/g, M...] -> transposed (Cin, Cout/g, r M ...)
    sub = w.reshape((c_out,) + (r,) * nd + (cin_g,) + taps)
    sub = np.flip(sub, axis=tuple(2 + nd + a for a in range(nd)))
    order = (1 + nd, 0) + tuple(a for i in range(nd) for a in (2 + nd + i, 1 + i))
    sub = sub.transpose(order).reshape((cin_g, c_out) + tuple(m * r for m in taps))
    weight = np.zeros((conv.in_channels, cout_g) + sub.shape[2:], w.dtype)
    for j in range(g):
        weight[j * cin_g:(j + 1) * cin_g] = sub[:, j * cout_g:(j + 1) * cout_g]
    padding = [(r * (m - 1 - lo), r * (m - 1 - hi)) for (lo, hi), m in zip(spec.padding, taps)]
    layer = ConvTranspose(conv.in_channels, c_out, weight.shape[2:], r, padding, 0, g, bias is not None, dtype=conv.dtype)
    state = {"weight": weight}
    if bias is not None:
        state["bias"] = bias
    layer.load_state_dict(state)
    return layer


def convtranspose_as_conv(layer: ConvTranspose) -> Sequential:
    """A transposed convolution as ``ZeroInsert`` + a stride-1 ``Conv`` with the flipped, channel-swapped kernel.

    Dumoulin & Visin 2016, section 4: insert ``stride - 1`` zeros between input samples,
    pad each end by ``k_eff - 1 - padding`` (plus ``output_padding`` at the end; a negative
    amount crops), and correlate with the kernel flipped on every spatial axis and with
    in/out channels swapped per group.  Exact for ``padding_mode="zeros"``.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> up = tc.nn.ConvTranspose(2, 3, 3, stride=2, padding=1, output_padding=1, seed=0, dtype=np.float64)
    >>> model = tc.nn.convtranspose_as_conv(up)
    >>> model[0]
    ZeroInsert(stride=[2, 2], padding=[[1, 2], [1, 2]])
    >>> x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    >>> bool(np.allclose(model(x), up(x), atol=1e-12))
    True
    """
    op = "convtranspose_as_conv"
    spec = _transposed_spec(op, layer)
    pads = [list(pair) for pair in transposed_as_direct_conv(spec).padding]
    conv = Conv(layer.in_channels, layer.out_channels, spec.kernel_size, 1, 0, spec.dilation, layer.groups,
                layer.bias is not None, dtype=layer.dtype)
    state = {"weight": flipped_weight(layer.weight, layer.groups)}
    if layer.bias is not None:
        state["bias"] = layer.bias
    conv.load_state_dict(state)
    return Sequential(ZeroInsert(list(spec.stride), pads), conv)


def resize_conv(
    in_channels: int,
    out_channels: int,
    scale: Any = 2,
    kernel_size: Any = 3,
    mode: str = "nearest",
    *,
    padding_mode: str = "zeros",
    bias: bool = True,
    init: str = "torch",
    seed: Optional[int] = None,
    dtype: Any = np.float32,
) -> Sequential:
    """Resize-convolution (Odena et al. 2016): ``Upsample(scale, mode)`` then a stride-1 ``"same"`` ``Conv``.

    The checkerboard-free alternative to a transposed convolution: every output pixel sees
    the same number of kernel taps, so no uneven-overlap pattern can appear, at initialisation
    or after training.  ``kernel_size`` as an int means 2-d, a tuple fixes the axes.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> model = tc.nn.resize_conv(3, 8, scale=2, kernel_size=3, seed=0)
    >>> model(np.zeros((1, 3, 5, 5), np.float32)).shape
    (1, 8, 10, 10)
    """
    return Sequential(
        Upsample(scale, mode=mode),
        Conv(in_channels, out_channels, kernel_size, 1, "same", 1, 1, bias, padding_mode, init=init, seed=seed, dtype=dtype),
    )
