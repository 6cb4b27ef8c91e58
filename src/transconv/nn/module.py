"""The layer base class, ``Sequential`` and the ``LAYERS`` registry.

A :class:`Module` holds its own parameters in ``params`` (short names, PyTorch layouts)
and their gradients in ``grads`` (same keys, accumulated by ``backward`` as PyTorch
accumulates ``.grad``).  Containers name their children's parameters PyTorch's way:
``"0.weight"``, nested ``"1.0.bias"``.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from ..errors import TransconvError
from ..spec import as_numeric

__all__ = ["Module", "Sequential", "LAYERS", "register_layer", "layer_dtype", "layer_input"]

LAYERS: dict[str, type] = {}

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def register_layer(cls: type) -> type:
    """Add a layer class to :data:`LAYERS` under its class name (used by save/load)."""
    LAYERS[cls.__name__] = cls
    return cls


def layer_dtype(name: str, dtype: Any) -> np.dtype:
    """Validate a layer's ``dtype=``: float32 or float64."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise TransconvError(f"{name}: dtype must be float32 or float64, got {dtype!r}") from None
    if resolved not in _DTYPES:
        raise TransconvError(f"{name}: dtype must be float32 or float64, got {resolved}")
    return resolved


def layer_input(name: str, x: Any, min_ndim: int = 1) -> np.ndarray:
    """Validate a layer's input: a real numeric array of at least ``min_ndim`` axes, as float
    (integers and bools as float64)."""
    array = as_numeric(name, "input", x)
    if array.ndim < min_ndim:
        raise TransconvError(f"{name}: input must have at least {min_ndim} axes, got shape {array.shape}")
    return array if array.dtype.kind == "f" else array.astype(np.float64)


class Module:
    """Base class: ``forward(x)``, ``backward(grad_out) -> grad_x``, parameters and gradients.

    Subclasses set ``self.params`` (``dict[str, ndarray]``) and implement ``forward`` /
    ``backward``; ``backward`` uses what the last ``forward`` cached.
    """

    dtype: np.dtype = np.dtype(np.float32)

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] = {}
        self._cache: Optional[Any] = None

    # ---- computation ----
    def forward(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def _cached(self) -> Any:
        if self._cache is None:
            raise TransconvError(f"{self._name()}: backward called before forward (nothing cached to differentiate)")
        return self._cache

    def _checked_grad(self, grad_out: Any, shape: tuple[int, ...]) -> np.ndarray:
        """``grad_out`` validated against the shape of the last output (its dtype kept)."""
        g = as_numeric(self._name(), "grad_out", grad_out)
        if g.shape != tuple(shape):
            raise TransconvError(f"{self._name()}: grad_out must have the output's shape {tuple(shape)}, got {g.shape}")
        return g

    def _grad_out(self, grad_out: Any, shape: tuple[int, ...]) -> np.ndarray:
        """``grad_out`` validated and cast to the layer's parameter dtype."""
        return self._checked_grad(grad_out, shape).astype(self.dtype, copy=False)

    def _accumulate(self, name: str, value: np.ndarray) -> None:
        self._grads[name] += value.astype(self.dtype, copy=False)

    def _name(self) -> str:
        return type(self).__name__

    # ---- parameters ----
    def children(self) -> list[tuple[str, "Module"]]:
        """Named sub-modules (empty for a plain layer)."""
        return []

    def parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` pairs in ``state_dict`` order; the arrays themselves, not copies."""
        for name, value in self.params.items():
            if value is not None:
                yield name, value
        for prefix, child in self.children():
            for name, value in child.parameters():
                yield f"{prefix}.{name}", value

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients with the ``state_dict`` keys (own ones by short name), filled by ``backward``."""
        own = {name: self._grads[name] for name in self.params if self.params[name] is not None}
        for prefix, child in self.children():
            own.update({f"{prefix}.{name}": value for name, value in child.grads.items()})
        return own

    def zero_grad(self) -> None:
        """Set every gradient to zero (in place)."""
        for name, value in self.params.items():
            if value is not None:
                self._grads[name][...] = 0
        for _, child in self.children():
            child.zero_grad()

    def _set_param(self, name: str, value: Optional[np.ndarray]) -> None:
        self.params[name] = value
        if value is not None:
            self._grads[name] = np.zeros_like(value)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameters under PyTorch's names (``"weight"``, ``"0.bias"``, ...)."""
        return {name: value.copy() for name, value in self.parameters()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load parameters: keys and shapes must match exactly; values are cast to the layer's dtype."""
        own = dict(self.parameters())
        missing = [k for k in own if k not in state]
        extra = [k for k in state if k not in own]
        if missing or extra:
            raise TransconvError(
                f"{self._name()}: load_state_dict keys do not match this architecture: "
                f"missing {missing}, unexpected {extra}"
            )
        for key, target in own.items():
            value = as_numeric(self._name(), f"load_state_dict[{key!r}]", state[key])
            if value.shape != target.shape:
                raise TransconvError(
                    f"{self._name()}: load_state_dict[{key!r}] has shape {value.shape}, this layer needs {target.shape}"
                )
        for key, target in own.items():
            target[...] = np.asarray(state[key])  # in place: the optimiser and other views keep the same arrays

    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments: ``type(m)(**m.config())`` rebuilds the architecture."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "dtype")
        return f"{type(self).__name__}({args})"


@register_layer
class Sequential(Module):
    """Layers applied in order; parameters named ``"<index>.<name>"`` as in PyTorch.

    Examples
    --------
    >>> import numpy as np, transconv as tc
    >>> model = tc.nn.Sequential(tc.nn.Conv(1, 4, 3, padding=1, seed=0), tc.nn.ReLU(), tc.nn.Conv(4, 1, 1, seed=1))
    >>> list(model.state_dict())
    ['0.weight', '0.bias', '2.weight', '2.bias']
    >>> y = model(np.ones((2, 1, 5, 5), np.float32))
    >>> model.backward(np.ones_like(y)).shape
    (2, 1, 5, 5)
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TransconvError(f"Sequential: layer {i} must be a transconv.nn.Module, got {type(layer).__name__}")
        self.layers: list[Module] = list(layers)

    def children(self) -> list[tuple[str, Module]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def config(self) -> dict[str, Any]:
        """The children are the architecture; save/load stores them one by one."""
        return {}

    def __repr__(self) -> str:
        lines = [f"  ({i}): " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)" if lines else "Sequential()"
