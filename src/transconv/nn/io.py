"""Save and load ``transconv.nn`` models: one ``.npz``, no pickles.

The file holds every ``state_dict`` array under its PyTorch name (``"0.weight"``,
``"1.0.bias"``) plus one string array ``"__architecture__"``: JSON naming each layer's
class (a key of :data:`transconv.nn.LAYERS`) and its ``config()``, nested for
``Sequential``, with the model's dtype and a format version.  :func:`load` reads it
with ``np.load(..., allow_pickle=False)``, rebuilds the layers from the JSON and loads
the arrays, checking names and shapes first.  See ``docs/learning-interop.md``.
"""

from __future__ import annotations

import json
import os
import zipfile
from typing import Any, Union

import numpy as np

from ..errors import TransconvError
from ..files import atomic_write, check_target
from .module import LAYERS, Module, Sequential

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "transconv.nn"
FORMAT_VERSION = 1
_ARCH_KEY = "__architecture__"

PathLike = Union[str, "os.PathLike[str]"]


def _describe(model: Module, where: str) -> dict[str, Any]:
    """The JSON node of one layer: class name, config, children (for containers)."""
    name = type(model).__name__
    if LAYERS.get(name) is not type(model):
        raise TransconvError(
            f"save: layer {where or '<model>'} is a {name}, which is not in transconv.nn.LAYERS "
            f"(register it with transconv.nn.register_layer so load can rebuild it)"
        )
    node: dict[str, Any] = {"class": name, "config": model.config()}
    if isinstance(model, Sequential):
        node["children"] = [_describe(layer, f"{where}.{i}" if where else str(i)) for i, layer in enumerate(model.layers)]
    return node


def _model_dtype(model: Module) -> str:
    dtypes = sorted({value.dtype.name for _, value in model.parameters()})
    return dtypes[0] if len(dtypes) == 1 else ("mixed" if dtypes else "none")


def architecture(model: Module) -> dict[str, Any]:
    """The JSON-ready description :func:`save` stores (format, version, dtype, layer tree).

    >>> import transconv as tc
    >>> architecture(tc.nn.Sequential(tc.nn.ReLU()))["model"]
    {'class': 'Sequential', 'config': {}, 'children': [{'class': 'ReLU', 'config': {}}]}
    """
    if not isinstance(model, Module):
        raise TransconvError(f"save: model must be a transconv.nn.Module, got {type(model).__name__}")
    return {"format": FORMAT, "version": FORMAT_VERSION, "dtype": _model_dtype(model), "model": _describe(model, "")}


def save(model: Module, path: PathLike, *, overwrite: bool = False) -> None:
    """Write ``model`` (architecture and parameters) to the ``.npz`` file ``path``.

    The file is written to a temporary file in the same folder and renamed into place, so
    ``path`` is never half-written.  An existing ``path`` is refused unless ``overwrite=True``.
    The name is used as given (no ``.npz`` is appended).

    Parameters
    ----------
    model : transconv.nn.Module
        Every layer must be registered in :data:`transconv.nn.LAYERS`.
    path : str or os.PathLike
    overwrite : bool, default False
        Replace an existing file.

    Examples
    --------
    >>> import os, tempfile, numpy as np, transconv as tc
    >>> model = tc.nn.Sequential(tc.nn.ConvTranspose(1, 1, 4, stride=2, padding=1, seed=0), tc.nn.ReLU())
    >>> path = os.path.join(tempfile.mkdtemp(), "up.npz")
    >>> tc.nn.save(model, path)
    >>> again = tc.nn.load(path)
    >>> x = np.ones((1, 1, 3, 3), np.float32)
    >>> bool(np.array_equal(again(x), model(x)))
    True
    """
    arch = architecture(model)
    state = model.state_dict()
    if _ARCH_KEY in state:
        raise TransconvError(f"save: a parameter is named {_ARCH_KEY!r}, which the file format reserves")
    target = check_target("save", path, overwrite=overwrite)
    write_archive(target, state, arch, op="save", overwrite=overwrite)


def write_archive(path: PathLike, state: dict[str, Any], arch: dict[str, Any], *, op: str, overwrite: bool) -> None:
    """The ``.npz`` file :func:`load` reads: the arrays of ``state`` and ``arch`` as JSON, written atomically."""
    arrays = {key: np.ascontiguousarray(value) for key, value in state.items()}
    arrays[_ARCH_KEY] = np.array(json.dumps(arch))
    with atomic_write(path, op=op, overwrite=overwrite) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)


def _build(node: Any, where: str, path: str) -> Module:
    label = f"layer {where or '<model>'}"
    if not isinstance(node, dict) or not isinstance(node.get("class"), str) or not isinstance(node.get("config", {}), dict):
        raise TransconvError(f"load: {path!r}: {label}: malformed architecture entry {node!r}")
    name = node["class"]
    cls = LAYERS.get(name)
    if cls is None:
        raise TransconvError(f"load: {path!r}: {label} has unknown layer class {name!r} (known: {', '.join(sorted(LAYERS))})")
    config = node.get("config", {})
    if issubclass(cls, Sequential):
        children = node.get("children")
        if not isinstance(children, list):
            raise TransconvError(f"load: {path!r}: {label} ({name}) has no list of children")
        layers = [_build(child, f"{where}.{i}" if where else str(i), path) for i, child in enumerate(children)]
        return cls(*layers)
    try:
        return cls(**config)
    except TransconvError as exc:
        raise TransconvError(f"load: {path!r}: {label} ({name}): {exc}") from None
    except TypeError as exc:
        raise TransconvError(f"load: {path!r}: {label} ({name}): config {config!r} does not fit the constructor: {exc}") from None


def _owner(model: Module, key: str) -> str:
    """``"layer 1.0 (Conv)"`` for the parameter ``"1.0.weight"``."""
    parts = key.split(".")[:-1]
    layer = model
    for part in parts:
        if isinstance(layer, Sequential) and part.isdigit() and int(part) < len(layer):
            layer = layer[int(part)]
        else:
            return f"layer {'.'.join(parts)}"
    return f"layer {'.'.join(parts) or '<model>'} ({type(layer).__name__})"


def load(path: PathLike) -> Module:
    """Read a model written by :func:`save`.

    Raises :class:`~transconv.TransconvError` naming the file, the layer and the problem
    for a missing, truncated or corrupt file, a file holding pickled objects, an unknown
    layer class, missing or unexpected parameters, or parameters of the wrong shape.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    transconv.nn.Module
        The rebuilt model, parameters in the dtype each layer was saved with.

    Examples
    --------
    >>> import os, tempfile, transconv as tc
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> tc.nn.save(tc.nn.Sequential(tc.nn.Conv(1, 2, 3, seed=0)), path)
    >>> list(tc.nn.load(path).state_dict())
    ['0.weight', '0.bias']
    """
    target = os.fspath(path)
    try:
        if os.path.isfile(target) and not zipfile.is_zipfile(target):  # np.load would call any other bytes a pickle
            with open(target, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise TransconvError(f"load: {target!r} is truncated or corrupt (not a .npz archive)")
        archive = np.load(target, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise TransconvError(f"load: {target!r} holds a single array, not a transconv.nn model (.npz)")
        with archive:
            if _ARCH_KEY not in archive.files:
                raise TransconvError(f"load: {target!r} has no {_ARCH_KEY!r} entry: not a file written by transconv.nn.save")
            arch_text = archive[_ARCH_KEY]
            arrays = {key: archive[key] for key in archive.files if key != _ARCH_KEY}
    except TransconvError:
        raise
    except FileNotFoundError:
        raise TransconvError(f"load: {target!r} does not exist") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        reason = "holds pickled objects, refused (allow_pickle=False)" if "pickle" in str(exc) else f"is truncated or corrupt ({type(exc).__name__}: {exc})"
        raise TransconvError(f"load: {target!r} {reason}") from None
    if arch_text.dtype.kind != "U" or arch_text.ndim != 0:
        raise TransconvError(f"load: {target!r}: {_ARCH_KEY!r} must be one JSON string, got dtype {arch_text.dtype} shape {arch_text.shape}")
    try:
        arch = json.loads(str(arch_text))
    except json.JSONDecodeError as exc:
        raise TransconvError(f"load: {target!r}: the architecture is not valid JSON ({exc})") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise TransconvError(f"load: {target!r} is not a {FORMAT} file (format {arch.get('format') if isinstance(arch, dict) else None!r})")
    if arch.get("version") != FORMAT_VERSION:
        raise TransconvError(f"load: {target!r} has format version {arch.get('version')!r}; this transconv reads version {FORMAT_VERSION}")
    model = _build(arch.get("model"), "", target)
    own = dict(model.parameters())
    for key in own:
        if key not in arrays:
            raise TransconvError(f"load: {target!r}: {_owner(model, key)} is missing parameter {key!r}")
    for key in arrays:
        if key not in own:
            raise TransconvError(f"load: {target!r}: unexpected parameter {key!r} ({_owner(model, key)} has no such parameter)")
    for key, value in arrays.items():
        if value.shape != own[key].shape:
            raise TransconvError(
                f"load: {target!r}: {_owner(model, key)}: parameter {key!r} has shape {value.shape}, the layer needs {own[key].shape}"
            )
        if value.dtype.kind != "f":
            raise TransconvError(f"load: {target!r}: {_owner(model, key)}: parameter {key!r} has dtype {value.dtype}, expected floats")
    model.load_state_dict(arrays)
    return model
