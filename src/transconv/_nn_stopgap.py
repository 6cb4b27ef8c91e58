"""Stop-gap layers for the up-sampler until ``transconv.nn`` lands (same contract, same names).

Only what FSRCNN needs: 2-d ``Conv`` / ``ConvTranspose`` (stride, padding, output_padding),
``PReLU``, ``Sequential``, ``mse_loss``, ``charbonnier_loss`` and ``Adam``.  State dicts use
PyTorch's names, so a model trained here loads into ``transconv.nn`` unchanged.  Delete this
module once ``transconv.nn`` is merged.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import TransconvError
from .ops import conv, conv_transpose

# "auto" picked compiled_direct for FSRCNN's 5-32 channel layers, measured 10-30x slower than gemm there
_METHOD = "gemm"


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else tuple(int(a) for a in v)


def _weight_grad(inp: np.ndarray, grad_out: np.ndarray, kernel: tuple[int, int], stride, padding) -> np.ndarray:
    """dW[o, i, a, b] = sum grad_out[n, o, p, q] * inp_pad[n, i, p*s + a, q*s + b] (im2col and one GEMM)."""
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(inp, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    n, c_out, ho, wo = grad_out.shape
    windows = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(2, 3))[:, :, : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw]
    return np.tensordot(grad_out, windows, axes=([0, 2, 3], [0, 2, 3])).astype(grad_out.dtype, copy=False)


class Module:
    params: dict
    grads: dict

    def __call__(self, x):
        return self.forward(x)

    def zero_grad(self) -> None:
        for k in self.grads:
            self.grads[k][...] = 0

    def state_dict(self) -> dict:
        return {k: v.copy() for k, v in self.params.items()}

    def parameters(self):
        yield from self.params.items()

    def load_state_dict(self, d: dict) -> None:
        for k, v in self.params.items():
            if k not in d or np.shape(d[k]) != v.shape:
                raise TransconvError(f"{type(self).__name__}.load_state_dict: key {k!r} missing or of wrong shape")
            v[...] = d[k]

    def _need(self, name):
        if getattr(self, name, None) is None:
            raise TransconvError(f"{type(self).__name__}.backward: called before forward")
        return getattr(self, name)


class _ConvBase(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, seed, dtype, wshape, fan_in):
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.in_channels, self.out_channels, self.dtype = in_channels, out_channels, np.dtype(dtype)
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's default (kaiming_uniform a=sqrt(5)) reduces to 1/sqrt(fan_in)
        self.params = {
            "weight": rng.uniform(-bound, bound, wshape + self.kernel_size).astype(dtype),
            "bias": rng.uniform(-bound, bound, (out_channels,)).astype(dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._x = None

    weight = property(lambda self: self.params["weight"])
    bias = property(lambda self: self.params["bias"])


class Conv(_ConvBase):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *, seed=None, dtype=np.float32):
        k = _pair(kernel_size)
        super().__init__(in_channels, out_channels, k, stride, padding, seed, dtype, (out_channels, in_channels), in_channels * k[0] * k[1])

    def config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding)}

    def forward(self, x):
        self._x = x
        return conv(x, self.weight, self.bias, self.stride, self.padding, method=_METHOD)

    def backward(self, g):
        x = self._need("_x")
        self.grads["bias"] += g.sum(axis=(0, 2, 3))
        self.grads["weight"] += _weight_grad(x, g, self.kernel_size, self.stride, self.padding)
        extra = tuple(xs - ((gs - 1) * s - 2 * p + k) for xs, gs, s, p, k in zip(x.shape[2:], g.shape[2:], self.stride, self.padding, self.kernel_size))
        return conv_transpose(g, self.weight, None, self.stride, self.padding, extra, method=_METHOD)


class ConvTranspose(_ConvBase):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, *, seed=None, dtype=np.float32):
        k = _pair(kernel_size)
        self.output_padding = _pair(output_padding)
        # PyTorch computes fan_in from weight.shape[1] * prod(k), i.e. out_channels for a transposed layer
        super().__init__(in_channels, out_channels, k, stride, padding, seed, dtype, (in_channels, out_channels), out_channels * k[0] * k[1])

    def config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "kernel_size": list(self.kernel_size),
                "stride": list(self.stride), "padding": list(self.padding), "output_padding": list(self.output_padding)}

    def forward(self, x):
        self._x = x
        return conv_transpose(x, self.weight, self.bias, self.stride, self.padding, self.output_padding, method=_METHOD)

    def backward(self, g):
        x = self._need("_x")
        self.grads["bias"] += g.sum(axis=(0, 2, 3))
        # the transpose is the adjoint of conv(g) -> x-grid with the same weight: roles of x and g swap
        self.grads["weight"] += _weight_grad(g, x, self.kernel_size, self.stride, self.padding)
        return conv(g, self.weight, None, self.stride, self.padding, method=_METHOD)


class PReLU(Module):
    def __init__(self, num_parameters=1, init=0.25, *, dtype=np.float32):
        self.num_parameters, self.init, self.dtype = num_parameters, init, np.dtype(dtype)
        self.params = {"weight": np.full((num_parameters,), init, dtype=dtype)}
        self.grads = {"weight": np.zeros((num_parameters,), dtype=dtype)}
        self._x = None

    def config(self) -> dict:
        return {"num_parameters": self.num_parameters, "init": self.init}

    def _slope(self, ndim):
        a = self.params["weight"]
        return a.reshape((1, -1) + (1,) * (ndim - 2)) if a.size > 1 else a[0]

    def forward(self, x):
        self._x = x
        return np.where(x > 0, x, self._slope(x.ndim) * x)

    def backward(self, g):
        x = self._need("_x")
        neg = np.minimum(x, 0) * g
        self.grads["weight"] += neg.sum(axis=(0, 2, 3)) if self.num_parameters > 1 else neg.sum()
        return np.where(x > 0, g, self._slope(x.ndim) * g)


class Sequential(Module):
    def __init__(self, *layers):
        self.layers = list(layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    @property
    def params(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    def load_state_dict(self, d):
        keys = set(self.params)
        if set(d) != keys:
            raise TransconvError(f"Sequential.load_state_dict: keys {sorted(set(d) ^ keys)} do not match the architecture")
        for name, v in self.params.items():
            if np.shape(d[name]) != v.shape:
                raise TransconvError(f"Sequential.load_state_dict: {name!r} has shape {np.shape(d[name])}, expected {v.shape}")
            v[...] = d[name]

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, g):
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return g


def mse_loss(pred, target):
    d = pred - target
    return float(np.mean(d.astype(np.float64) ** 2)), (2.0 / d.size) * d


def charbonnier_loss(pred, target, eps=1e-3):
    d = pred - target
    r = np.sqrt(d * d + eps * eps)
    return float(np.mean(r, dtype=np.float64)), (d / r) / d.size


class Adam:
    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.model, self.lr, self.betas, self.eps, self.weight_decay = model, lr, betas, eps, weight_decay
        self.step_count = 0
        self.exp_avg = {k: np.zeros_like(v) for k, v in model.params.items()}
        self.exp_avg_sq = {k: np.zeros_like(v) for k, v in model.params.items()}

    def zero_grad(self):
        self.model.zero_grad()

    def step(self):
        self.step_count += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1**self.step_count, 1 - b2**self.step_count
        grads = self.model.grads
        for k, p in self.model.params.items():
            g = grads[k]
            m, v = self.exp_avg[k], self.exp_avg_sq[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / math.sqrt(bc2) + self.eps
            p -= (self.lr / bc1) * m / denom

    def state_dict(self) -> dict:
        d = {"step": np.array(self.step_count)}
        d.update({f"exp_avg.{k}": v.copy() for k, v in self.exp_avg.items()})
        d.update({f"exp_avg_sq.{k}": v.copy() for k, v in self.exp_avg_sq.items()})
        return d

    def load_state_dict(self, d: dict) -> None:
        self.step_count = int(d["step"])
        for k in self.exp_avg:
            self.exp_avg[k][...] = d[f"exp_avg.{k}"]
            self.exp_avg_sq[k][...] = d[f"exp_avg_sq.{k}"]


LAYERS = {c.__name__: c for c in (Conv, ConvTranspose, PReLU, Sequential)}
