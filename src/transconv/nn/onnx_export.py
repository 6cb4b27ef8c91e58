"""Export a ``transconv.nn`` model as an ONNX graph, built with ``onnx.helper`` (no PyTorch).

One node (or a few) per layer, in order, on a fixed input shape:

* ``Conv`` -> ``Conv`` (pads ``[lo..., hi...]``, strides, dilations, group); a padding mode
  other than zeros becomes an explicit ``Pad`` (``reflect`` / ``edge`` / ``wrap``) before
  a ``Conv`` with no padding.
* ``ConvTranspose`` -> ``ConvTranspose`` (pads, strides, dilations, group, output_padding);
  other padding modes are refused (their adjoint, a fold of the padded border back
  onto the output, has no ONNX operator).
* ``PixelShuffle`` -> ``DepthToSpace`` mode ``"CRD"`` (PyTorch's channel order) in 2-d,
  ``Reshape``/``Transpose``/``Reshape`` otherwise.  ``PixelUnshuffle`` ->
  ``Reshape``/``Transpose``/``Reshape``: ONNX ``SpaceToDepth`` puts the block offset before
  the channel (``offset * C + c``), PyTorch the channel first (``c * r**2 + offset``).
* ``Upsample`` -> ``Resize``: nearest with ``asymmetric`` coordinates and ``floor``
  rounding (repetition); linear with ``half_pixel`` (PyTorch ``align_corners=False``).
* ``ReLU``, ``LeakyReLU``, ``PRelu`` (slope shaped ``(C, 1, ...)`` to broadcast),
  ``Tanh``, ``Sigmoid``; ``Crop`` -> ``Slice``; ``ZeroInsert`` -> a depthwise 1-tap
  ``ConvTranspose`` of ones (+ ``Pad``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import TransconvError
from ..files import atomic_write, check_target
from ..spec import checked_int, per_axis_items
from .conv import Conv, ConvTranspose
from .extra_layers import Crop, ZeroInsert
from .layers import LeakyReLU, PixelShuffle, PixelUnshuffle, PReLU, ReLU, Sigmoid, Tanh, Upsample
from .module import Module, Sequential

__all__ = ["to_onnx", "OPSET"]

OPSET = 19  # Pad mode "wrap" (circular) needs opset 19
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _flatten(model: Module, where: str):
    if type(model) is Sequential:
        for i, layer in enumerate(model.layers):
            yield from _flatten(layer, f"{where}.{i}" if where else str(i))
    else:
        yield where or "<model>", model


class _Graph:
    """Nodes and initialisers under construction; ``shape`` follows the current tensor."""

    def __init__(self, onnx, dtype: np.dtype, input_shape: tuple[int, ...]) -> None:
        self.onnx, self.dtype = onnx, dtype
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.current, self.shape = "input", input_shape
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: Sequence[str], shape: tuple[int, ...], **attrs: Any) -> None:
        out = self.name(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, [self.current, *inputs], [out], **attrs))
        self.current, self.shape = out, tuple(shape)


def _probe(layer: Module, shape: tuple[int, ...], dtype: np.dtype, label: str) -> tuple[int, ...]:
    """The layer's output shape on this input shape (the layer's own validation, named)."""
    try:
        return layer.forward(np.zeros(shape, dtype)).shape
    except TransconvError as exc:
        raise TransconvError(f"to_onnx: layer {label} ({type(layer).__name__}) on input shape {shape}: {exc}") from None


def _shuffle_nodes(graph: _Graph, r: int, shuffle: bool, out_shape: tuple[int, ...]) -> None:
    n, c = graph.shape[:2]
    spatial = graph.shape[2:]
    d = len(spatial)
    if shuffle:
        # (n, c, r_1..r_d, s_1..s_d) -> (n, c, s_1, r_1, ..., s_d, r_d)
        first = (n, c // r**d) + (r,) * d + spatial
        order = (0, 1) + tuple(a for i in range(d) for a in (2 + d + i, 2 + i))
    else:
        # (n, c, s_1, r_1, ..., s_d, r_d) -> (n, c, r_1..r_d, s_1..s_d)
        first = (n, c) + tuple(a for s in spatial for a in (s // r, r))
        order = (0, 1) + tuple(3 + 2 * i for i in range(d)) + tuple(2 + 2 * i for i in range(d))
    graph.node("Reshape", [graph.const("shape", np.array(first, np.int64))], first)
    graph.node("Transpose", [], tuple(first[a] for a in order), perm=list(order))
    graph.node("Reshape", [graph.const("shape", np.array(out_shape, np.int64))], out_shape)


def _add_conv(graph: _Graph, layer: Conv | ConvTranspose, out_shape: tuple[int, ...], name: str) -> None:
    """A Conv or ConvTranspose node, with the Pad / Add nodes ONNX needs around it."""
    nd = len(graph.shape) - 2
    spec = layer.spec_for(graph.shape[2:])
    weight = graph.const("weight", layer.weight.astype(graph.dtype))
    inputs = [weight] + ([graph.const("bias", layer.bias.astype(graph.dtype))] if layer.bias is not None else [])
    pads = [lo for lo, _ in spec.padding] + [hi for _, hi in spec.padding]
    attrs = dict(kernel_shape=list(spec.kernel_size), strides=list(spec.stride), dilations=list(spec.dilation), group=spec.groups)
    if isinstance(layer, ConvTranspose):
        if spec.padding_mode != "zeros":
            raise TransconvError(
                f"to_onnx: {name} has padding_mode={spec.padding_mode!r}; ONNX ConvTranspose only pads with zeros "
                f"and the adjoint of {spec.padding_mode!r} padding has no ONNX operator (use padding_mode='zeros')"
            )
        # onnxruntime refuses output_padding >= stride (allowed with a larger dilation): output index o is
        # full index o + pad_begin whatever the end, so the excess first shortens the end crop, then zeros + bias follow
        output_padding, tail = [], []
        for a, (extra, stride) in enumerate(zip(spec.output_padding, spec.stride)):
            excess = max(extra - (stride - 1), 0)
            taken = min(excess, pads[nd + a])
            pads[nd + a] -= taken
            output_padding.append(extra - excess)
            tail.append(excess - taken)
        if not any(tail):
            graph.node("ConvTranspose", inputs, out_shape, pads=pads, output_padding=output_padding, **attrs)
            return
        short = out_shape[:2] + tuple(n - t for n, t in zip(out_shape[2:], tail))
        graph.node("ConvTranspose", inputs[:1], short, pads=pads, output_padding=output_padding, **attrs)
        graph.node("Pad", [graph.const("pads", np.array([0] * (nd + 2) + [0, 0] + tail, np.int64))], out_shape, mode="constant")
        if layer.bias is not None:
            graph.node("Add", [graph.const("bias", layer.bias.reshape((-1,) + (1,) * nd).astype(graph.dtype))], out_shape)
        return
    if spec.padding_mode != "zeros":
        padded = graph.shape[:2] + spec.padded_shape(graph.shape[2:])
        graph.node("Pad", [graph.const("pads", np.array([0, 0] + pads[:nd] + [0, 0] + pads[nd:], np.int64))], padded,
                   mode=_PAD_MODES[spec.padding_mode])
        pads = [0] * (2 * nd)
    graph.node("Conv", inputs, out_shape, pads=pads, **attrs)


def _add_layer(graph: _Graph, layer: Module, label: str) -> None:
    out_shape = _probe(layer, graph.shape, graph.dtype, label)
    nd = len(graph.shape) - 2
    name = f"layer {label} ({type(layer).__name__})"
    if isinstance(layer, Conv | ConvTranspose):
        _add_conv(graph, layer, out_shape, name)
    elif isinstance(layer, PixelShuffle):
        if nd == 2:
            graph.node("DepthToSpace", [], out_shape, blocksize=layer.upscale_factor, mode="CRD")
        else:
            _shuffle_nodes(graph, layer.upscale_factor, True, out_shape)
    elif isinstance(layer, PixelUnshuffle):
        _shuffle_nodes(graph, layer.downscale_factor, False, out_shape)
    elif isinstance(layer, Upsample):
        scales = np.array([1.0, 1.0] + [float(b) / float(a) for a, b in zip(graph.shape[2:], out_shape[2:])], np.float32)
        if layer.mode == "nearest":
            attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        else:
            attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel")
        graph.node("Resize", ["", graph.const("scales", scales)], out_shape, **attrs)
    elif type(layer) is ReLU:
        graph.node("Relu", [], out_shape)
    elif type(layer) is LeakyReLU:
        graph.node("LeakyRelu", [], out_shape, alpha=float(layer.negative_slope))
    elif type(layer) is Tanh:
        graph.node("Tanh", [], out_shape)
    elif type(layer) is Sigmoid:
        graph.node("Sigmoid", [], out_shape)
    elif type(layer) is PReLU:
        slope = layer.weight.reshape((-1,) + (1,) * nd) if layer.num_parameters > 1 else layer.weight.reshape(1)
        graph.node("PRelu", [graph.const("slope", slope.astype(graph.dtype))], out_shape)
    elif type(layer) is Crop:
        axes = np.arange(2, 2 + nd, dtype=np.int64)
        starts = np.array([lo for lo, _ in layer.crop], np.int64)
        ends = np.array([n - hi for n, (_, hi) in zip(graph.shape[2:], layer.crop)], np.int64)
        graph.node("Slice", [graph.const("starts", starts), graph.const("ends", ends), graph.const("axes", axes)], out_shape)
    elif type(layer) is ZeroInsert:
        # a depthwise ConvTranspose with a 1-tap kernel of ones inserts the zeros; its pads crop, a Pad extends
        c = graph.shape[1]
        crop = [max(-lo, 0) for lo, _ in layer.padding] + [max(-hi, 0) for _, hi in layer.padding]
        extend = [max(lo, 0) for lo, _ in layer.padding] + [max(hi, 0) for _, hi in layer.padding]
        inserted = graph.shape[:2] + tuple((n - 1) * s + 1 - crop[a] - crop[nd + a] for a, (n, s) in enumerate(zip(graph.shape[2:], layer.stride)))
        ones = graph.const("ones", np.ones((c, 1) + (1,) * nd, graph.dtype))
        graph.node("ConvTranspose", [ones], inserted, kernel_shape=[1] * nd, strides=list(layer.stride), pads=crop, group=c)
        if any(extend):
            graph.node("Pad", [graph.const("pads", np.array([0, 0] + extend[:nd] + [0, 0] + extend[nd:], np.int64))], out_shape, mode="constant")
    else:
        raise TransconvError(
            f"to_onnx: {name} has no ONNX export; supported are Conv, ConvTranspose, PixelShuffle, PixelUnshuffle, "
            f"Upsample, ReLU, LeakyReLU, PReLU, Tanh, Sigmoid, Crop, ZeroInsert and Sequential"
        )


def to_onnx(model: Module, path: Any, input_shape: Sequence[int], *, overwrite: bool = False, dtype: Any = np.float32) -> None:
    """Write ``model`` as an ONNX file for inputs of shape ``input_shape``; onnxruntime runs it to the same outputs.

    The graph is built node by node with ``onnx.helper`` (opset 19), checked with
    ``onnx.checker.check_model(full_check=True)`` and written to a temporary file in the
    same folder, then renamed; an existing ``path`` is refused unless ``overwrite=True``.

    Parameters
    ----------
    model : transconv.nn.Module
    path : str or os.PathLike
    input_shape : sequence of int
        The full input shape ``(N, C, *spatial)``; the graph is static.
    overwrite : bool, default False
    dtype : float32 (default) or float64
        The graph's element type (parameters are cast to it).  onnxruntime's CPU
        convolutions run float32 only.

    Examples
    --------
    >>> import os, tempfile, numpy as np, onnxruntime, transconv as tc
    >>> model = tc.nn.Sequential(tc.nn.Conv(1, 4, 3, padding=1, seed=0), tc.nn.PixelShuffle(2), tc.nn.Tanh())
    >>> path = os.path.join(tempfile.mkdtemp(), "up.onnx")
    >>> tc.nn.to_onnx(model, path, (1, 1, 5, 5))
    >>> x = np.random.default_rng(0).standard_normal((1, 1, 5, 5)).astype(np.float32)
    >>> y = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    >>> bool(np.allclose(y, model(x), atol=1e-6))
    True
    """
    op = "to_onnx"
    try:
        import onnx
        import onnx.numpy_helper  # noqa: F401
    except ImportError:
        raise TransconvError(f"{op}: the onnx package is not installed (pip install onnx)") from None
    if not isinstance(model, Module):
        raise TransconvError(f"{op}: model must be a transconv.nn.Module, got {type(model).__name__}")
    element = np.dtype(dtype)
    if element not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TransconvError(f"{op}: dtype must be float32 or float64, got {element}")
    items = per_axis_items(op, "input_shape", input_shape)
    if items is None or len(items) < 3:
        raise TransconvError(f"{op}: input_shape must be (N, C, *spatial) with integers >= 1, got {input_shape!r}")
    shape = tuple(checked_int(op, f"input_shape[{a}]", v, 1) for a, v in enumerate(items))
    target = check_target(op, path, overwrite=overwrite)
    graph = _Graph(onnx, element, shape)
    for label, layer in _flatten(model, ""):
        _add_layer(graph, layer, label)
    if graph.nodes:
        graph.nodes[-1].output[0] = "output"
    else:
        graph.nodes.append(onnx.helper.make_node("Identity", ["input"], ["output"]))
    elem = onnx.helper.np_dtype_to_tensor_dtype(element)
    proto = onnx.helper.make_graph(
        graph.nodes, "transconv", [onnx.helper.make_tensor_value_info("input", elem, list(shape))],
        [onnx.helper.make_tensor_value_info("output", elem, list(graph.shape))], graph.inits,
    )
    onnx_model = onnx.helper.make_model(proto, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="transconv")
    onnx.checker.check_model(onnx_model, full_check=True)
    with atomic_write(target, op=op, overwrite=overwrite) as temporary:
        temporary.write_bytes(onnx_model.SerializeToString())
