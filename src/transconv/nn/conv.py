"""Convolution and transposed-convolution layers, each backward written beside its forward.

A convolution ``y = C x`` (``C`` the sparse matrix of the weight) has gradients::

    dL/dx = C^T g     = conv_transpose(g, w)    (same spec, output_size = x's shape)
    dL/dW[o, i, t]    = sum_{n,p} g[n,o,p] xpad[n,i,p*s+t*d]   (conv_weight_grad)
    dL/db[o]          = sum_{n,p} g[n,o,p]

and a transposed convolution ``y = C^T x`` the mirror image: ``dL/dx = C g = conv(g, w)``
and the weight gradient with the roles of ``x`` and ``g`` swapped.  Every padding mode
is exact because ``conv_transpose`` *is* the adjoint of ``conv`` with that mode.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import TransconvError
from ..ops.dispatch import run_spec
from ..ops.weight_grad import conv_weight_grad
from ..spec import ConvSpec, checked_int, conv_spec, conv_transpose_spec, validate_call
from . import init as _init
from .module import Module, layer_dtype, layer_input, register_layer

__all__ = ["Conv", "ConvTranspose", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

PROBE_LENGTH = 10**6  # a spatial length every geometry fits: lets the spec validators check arguments before any input


def _ndim_of(kernel_size: Any, fixed: Optional[int], name: str) -> int:
    if isinstance(kernel_size, (str, bytes)):
        raise TransconvError(f"{name}: kernel_size must be an int or a sequence of ints, got {kernel_size!r}")
    if isinstance(kernel_size, numbers.Integral) or not hasattr(kernel_size, "__len__"):
        return fixed or 2
    n = len(kernel_size)
    if fixed is not None and n != fixed:
        raise TransconvError(f"{name}: kernel_size must have {fixed} entries for a {fixed}-d layer, got {tuple(kernel_size)!r}")
    if n < 1:
        raise TransconvError(f"{name}: kernel_size must have at least one entry, got {tuple(kernel_size)!r}")
    return n


def _channels(name: str, in_channels: Any, out_channels: Any, groups: Any) -> tuple[int, int, int]:
    c_in, c_out, g = (checked_int(name, label, v, 1) for label, v in
                      (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)))
    for label, c in (("in_channels", c_in), ("out_channels", c_out)):
        if c % g:
            raise TransconvError(f"{name}: {label} ({c}) must be divisible by groups ({g})")
    return c_in, c_out, g


def _json_padding(spec_padding: tuple[tuple[int, int], ...], raw: Any) -> Any:
    if isinstance(raw, str):
        return raw.lower()
    if all(lo == hi for lo, hi in spec_padding):
        return [lo for lo, _ in spec_padding]
    return [[lo, hi] for lo, hi in spec_padding]


def _batched(name: str, x: Any, channels: int, ndim: int, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """Validate a layer input ``(N, C, *spatial)`` or ``(C, *spatial)``; return it batched, in the layer dtype."""
    array = layer_input(name, x)
    if array.ndim not in (ndim + 1, ndim + 2):
        raise TransconvError(
            f"{name}: input must have shape (N, C, *spatial) or (C, *spatial) with {ndim} spatial axes, got {array.shape}"
        )
    unbatched = array.ndim == ndim + 1
    if unbatched:
        array = array[None]
    if array.shape[1] != channels:
        raise TransconvError(f"{name}: input has {array.shape[1]} channels, this layer takes in_channels={channels} (shape {array.shape})")
    return array.astype(dtype, copy=False), unbatched


class _ConvBase(Module):
    """What ``Conv`` and ``ConvTranspose`` share: parameters, initialisation, repr, config."""

    transposed = False
    _fixed_ndim: Optional[int] = None

    def _setup(self, in_channels, out_channels, kernel_size, bias, init, seed, dtype, icnr_scale) -> None:
        name = type(self).__name__
        self.dtype = layer_dtype(name, dtype)
        self.in_channels, self.out_channels, self.groups = _channels(name, in_channels, out_channels, self.groups)
        self.ndim = len(self.kernel_size)
        if init not in _init.INITS:
            raise TransconvError(f"{name}: init must be one of {', '.join(map(repr, _init.INITS))}, got {init!r}")
        if seed is not None:
            seed = checked_int(name, "seed", seed, 0)
        self.init, self.seed, self.icnr_scale = init, seed, icnr_scale
        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        rng = np.random.default_rng(seed)
        b = None
        if init == "torch":
            w, b = _init.torch_uniform(rng, shape, self.out_channels if bias else 0, self.dtype)
        elif init == "kaiming":
            w = _init.kaiming_normal(rng, shape, self.dtype)
        elif init == "bilinear":
            if not self.transposed:
                raise TransconvError(f"{name}: init='bilinear' is for transposed layers (ConvTranspose); use 'icnr' for conv + PixelShuffle")
            w = _init.bilinear_weight(name, self.in_channels, self.out_channels, self.groups, self.kernel_size, self.dtype)
        else:
            if self.transposed:
                raise TransconvError(f"{name}: init='icnr' is for a Conv feeding PixelShuffle, not for transposed layers")
            w = _init.icnr_weight(name, rng, shape, checked_int(name, "icnr_scale", icnr_scale, 1), self.dtype)
        self._set_param("weight", w)
        if bias:
            self._set_param("bias", np.zeros(self.out_channels, self.dtype) if b is None else b.astype(self.dtype))
        else:
            self.params["bias"] = None

    @property
    def weight(self) -> np.ndarray:
        return self.params["weight"]

    @weight.setter
    def weight(self, value: np.ndarray) -> None:
        self.load_state_dict({**self.state_dict(), "weight": value})

    @property
    def bias(self) -> Optional[np.ndarray]:
        return self.params["bias"]

    @bias.setter
    def bias(self, value: np.ndarray) -> None:
        if self.params["bias"] is None:
            raise TransconvError(f"{type(self).__name__}: this layer was built with bias=False")
        self.load_state_dict({**self.state_dict(), "bias": value})

    def _bias_grad(self, g: np.ndarray) -> None:
        if self.params["bias"] is not None:
            self._accumulate("bias", g.sum(axis=(0,) + tuple(range(2, g.ndim))))

    def _repr_args(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        cfg = self.config()
        args = [str(self.in_channels), str(self.out_channels), f"kernel_size={tuple(self.kernel_size)}", f"stride={tuple(self.stride)}"]
        defaults = {"padding": [0] * self.ndim, "output_padding": [0] * self.ndim, "dilation": [1] * self.ndim,
                    "groups": 1, "bias": True, "padding_mode": "zeros"}
        for key in ("padding", "output_padding", "dilation", "groups", "bias", "padding_mode"):
            if key in cfg and cfg[key] != defaults[key]:
                value = cfg[key]
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value) if isinstance(value, list) else value
                args.append(f"{key}={value!r}")
        text = f"{type(self).__name__}({', '.join(args)})"
        if self.transposed:
            uneven = [a for a, (k, s) in enumerate(zip(self.kernel_size, self.stride)) if k % s]
            if uneven:
                a = uneven[0]
                text += (f"  # checkerboard-prone: kernel {self.kernel_size[a]} is not divisible by stride "
                         f"{self.stride[a]} on axis {a} (uneven overlap)")
        return text


@register_layer
class Conv(_ConvBase):
    """N-d convolution layer, as ``torch.nn.Conv{1,2,3}d`` (NumPy arrays, PyTorch layouts).

    ``kernel_size`` as a tuple fixes the number of spatial axes; a plain int means 2-d
    (use ``Conv1d`` / ``Conv3d`` otherwise).  ``weight`` is ``(C_out, C_in/groups, *k)``.
    ``padding`` takes everything :func:`transconv.conv` takes (ints, per-axis, ``(lo, hi)``
    pairs, ``"same"``, ``"valid"``) and ``padding_mode`` every mode.  ``init="icnr"``
    prepares the layer to feed ``PixelShuffle(icnr_scale)``.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> layer = tc.nn.Conv(1, 2, 3, padding=1, seed=0)
    >>> layer
    Conv(1, 2, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
    >>> x = np.ones((1, 1, 4, 4), np.float32)
    >>> y = layer(x)
    >>> layer.backward(np.ones_like(y)).shape, layer.grads["weight"].shape
    ((1, 1, 4, 4), (2, 1, 3, 3))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        *,
        init: str = "torch",
        seed: Optional[int] = None,
        dtype: Any = np.float32,
        icnr_scale: int = 2,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        ndim = _ndim_of(kernel_size, self._fixed_ndim, name)
        probe = conv_spec(name, (PROBE_LENGTH,) * ndim, kernel_size, stride, padding, dilation, groups, padding_mode)
        self.kernel_size, self.stride, self.dilation = probe.kernel_size, probe.stride, probe.dilation
        self.groups, self.padding_mode = probe.groups, probe.padding_mode
        self._padding_arg = padding.lower() if isinstance(padding, str) else probe.padding
        self.padding = _json_padding(probe.padding, padding)
        # "same" with a stride > 1 pads according to the input length; everything else is fixed now
        self._spec: Optional[ConvSpec] = None if self._padding_arg == "same" and any(s > 1 for s in self.stride) else probe
        self._setup(in_channels, out_channels, self.kernel_size, bias, init, seed, dtype, icnr_scale)

    @property
    def spec(self) -> ConvSpec:
        """The layer's geometry; for ``padding="same"`` with stride > 1 use :meth:`spec_for`."""
        if self._spec is None:
            raise TransconvError(f"{type(self).__name__}: padding='same' with stride {self.stride} depends on the input; use spec_for(input_shape)")
        return self._spec

    def spec_for(self, input_shape: Sequence[int]) -> ConvSpec:
        """The geometry for a spatial input shape (resolves ``"same"`` padding)."""
        if self._spec is not None:
            return self._spec
        return conv_spec(type(self).__name__, tuple(input_shape), self.kernel_size, self.stride, "same", self.dilation, self.groups, self.padding_mode)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape for a spatial input shape."""
        return self.spec_for(input_shape).conv_output_shape(tuple(input_shape))

    def forward(self, x: np.ndarray) -> np.ndarray:
        name = type(self).__name__
        x, unbatched = _batched(name, x, self.in_channels, self.ndim, self.dtype)
        # validated once, on this input, under the layer's name (the kernel must fit, "same" resolves here)
        spec = validate_call(name, False, x.shape, self.weight.shape, stride=self.stride, padding=self._padding_arg,
                             dilation=self.dilation, groups=self.groups, padding_mode=self.padding_mode, plain=False).spec
        y = run_spec(name, False, spec, x, self.weight, self.bias)
        self._cache = (x, spec, unbatched, y.shape)
        return y[0] if unbatched else y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x, spec, unbatched, y_shape = self._cached()
        g = self._grad_out(grad_out, y_shape[1:] if unbatched else y_shape)
        if unbatched:
            g = g[None]
        grad_x = run_spec(type(self).__name__, True, spec.adjoint_for(x.shape[2:]), g, self.weight)
        self._accumulate("weight", conv_weight_grad(x, g, self.weight.shape, spec.stride, spec.padding, spec.dilation,
                                                    spec.groups, padding_mode=spec.padding_mode))
        self._bias_grad(g)
        return grad_x[0] if unbatched else grad_x

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
            "stride": list(self.stride), "padding": self.padding, "dilation": list(self.dilation), "groups": self.groups,
            "bias": self.bias is not None, "padding_mode": self.padding_mode, "dtype": self.dtype.name,
        }


@register_layer
class ConvTranspose(_ConvBase):
    """N-d transposed convolution layer, as ``torch.nn.ConvTranspose{1,2,3}d``.

    ``weight`` is ``(C_in, C_out/groups, *k)``.  Everything :func:`transconv.conv_transpose`
    takes, including ``padding="same"`` (output = input * stride) and every ``padding_mode``
    (the adjoint of the convolution with that mode; PyTorch only has ``"zeros"``).

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> up = tc.nn.ConvTranspose(1, 1, 3, stride=2, seed=0)
    >>> up
    ConvTranspose(1, 1, kernel_size=(3, 3), stride=(2, 2))  # checkerboard-prone: kernel 3 is not divisible by stride 2 on axis 0 (uneven overlap)
    >>> up(np.ones((1, 1, 4, 4), np.float32)).shape
    (1, 1, 9, 9)
    >>> up.overlap_diagnosis((4, 4)).uniform
    False
    """

    transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        *,
        init: str = "torch",
        seed: Optional[int] = None,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        ndim = _ndim_of(kernel_size, self._fixed_ndim, name)
        spec = conv_transpose_spec(name, (PROBE_LENGTH,) * ndim, kernel_size, stride, padding, output_padding, groups, dilation, padding_mode)
        self._spec = spec
        self.kernel_size, self.stride, self.dilation = spec.kernel_size, spec.stride, spec.dilation
        self.output_padding, self.groups, self.padding_mode = spec.output_padding, spec.groups, spec.padding_mode
        # "same" is input-independent here: stored resolved, with the output_padding it implies
        self.padding = _json_padding(spec.padding, None)
        self._setup(in_channels, out_channels, self.kernel_size, bias, init, seed, dtype, None)

    @property
    def spec(self) -> ConvSpec:
        """The layer's geometry (the convolution it transposes, with ``output_padding``)."""
        return self._spec

    def spec_for(self, input_shape: Sequence[int]) -> ConvSpec:
        return self._spec

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Spatial output shape for a spatial input shape."""
        return self._spec.transpose_output_shape(tuple(input_shape))

    def forward(self, x: np.ndarray) -> np.ndarray:
        name = type(self).__name__
        x, unbatched = _batched(name, x, self.in_channels, self.ndim, self.dtype)
        s = self._spec
        # validated on this input under the layer's name (cropping and reflect need room)
        validate_call(name, True, x.shape, self.weight.shape, stride=s.stride, padding=s.padding,
                      output_padding=s.output_padding, groups=s.groups, dilation=s.dilation, padding_mode=s.padding_mode,
                      plain=False)
        y = run_spec(name, True, s, x, self.weight, self.bias)
        self._cache = (x, unbatched, y.shape)
        return y[0] if unbatched else y

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        x, unbatched, y_shape = self._cached()
        s = self._spec
        g = self._grad_out(grad_out, y_shape[1:] if unbatched else y_shape)
        if unbatched:
            g = g[None]
        grad_x = run_spec(type(self).__name__, False, s, g, self.weight)
        # output_padding >= stride (allowed when dilation is larger) leaves conv rows no input fed
        grad_x = grad_x[(slice(None), slice(None)) + tuple(slice(0, n) for n in x.shape[2:])]
        self._accumulate("weight", conv_weight_grad(x, g, self.weight.shape, s.stride, s.padding, s.dilation, s.groups,
                                                    padding_mode=s.padding_mode, transposed=True, output_padding=s.output_padding))
        self._bias_grad(g)
        return grad_x[0] if unbatched else grad_x

    def overlap_diagnosis(self, input_shape: Sequence[int]):
        """Checkerboard diagnosis (:func:`transconv.overlap_diagnosis`) of this layer on a spatial input shape."""
        from ..overlap import overlap_diagnosis

        s = self._spec
        return overlap_diagnosis(tuple(input_shape), s.kernel_size, s.stride, s.padding, s.output_padding, s.dilation)

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
            "stride": list(self.stride), "padding": self.padding, "output_padding": list(self.output_padding),
            "groups": self.groups, "bias": self.bias is not None, "dilation": list(self.dilation),
            "padding_mode": self.padding_mode, "dtype": self.dtype.name,
        }


def _fixed(base: type, ndim: int, doc: str) -> type:
    cls = type(f"{base.__name__}{ndim}d", (base,), {"_fixed_ndim": ndim, "__doc__": doc, "__module__": __name__})
    return register_layer(cls)


Conv1d = _fixed(Conv, 1, "1-d :class:`Conv` (an int kernel_size means one spatial axis).")
Conv2d = _fixed(Conv, 2, "2-d :class:`Conv`.")
Conv3d = _fixed(Conv, 3, "3-d :class:`Conv`.")
ConvTranspose1d = _fixed(ConvTranspose, 1, "1-d :class:`ConvTranspose`.")
ConvTranspose2d = _fixed(ConvTranspose, 2, "2-d :class:`ConvTranspose`.")
ConvTranspose3d = _fixed(ConvTranspose, 3, "3-d :class:`ConvTranspose`.")
