"""The ``transconv`` command line (also ``python -m transconv``).

Commands::

    transconv demo [--out DIR]             the worked example end to end, a real 2x up-sampling, pictures
    transconv shape -i 3 -k 3 -s 2 -p 1 --transposed          output size, formula filled in
    transconv shape -i 7 --to 14 --transposed                 solver: geometries mapping 7 to 14
    transconv matrix -i 4 -k 3 [--transposed] [-o C.npz|.png|.csv]   print or save C / C^T
    transconv animate -i 3 -k 3 -s 2 -p 1 --transposed -o t.gif      GIF (or .png still grid)
    transconv explore [-o page.html | --serve [--port N]]    the interactive explorer page
    transconv bench ...                                        benchmarks (transconv.bench)

Geometry flags shared by shape, matrix, animate and explore, as in the
convolution-arithmetic figures: ``-i/--input N`` (or ``HxW``) is the input of the
operation drawn (the small side when ``--transposed``), ``-k -s -p -d`` kernel, stride,
padding (an int, ``a,b`` per axis, or ``same`` / ``valid``) and dilation,
``--output-padding A``.  Bad arguments exit with code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .matrix import format_matrix

from .errors import TransconvError
from .files import atomic_write, check_target

__all__ = ["main", "build_parser"]

PROG = "transconv"


class UsageError(Exception):
    """Bad command-line usage: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, exit 2 (argparse prints usage + error otherwise)
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


# --------------------------------------------------------------------------------------
# Small helpers.
# --------------------------------------------------------------------------------------


class Progress:
    """A progress bar on stderr, the same tqdm bar ``transconv train`` draws (only on a terminal;
    silent in pipes and tests).  ``bar(done)`` moves it to ``done`` of ``total``."""

    def __init__(self, label: str, total: int, stream=None):
        from tqdm.auto import tqdm

        stream = stream or sys.stderr
        drawn = hasattr(stream, "isatty") and stream.isatty()
        self.bar = tqdm(total=max(1, total), desc=label, file=stream, disable=not drawn)

    def __call__(self, done: int, total: Optional[int] = None) -> None:
        if total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)
        if done >= self.bar.total:
            self.bar.close()


def _ints(text: str, name: str) -> tuple[int, ...]:
    """A flag's integers, separated by ',' or 'x' (their ranges are checked by the library)."""
    parts = text.replace("x", ",").replace("X", ",").split(",")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"{PROG}: error: {name} must be an integer or integers separated by ',' or 'x', got {text!r}") from None


def _per_axis(args, text: str, name: str, ndim: int, minimum: int) -> tuple[int, ...]:
    """A geometry flag, one integer for every axis or one per axis, read by :func:`transconv.spec.per_axis`."""
    from .spec import per_axis

    values = _ints(text, name)
    return per_axis(args.command, name, values[0] if len(values) == 1 else values, ndim, minimum)


def _geometry(args) -> dict[str, Any]:
    """The geometry flags as keyword arguments of the library (validated there)."""
    given = _ints(args.input, "-i/--input")
    shape = _per_axis(args, args.input, "-i/--input", args.ndim if len(given) == 1 else len(given), 1)
    ndim = len(shape)
    kernel = _per_axis(args, args.kernel, "-k/--kernel", ndim, 1)
    stride = _per_axis(args, args.stride, "-s/--stride", ndim, 1)
    dilation = _per_axis(args, args.dilation, "-d/--dilation", ndim, 1)
    out_pad = _per_axis(args, args.output_padding, "--output-padding", ndim, 0)
    if args.padding.lower() in ("same", "valid"):
        padding: Any = args.padding.lower()
    else:
        padding = _per_axis(args, args.padding, "-p/--padding", ndim, 0)
    if any(out_pad) and not args.transposed:
        raise UsageError(f"{PROG}: error: --output-padding only applies with --transposed")
    return dict(input_shape=shape, kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                output_padding=out_pad, transposed=args.transposed)


def _spec(geo: dict[str, Any]):
    """The geometry through the library's one boundary (its messages, its limits)."""
    from .viz.frames import make_spec

    return make_spec(**geo)


def _positive(name: str, value: float, largest: float) -> None:
    if not 0 < value <= largest:  # NaN fails too
        raise UsageError(f"{PROG}: error: {name} must be a number > 0 and <= {largest:g}, got {value}")


def _target(args, path_text: str) -> Path:
    """An output file path, checked before any work (its folder, and --force to replace it)."""
    return check_target(args.command, path_text, overwrite=args.force, how="pass --force to overwrite it")


def _x(shape: Sequence[int]) -> str:
    return "x".join(str(n) for n in shape)


def _kernel_values(text: Optional[str], kernel_size: tuple[int, ...]) -> np.ndarray:
    from .viz.frames import example_kernel

    if text is None:
        return example_kernel(kernel_size)
    try:
        rows = [[float(v) for v in row.replace(",", " ").split()] for row in text.split(";")]
        w = np.array(rows, dtype=float)
    except ValueError:
        raise UsageError(f"{PROG}: error: --kernel-values must be numbers, rows separated by ';', got {text!r}") from None
    if len(kernel_size) == 1:
        w = w.ravel()
    if w.shape != tuple(kernel_size):
        raise UsageError(
            f"{PROG}: error: --kernel-values has shape {w.shape} but the kernel is {_x(kernel_size)} "
            f"(rows separated by ';', e.g. '1,4,1;1,4,3;3,3,1')"
        )
    return w


def _library_matrix(w: np.ndarray, spec, input_shape, transposed: bool):
    """The operation's matrix (scipy.sparse) from transconv.conv_matrix / conv_transpose_matrix."""
    from .matrix import conv_matrix, conv_transpose_matrix

    if transposed:
        return conv_transpose_matrix(w, input_shape, spec.stride, spec.padding, spec.output_padding, 1, spec.dilation,
                                     padding_mode=spec.padding_mode)
    return conv_matrix(w, input_shape, spec.stride, spec.padding, spec.dilation, 1, padding_mode=spec.padding_mode)


def _emit(args, data: Any, text: str) -> None:
    if getattr(args, "format", "text") == "json":
        print(json.dumps(data, indent=2))
    else:
        print(text)


# --------------------------------------------------------------------------------------
# shape
# --------------------------------------------------------------------------------------


def _framework_table(geo: dict[str, Any]) -> list[dict[str, Any]]:
    """The same kernel and stride under each framework's padding conventions.

    Transposed: every row goes through :mod:`transconv.interop` (the library's translation)
    and shows the output size and the ``conv_transpose`` arguments that reproduce it.
    """
    from .spec import conv_output_length, conv_transpose_output_length, same_padding

    shape, k, s, d, a = geo["input_shape"], geo["kernel_size"], geo["stride"], geo["dilation"], geo["output_padding"]
    pad = geo["padding"]
    explicit = None if isinstance(pad, str) else pad
    ndim = len(shape)
    rows = []
    if not geo["transposed"]:
        if explicit is not None:
            rows.append(dict(framework="PyTorch / ONNX / Caffe", padding=f"p={_x(explicit)}",
                             output=[conv_output_length(i, kk, ss, p, dd) for i, kk, ss, p, dd in zip(shape, k, s, explicit, d)]))
        rows.append(dict(framework="TensorFlow / Keras / JAX / ONNX SAME_*", padding="SAME",
                         output=[conv_output_length(i, kk, ss, same_padding(i, kk, ss, dd), dd)
                                 for i, kk, ss, dd in zip(shape, k, s, d)]))
        rows.append(dict(framework="TensorFlow / Keras / JAX / ONNX", padding="VALID",
                         output=[conv_output_length(i, kk, ss, 0, dd) for i, kk, ss, dd in zip(shape, k, s, d)]))
        return rows

    from . import interop

    same_size = tuple(i * ss for i, ss in zip(shape, s))
    valid_size = tuple(conv_transpose_output_length(i, kk, ss, 0, dd) for i, kk, ss, dd in zip(shape, k, s, d))
    calls = []
    if explicit is not None:
        calls += [
            ("PyTorch ConvTranspose", f"padding={_x(explicit)}, output_padding={_x(a)}",
             lambda: dict(stride=s, padding=tuple((p, p) for p in explicit), output_padding=a, dilation=d)),
            ("ONNX ConvTranspose", f"pads={_x(explicit)}, output_padding={_x(a)}",
             lambda: interop.from_onnx(shape, k, s, pads=list(explicit) * 2, output_padding=a, dilations=d)),
            ("MXNet Deconvolution", f"pad={_x(explicit)}, adj={_x(a)}",
             lambda: interop.from_mxnet(shape, k, s, d, explicit, a)),
            ("Caffe Deconvolution", f"pad={_x(explicit)} (no adjustment)",
             lambda: interop.from_caffe(k, s, explicit, d, ndim)),
        ]
    calls += [
        ("TensorFlow conv_transpose", f"SAME, output_shape={_x(same_size)}",
         lambda: interop.from_tensorflow(shape, k, s, "SAME", same_size, d)),
        ("TensorFlow conv_transpose", f"VALID, output_shape={_x(valid_size)}",
         lambda: interop.from_tensorflow(shape, k, s, "VALID", valid_size, d)),
        ("Keras ConvTranspose", "same", lambda: interop.from_keras(shape, k, s, "same", None, d)),
        ("Keras ConvTranspose", "valid", lambda: interop.from_keras(shape, k, s, "valid", None, d)),
        ("JAX lax.conv_transpose", "SAME", lambda: interop.from_jax(shape, k, s, "SAME", d)),
        ("JAX lax.conv_transpose", "VALID", lambda: interop.from_jax(shape, k, s, "VALID", d)),
        ("ONNX ConvTranspose", "auto_pad=SAME_UPPER", lambda: interop.from_onnx(shape, k, s, auto_pad="SAME_UPPER", dilations=d)),
        ("ONNX ConvTranspose", "auto_pad=SAME_LOWER", lambda: interop.from_onnx(shape, k, s, auto_pad="SAME_LOWER", dilations=d)),
    ]
    for framework, padding, call in calls:
        try:
            kw = call()
        except TransconvError as exc:
            rows.append(dict(framework=framework, padding=padding, output=None, error=str(exc)))
            continue
        out = [conv_transpose_output_length(i, kk, ss, p, dd, aa) for i, kk, ss, p, dd, aa in
               zip(shape, k, kw["stride"], kw["padding"], kw["dilation"], kw["output_padding"])]
        rows.append(dict(framework=framework, padding=padding, output=out,
                         transconv=dict(padding=[list(p) for p in kw["padding"]], output_padding=list(kw["output_padding"]))))
    return rows


def cmd_shape(args) -> int:
    from .spec import solve_geometry
    from .viz.frames import shape_formula

    if args.to is not None:
        geo_i, target = _ints(args.input, "-i/--input"), _ints(args.to, "--to")
        if len(geo_i) != 1 or len(target) != 1:
            raise UsageError(f"{PROG}: error: the solver works on one axis: give -i N --to M with single integers")
        geo_i, target = _per_axis(args, args.input, "-i/--input", 1, 1), _per_axis(args, args.to, "--to", 1, 1)
        choices = solve_geometry(geo_i[0], target[0], transposed=args.transposed, max_kernel=args.max_kernel,
                                 max_stride=args.max_stride, max_dilation=args.max_dilation)
        op = "conv_transpose" if args.transposed else "conv"
        data = dict(operation=op, input=geo_i[0], output=target[0],
                    choices=[dict(kernel_size=c.kernel_size, stride=c.stride, padding=c.padding,
                                  output_padding=c.output_padding, dilation=c.dilation,
                                  checkerboard_free=c.checkerboard_free) for c in choices])
        lines = [f"{op}: geometries mapping {geo_i[0]} to {target[0]} "
                 f"(kernel <= {args.max_kernel}{', checkerboard-free first' if args.transposed else ''}):"]
        lines += [f"  {c.describe()}" for c in choices] or ["  none (try a larger --max-kernel or --max-stride)"]
        _emit(args, data, "\n".join(lines))
        return 0
    geo = _geometry(args)
    spec = _spec(geo)
    out = spec.output_shape(geo["input_shape"], geo["transposed"])
    op = "conv_transpose" if geo["transposed"] else "conv"
    formula = shape_formula(spec, geo["input_shape"], geo["transposed"])
    data = dict(operation=op, input_shape=list(geo["input_shape"]), output_shape=list(out),
                kernel_size=list(spec.kernel_size), stride=list(spec.stride), padding=[list(p) for p in spec.padding],
                dilation=list(spec.dilation), output_padding=list(spec.output_padding), formula=formula)
    lines = [f"{op}: input {_x(geo['input_shape'])} -> output {_x(out)}"]
    lines += [f"  axis {a}: {f}" for a, f in enumerate(formula)]
    if geo["transposed"]:
        from .overlap import overlap_diagnosis

        diag = overlap_diagnosis(geo["input_shape"], spec.kernel_size, spec.stride, spec.padding,
                                 spec.output_padding, spec.dilation)
        data["checkerboard_free"] = diag.uniform
        data["phase_counts"] = [list(p) for p in diag.phase_counts]
        lines.append(f"  overlap: {diag.describe()}")
    if args.frameworks:
        table = _framework_table(geo)
        data["frameworks"] = table
        lines.append("  other conventions for the same kernel and stride:")
        for row in table:
            if row.get("output") is None:
                lines.append(f"    {row['framework']:<26} {row['padding']:<30} -> not valid: {row['error']}")
                continue
            how = ""
            if "transconv" in row:
                pairs = ", ".join(f"({lo}, {hi})" for lo, hi in row["transconv"]["padding"])
                how = f"   = conv_transpose(padding=({pairs}), output_padding={tuple(row['transconv']['output_padding'])})"
            lines.append(f"    {row['framework']:<26} {row['padding']:<30} -> {_x(row['output'])}{how}")
    _emit(args, data, "\n".join(lines))
    return 0


# --------------------------------------------------------------------------------------
# matrix
# --------------------------------------------------------------------------------------


_PICTURE_STEPS = 4096  # outputs a matrix picture can show


def cmd_matrix(args) -> int:
    from .limits import check_allocation

    geo = _geometry(args)
    spec = _spec(geo)
    w = _kernel_values(args.kernel_values, spec.kernel_size)
    out = spec.output_shape(geo["input_shape"], geo["transposed"])
    rows, cols = math.prod(out), math.prod(geo["input_shape"])
    path = suffix = None
    if args.out:
        suffix = Path(args.out).suffix.lower()
        if suffix not in (".npz", ".npy", ".csv", ".txt", ".png"):
            raise UsageError(f"{PROG}: error: -o must end in .npz, .npy, .csv, .txt or .png, got {args.out!r}")
        path = _target(args, args.out)
        if suffix in (".npy", ".csv", ".txt"):
            check_allocation("matrix", f"the dense {rows}x{cols} matrix", 8 * rows * cols)
        if suffix == ".png":
            steps = rows  # one frame per output of the operation drawn
            if steps > _PICTURE_STEPS:
                raise UsageError(f"{PROG}: error: the picture of a {rows}x{cols} matrix is unreadable; "
                                 f"-o .png draws up to {_PICTURE_STEPS} outputs (use .npz)")
            if not 0 <= args.step < steps:
                raise UsageError(f"{PROG}: error: --step must be from 0 to {steps - 1} (one step per output), "
                                 f"got {args.step}")
    m = _library_matrix(w, spec, geo["input_shape"], geo["transposed"])
    name = "C^T" if geo["transposed"] else "C"
    op = "conv_transpose" if geo["transposed"] else "conv"
    if path is not None:
        with atomic_write(path) as temporary:
            if suffix == ".npz":
                import scipy.sparse as sp

                sp.save_npz(temporary, sp.csr_matrix(m))
            elif suffix == ".npy":
                np.save(temporary, m.toarray())
            elif suffix in (".csv", ".txt"):
                np.savetxt(temporary, m.toarray(), delimiter="," if suffix == ".csv" else " ", fmt="%.9g")
            else:
                from .viz.frames import frames
                from .viz.render import save_matrix_pair

                save_matrix_pair(frames(spec, geo["input_shape"], geo["transposed"]), temporary, step=args.step, w=w)
        print(f"wrote {name} ({m.shape[0]}x{m.shape[1]}, {m.nnz} non-zeros) to {path}")
        return 0
    data = dict(name=name, operation=op, input_shape=list(geo["input_shape"]), output_shape=list(out),
                shape=list(m.shape), nnz=int(m.nnz), kernel=w.tolist())
    if m.shape[0] * m.shape[1] <= 100_000:
        data["dense"] = m.toarray().tolist()
    text = [f"{name} of {op} on a {_x(geo['input_shape'])} input -> {_x(out)} output: "
            f"{m.shape[0]}x{m.shape[1]}, {m.nnz} non-zeros (row = output, column = input, C order; '.' = 0)"]
    if m.shape[1] <= 64 and m.shape[0] <= 256:
        # rows and columns named by position: y[...] outputs and x[...] inputs of the operation
        text.append(format_matrix(m, tuple(out), tuple(geo["input_shape"]), row_name="y", col_name="x",
                                     max_size=256))
    else:
        text.append("  (too large to print: use -o C.npz / .png / .csv, or --format json)")
    _emit(args, data, "\n".join(text))
    return 0


# --------------------------------------------------------------------------------------
# animate
# --------------------------------------------------------------------------------------


def cmd_animate(args) -> int:
    from .viz.frames import example_input, frames
    from .viz.render import render_frames, save_gif, save_grid

    geo = _geometry(args)
    spec = _spec(geo)
    if len(geo["input_shape"]) > 2:
        raise UsageError(f"{PROG}: error: animate draws 1-d and 2-d geometries, got a {len(geo['input_shape'])}-d input")
    if Path(args.out).suffix.lower() not in (".gif", ".png"):
        raise UsageError(f"{PROG}: error: -o must end in .gif (animation) or .png (still grid), got {args.out!r}")
    _positive("--fps", args.fps, 100)
    if args.max_frames < 1:
        raise UsageError(f"{PROG}: error: --max-frames must be >= 1, got {args.max_frames}")
    path = _target(args, args.out)
    # one step per output cell (direct view) or per input cell (scatter view): counted before any frame is built
    steps = math.prod(spec.output_shape(geo["input_shape"], geo["transposed"]) if args.view == "direct" else geo["input_shape"])
    if steps > args.max_frames:
        raise UsageError(
            f"{PROG}: error: this animation has {steps} frames (more than --max-frames {args.max_frames}); "
            f"use a smaller -i or raise --max-frames"
        )
    w = _kernel_values(args.kernel_values, spec.kernel_size)
    anim = frames(spec, geo["input_shape"], geo["transposed"], args.view)
    if len(anim.frames) > args.max_frames:
        raise UsageError(
            f"{PROG}: error: this animation has {len(anim.frames)} frames (more than --max-frames {args.max_frames}); "
            f"use a smaller -i or raise --max-frames"
        )
    still = path.suffix.lower() == ".png"
    images = render_frames(anim, example_input(geo["input_shape"]), w, matrix=not (args.no_matrix or still),
                           compact=still, progress=Progress(f"rendering {len(anim.frames)} frames", len(anim.frames)))
    with atomic_write(path) as temporary:
        if still:
            save_grid(images, temporary, anim=anim)
        else:
            save_gif(images, temporary, fps=args.fps)
    print(f"wrote {path} ({len(images)} frames, {anim.view} view of "
          f"{'conv_transpose' if geo['transposed'] else 'conv'} {_x(geo['input_shape'])} -> {_x(anim.output_shape)})")
    return 0


# --------------------------------------------------------------------------------------
# explore
# --------------------------------------------------------------------------------------


def cmd_explore(args) -> int:
    from .viz.explorer import explorer_html, serve

    config = {}
    if args.input is not None:
        geo = _geometry(args)
        _spec(geo)  # validate now, with the library's message
        if len(geo["input_shape"]) != 2 or isinstance(geo["padding"], str):
            raise UsageError(f"{PROG}: error: the explorer page takes a 2-d input and an integer padding")
        config = dict(h=geo["input_shape"][0], w=geo["input_shape"][1], k=geo["kernel_size"][0], s=geo["stride"][0],
                      p=geo["padding"][0], d=geo["dilation"][0], a=geo["output_padding"][0], t=int(geo["transposed"]))
    if args.serve:
        if not 0 <= args.port <= 65535:
            raise UsageError(f"{PROG}: error: --port must be from 0 to 65535, got {args.port}")
        return serve(explorer_html(config), args.port)
    path = _target(args, args.out or "transconv-explorer.html")
    html = explorer_html(config)
    with atomic_write(path) as temporary:
        temporary.write_text(html, encoding="utf-8")
    print(f"wrote {path} ({len(html) // 1024} KiB, self-contained): open file://{path.resolve()} in a browser")
    return 0


# --------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------


def cmd_demo(args) -> int:
    from .viz.demo import run_demo

    folder = Path(args.out)
    if not args.no_pictures:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{PROG}: error: {folder} exists and is not a directory")
        if folder.is_dir() and any(folder.iterdir()) and not args.force:
            raise UsageError(f"{PROG}: error: {folder} is not empty; pass --force to overwrite its pictures")
        if not folder.parent.is_dir():
            raise UsageError(f"{PROG}: error: the folder {folder.parent} of {folder} does not exist")
    return run_demo(folder, pictures=not args.no_pictures, progress_factory=Progress)


# --------------------------------------------------------------------------------------
# Commands that live in their own modules (imported only when called).
# --------------------------------------------------------------------------------------

_LAZY = {
    "bench": ("transconv.bench", "benchmarks: the methods against each other and against PyTorch"),
    "train": ("transconv.train", "learn up-sampling weights (FSRCNN on bundled photographs)"),
    "upsample": ("transconv.upsample", "up-sample an image with the learned FSRCNN (2x, 4x)"),
}


def _run_lazy(name: str, extra: list[str]) -> int:
    module_name, help_text = _LAZY[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise UsageError(f"{PROG} {name}: not available in this version of transconv ({module_name} is not installed)") from None
    parser = _Parser(prog=f"{PROG} {name}", description=help_text)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(extra)) or 0)


# --------------------------------------------------------------------------------------
# Parser and main.
# --------------------------------------------------------------------------------------


def _add_geometry(p: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    g = p.add_argument_group("geometry (as in the convolution-arithmetic figures)")
    g.add_argument("-i", "--input", default="4" if defaults else None, metavar="N",
                   help="input size of the operation drawn: N (N x N), HxW, or N,M,...; with --transposed the small side "
                        "(default: %(default)s)")
    g.add_argument("-k", "--kernel", default="3", metavar="K", help="kernel size, one value or one per axis (default: 3)")
    g.add_argument("-s", "--stride", default="1", metavar="S", help="stride (default: 1)")
    g.add_argument("-p", "--padding", default="0", metavar="P",
                   help="padding: an int, one per axis, 'same' or 'valid' (default: 0)")
    g.add_argument("-d", "--dilation", default="1", metavar="D", help="dilation (default: 1)")
    g.add_argument("--output-padding", default="0", metavar="A",
                   help="extra output length on the high side, transposed only, < max(stride, dilation) (default: 0)")
    g.add_argument("--transposed", action="store_true", help="the transposed convolution (conv_transpose)")
    g.add_argument("--ndim", type=int, default=2, choices=(1, 2, 3),
                   help="spatial axes when -i is a single number (default: 2)")


def _add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="transconv: transposed convolution made exact, visible and fast.",
        epilog="Start with 'transconv demo'. Every command has --help.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"transconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("demo", help="the worked example end to end, a real 2x up-sampling, pictures",
                       description="The worked example (4x4 input, 3x3 kernel, the 4x16 C and 16x4 C^T), a real 2x "
                                   "up-sampling of skimage's camera image, and the pictures written to --out.")
    p.add_argument("--out", "-o", default="demo-output", metavar="DIR", help="folder for the pictures (default: %(default)s)")
    p.add_argument("--no-pictures", action="store_true", help="print only, write nothing")
    p.add_argument("--force", action="store_true", help="write into a folder that already holds files")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("shape", help="output size (with the formula) and the geometry solver",
                       description="Output size of a convolution or transposed convolution with the formula filled in; "
                                   "with --to, every kernel/stride/padding/output_padding mapping -i to --to "
                                   "(transposed: checkerboard-free first).")
    _add_geometry(p)
    p.add_argument("--to", metavar="O", help="solve: list geometries mapping input size -i to output size O")
    p.add_argument("--max-kernel", type=int, default=8, help="solver: largest kernel (default: 8)")
    p.add_argument("--max-stride", type=int, default=None, help="solver: largest stride")
    p.add_argument("--max-dilation", type=int, default=1, help="solver: largest dilation (default: 1)")
    p.add_argument("--frameworks", action="store_true",
                   help="also show the output size under PyTorch/TensorFlow/Keras/JAX/ONNX/MXNet/Caffe conventions "
                        "(transposed: with the conv_transpose arguments that reproduce each, from transconv.interop)")
    _add_format(p)
    p.set_defaults(func=cmd_shape)

    p = sub.add_parser("matrix", help="print or save C (conv) or C^T (--transposed)",
                       description="The convolution matrix C (rows: outputs, columns: inputs, C order) or, with "
                                   "--transposed, the transposed convolution's matrix C^T.")
    _add_geometry(p)
    p.add_argument("--kernel-values", metavar="ROWS", help="kernel values, rows separated by ';' "
                   "(default: the worked example's kernel for 3x3, else 1, 2, 3, ...)")
    p.add_argument("-o", "--out", metavar="PATH", help="save instead of printing: .npz (scipy.sparse), .npy, .csv, .txt, "
                   ".png (picture of C and C^T)")
    p.add_argument("--step", type=int, default=0, help="with -o .png: the step whose entries are highlighted")
    p.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    _add_format(p)
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("animate", help="GIF (or still PNG grid) of any configuration",
                       description="Animate a convolution or transposed convolution: the kernel over the (zero-inserted, "
                                   "padded) input, the output filling in, and the matrix with the current row.")
    _add_geometry(p)
    p.add_argument("-o", "--out", default="transconv.gif", metavar="PATH", help=".gif or .png (default: %(default)s)")
    p.add_argument("--view", choices=("direct", "scatter"), default="direct",
                   help="direct: the kernel slides, one output per step; scatter: one input spreads per step")
    p.add_argument("--kernel-values", metavar="ROWS", help="kernel values, rows separated by ';'")
    p.add_argument("--fps", type=float, default=1.5, help="frames per second (default: 1.5)")
    p.add_argument("--no-matrix", action="store_true", help="leave out the matrix panel")
    p.add_argument("--max-frames", type=int, default=400, help="refuse animations longer than this (default: 400)")
    p.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    p.set_defaults(func=cmd_animate)

    p = sub.add_parser("explore", help="write or serve the interactive explorer page",
                       description="The explorer: one self-contained HTML file (no network). Geometry flags preset it.")
    _add_geometry(p, defaults=False)
    p.add_argument("-o", "--out", metavar="PATH", help="where to write the page (default: transconv-explorer.html)")
    p.add_argument("--serve", action="store_true", help="serve it on http://127.0.0.1:PORT/ until Ctrl-C")
    p.add_argument("--port", type=int, default=8000, help="port for --serve (default: 8000; 0 picks a free one)")
    p.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    p.set_defaults(func=cmd_explore)

    for name, (module_name, help_text) in _LAZY.items():
        if importlib.util.find_spec(module_name) is None:  # looks for the file, imports nothing
            help_text += " (not in this version)"
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.set_defaults(lazy=name)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if getattr(args, "lazy", None):
            return _run_lazy(args.lazy, extra)
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except TransconvError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable output, a full disk, a port in use
        print(f"{PROG}: error: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG}: error: out of memory (lower the sizes, or see transconv.set_memory_limit)", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("matplotlib", "PIL", "skimage", "scipy", "tqdm"):
            package = {"PIL": "pillow", "skimage": "scikit-image"}.get(exc.name.split(".")[0], exc.name.split(".")[0])
            print(f"{PROG}: error: this command needs {package}: pip install 'transconv[viz]'", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # --help / --version
        return int(exc.code or 0) if isinstance(exc.code, int) or exc.code is None else 2
