"""Train the learned up-sampler (FSRCNN, Dong et al. 2016) on scikit-image's photographs.

``transconv train --scale 2 --out fsrcnn_x2.npz`` / :func:`train`.  The network works on
luminance (see :mod:`transconv.data`); its last layer is a learned ``ConvTranspose`` k9
with stride ``scale``.  Adam, mean squared error, cosine learning-rate decay; a checkpoint
(model, optimiser, generator state, step) is written atomically every ``eval_every`` steps
and ``--resume`` continues from it bit for bit.

Entry points for the CLI: :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import HELD_OUT_PHOTOS, TRAIN_PHOTOS, PatchSampler, bicubic_resize, load_photo, lr_hr_pair, psnr
from .errors import TransconvError
from .files import atomic_write, check_target
from .spec import checked_int

__all__ = [
    "FSRCNN_SIZES",
    "HEADS",
    "fsrcnn",
    "transpose_geometry",
    "bicubic_kernel",
    "save_model",
    "load_model",
    "psnr",
    "evaluate",
    "train",
    "add_arguments",
    "run",
]

# (d, s, m): feature channels, shrunk channels, mapping layers
FSRCNN_SIZES = {"s": (32, 5, 1), "full": (56, 12, 4)}

# the up-sampling layers the network can end with (compared in docs/checkerboard.md)
HEADS = {
    "k9": "ConvTranspose k9, stride scale (the shipped head)",
    "k3s2": "ConvTranspose k3 s2, padding 1, output_padding 1 (2x only)",
    "k4s2": "ConvTranspose k4 s2, padding 1 (2x only)",
    "resize": "nearest Upsample(scale), then Conv k3 p1 (resize-conv, Odena et al. 2016)",
    "icnr": "Conv k3 p1 to scale**2 channels with init='icnr', then PixelShuffle(scale) (Aitken et al. 2017)",
}
_TRANSPOSED_HEAD_KERNEL = {"k9": 9, "k3s2": 3, "k4s2": 4}


def transpose_geometry(scale: int, kernel: int = 9) -> tuple[int, int]:
    """(padding, output_padding) of a k-tap transposed conv whose output is exactly ``scale`` x its input.

    The padding centres the kernel's taps on the output pixel (``ceil((kernel - scale) / 2)``), so an
    interpolation kernel fits symmetrically; the output padding then makes the size exact.

    Examples
    --------
    >>> transpose_geometry(2), transpose_geometry(3), transpose_geometry(4)
    ((4, 1), (3, 0), (3, 1))
    """
    scale = checked_int("transpose_geometry", "scale", scale, 1)
    padding = -(-(kernel - scale) // 2)
    # output = (n - 1) * scale - 2 * padding + kernel + output_padding = scale * n
    output_padding = scale + 2 * padding - kernel
    if padding < 0 or not 0 <= output_padding < scale:
        raise TransconvError(f"transpose_geometry: no padding gives {scale} x the input with kernel {kernel}")
    return padding, output_padding


def fsrcnn(scale: int = 2, d: int = 32, s: int = 5, m: int = 1, *, seed: int = 0, init: str = "bicubic-path",
           head: str = "k9") -> Any:
    """The FSRCNN network: Conv k5 1->d, PReLU; Conv k1 d->s, PReLU; m x (Conv k3 s->s, PReLU);
    Conv k1 s->d, PReLU; then the up-sampling ``head`` (default ConvTranspose k9 d->1, stride ``scale``).

    Input ``(N, 1, H, W)`` luminance, output ``(N, 1, scale*H, scale*W)``.  ``init`` is
    ``"bicubic-path"`` (see :func:`_bicubic_path_init`) or ``"torch"`` (PyTorch's defaults).
    ``head`` is one of :data:`HEADS`: ``"k9"``, ``"k3s2"``, ``"k4s2"`` (transposed convolutions),
    ``"resize"`` (nearest up-sampling then a k3 convolution) or ``"icnr"`` (sub-pixel convolution).

    Examples
    --------
    >>> net = fsrcnn(2, 8, 4, 1)
    >>> net(np.zeros((1, 1, 5, 7), dtype=np.float32)).shape
    (1, 1, 10, 14)
    >>> [type(layer).__name__ for layer in fsrcnn(2, 8, 4, 1, head="icnr")][-2:]
    ['Conv', 'PixelShuffle']
    """
    if init not in ("bicubic-path", "torch"):
        raise TransconvError(f"fsrcnn: init must be 'bicubic-path' or 'torch', got {init!r}")
    if head not in HEADS:
        raise TransconvError(f"fsrcnn: head must be one of {list(HEADS)}, got {head!r}")
    if head in ("k3s2", "k4s2") and scale != 2:
        raise TransconvError(f"fsrcnn: head {head!r} has stride 2 and needs scale 2, got scale {scale!r}")
    from . import nn

    rng = np.random.default_rng(seed)
    seeds = iter(rng.integers(2**31, size=m + 4).tolist())
    layers = [nn.Conv(1, d, 5, padding=2, seed=next(seeds)), nn.PReLU(d),
              nn.Conv(d, s, 1, seed=next(seeds)), nn.PReLU(s)]
    for _ in range(m):
        layers += [nn.Conv(s, s, 3, padding=1, seed=next(seeds)), nn.PReLU(s)]
    layers += [nn.Conv(s, d, 1, seed=next(seeds)), nn.PReLU(d)]
    head_seed = next(seeds)
    if head in _TRANSPOSED_HEAD_KERNEL:
        kernel = _TRANSPOSED_HEAD_KERNEL[head]
        padding, output_padding = transpose_geometry(scale, kernel)
        layers.append(nn.ConvTranspose(d, 1, kernel, stride=scale, padding=padding, output_padding=output_padding, seed=head_seed))
    elif head == "resize":
        layers += list(nn.resize_conv(d, 1, scale, 3, seed=head_seed))
    else:
        layers += [nn.Conv(d, scale * scale, 3, padding=1, init="icnr", icnr_scale=scale, seed=head_seed), nn.PixelShuffle(scale)]
    model = nn.Sequential(*layers)
    if init == "bicubic-path":
        _bicubic_path_init(model, scale, head)
    return model


def _interpolation_weights(distance: np.ndarray, scale: int) -> np.ndarray:
    """Pillow's bicubic kernel (a = -0.5) at ``scale`` 2, the bilinear triangle at other scales."""
    a, x = -0.5, np.abs(distance)
    if scale == 2:
        return np.where(x < 1, (a + 2) * x**3 - (a + 3) * x**2 + 1, np.where(x < 2, a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a, 0.0))
    return np.maximum(1 - x, 0.0)


def bicubic_kernel(scale: int, padding: int, kernel: int = 9) -> np.ndarray:
    """The 1-d taps of a stride-``scale`` transposed conv that up-samples like Pillow's bicubic
    (scale 2) or bilinear (larger scales, whose cubic would not fit in the kernel).

    Tap ``t`` links input pixel ``i`` to output pixel ``scale*i - padding + t``, whose centre lies
    ``(t - padding + 0.5) / scale - 0.5`` input pixels from ``i``; the interpolation kernel is read
    there and each output phase is normalised to sum to one.

    Examples
    --------
    >>> np.round(bicubic_kernel(2, 4), 4).tolist()
    [0.0, -0.0234, -0.0703, 0.2266, 0.8672, 0.8672, 0.2266, -0.0703, -0.0234]
    >>> bicubic_kernel(4, 3).tolist()
    [0.0, 0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125]
    """
    k = _interpolation_weights((np.arange(kernel) - padding + 0.5) / scale - 0.5, scale)
    for phase in range(scale):
        k[phase::scale] /= k[phase::scale].sum()
    return k


def subpixel_kernels(scale: int, kernel: int = 3) -> np.ndarray:
    """``(scale, kernel)`` 1-d taps of a sub-pixel convolution (stride 1, ``padding = kernel // 2``,
    then ``PixelShuffle(scale)``) that up-samples like :func:`bicubic_kernel`: row ``r`` computes output
    phase ``r``, whose centre lies ``(r + 0.5) / scale - 0.5`` input pixels from the centre tap's.

    Examples
    --------
    >>> np.round(subpixel_kernels(2), 4).tolist()
    [[0.2214, 0.8473, -0.0687], [-0.0687, 0.8473, 0.2214]]
    """
    offsets = np.arange(kernel) - kernel // 2
    k = np.stack([_interpolation_weights(offsets - ((r + 0.5) / scale - 0.5), scale) for r in range(scale)])
    return k / k.sum(axis=1, keepdims=True)


def _bicubic_path_init(model: Any, scale: int, head: str = "k9") -> None:
    """Channel 0 of every layer passes the input through unchanged and the up-sampling layer reads it
    with the bicubic kernel, so the untrained network starts near bicubic; the other channels keep
    their initialisation (PyTorch's; ICNR's for the sub-pixel head), the up-sampling layer's scaled by 0.1.
    Training starts near bicubic instead of far below it (docs/upsampling.md has the measurement).  The resize head's channel 0 gets [1, 2, 1] / 4, which after
    nearest up-sampling by 2 is bilinear interpolation."""
    convs = [layer for layer in model if hasattr(layer, "kernel_size")]
    for layer in convs[:-1]:
        w, b = layer.params["weight"], layer.params["bias"]
        w[0] = 0
        w[(0, 0) + tuple(k // 2 for k in layer.kernel_size)] = 1
        b[0] = 0
    up = convs[-1]
    up.params["weight"] *= 0.1
    up.params["bias"][...] = 0
    if head in _TRANSPOSED_HEAD_KERNEL:
        kernel = _TRANSPOSED_HEAD_KERNEL[head]
        k = bicubic_kernel(scale, transpose_geometry(scale, kernel)[0], kernel)
        up.params["weight"][0, 0] = np.outer(k, k)
    elif head == "resize":
        k = np.array([0.25, 0.5, 0.25])
        up.params["weight"][0, 0] = np.outer(k, k)
    else:
        k = subpixel_kernels(scale, up.kernel_size[0])
        for row in range(scale):
            for col in range(scale):
                up.params["weight"][row * scale + col, 0] = np.outer(k[row], k[col])


def _atomic_savez(path: Path, arrays: dict) -> None:
    with atomic_write(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)


def _json_array(obj: Any) -> np.ndarray:
    return np.array(json.dumps(obj))


def save_model(model: Any, path: str | os.PathLike, fsrcnn_config: dict, metadata: dict | None = None) -> None:
    """Save an FSRCNN in ``transconv.nn``'s file format (so ``tc.nn.load`` reads it), its
    architecture JSON also holding ``"fsrcnn"`` (scale, d, s, m) and ``"metadata"`` (how it was trained).

    Examples
    --------
    >>> import tempfile, os
    >>> net = fsrcnn(2, 8, 4, 1)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> save_model(net, path, {"scale": 2, "d": 8, "s": 4, "m": 1}, {"seed": 0})
    >>> load_model(path)[1]["scale"]
    2
    """
    from .nn.io import architecture, write_archive

    arch = dict(architecture(model), fsrcnn=fsrcnn_config, metadata=metadata or {})
    write_archive(path, model.state_dict(), arch, op="save_model", overwrite=True)


def load_model(path: str | os.PathLike) -> tuple[Any, dict, dict]:
    """Load a model written by :func:`save_model`: ``(model, fsrcnn_config, metadata)``.

    The model is read by ``tc.nn.load`` (``allow_pickle=False``, names and shapes checked).
    """
    from . import nn

    path = Path(path)
    model = nn.load(path)
    with np.load(path, allow_pickle=False) as f:
        arch = json.loads(str(f["__architecture__"]))
    if not isinstance(arch.get("fsrcnn"), dict) or "scale" not in arch["fsrcnn"]:
        raise TransconvError(f"load_model: {str(path)!r} is a transconv.nn model but not an up-sampler (no 'fsrcnn' entry)")
    return model, arch["fsrcnn"], arch.get("metadata", {})


def _eval_pairs(scale: int, quick: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = [lr_hr_pair(load_photo(name), scale) for name in HELD_OUT_PHOTOS]
    if quick:  # a centre crop is enough to see that a quick run learns
        pairs = [(lr[:24, :24], hr[: 24 * scale, : 24 * scale]) for lr, hr in pairs[:1]]
    return pairs


def evaluate(model: Any, pairs: list[tuple[np.ndarray, np.ndarray]], scale: int) -> tuple[float, float]:
    """Mean Y PSNR (border ``scale`` cropped) of the model and of Pillow bicubic over ``pairs``."""
    ours, bicubic = [], []
    for lr, hr in pairs:
        sr = np.clip(model.forward(lr[None, None])[0, 0], 0, 1)
        ours.append(psnr(sr, hr, scale))
        bicubic.append(psnr(np.clip(bicubic_resize(lr, hr.shape), 0, 1), hr, scale))
    return float(np.mean(ours)), float(np.mean(bicubic))


def _save_checkpoint(path: Path, config: dict, model: Any, opt: Any, rng: np.random.Generator, step: int,
                     losses: list, val: dict, wall: float) -> None:
    """Everything a resumed run needs to continue bit for bit: weights, optimiser, generator, history."""
    arrays = {f"model.{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"opt.{k}": np.asarray(v) for k, v in opt.state_dict().items()})
    arrays.update(config=_json_array(config), rng=_json_array(rng.bit_generator.state), step=np.array(step),
                  losses=np.array(losses), val=_json_array(val), wall=np.array(wall))
    _atomic_savez(path, arrays)


def _load_checkpoint(path: Path, config: dict, model: Any, opt: Any, rng: np.random.Generator) -> tuple:
    """Restore what :func:`_save_checkpoint` wrote into ``model``, ``opt`` and ``rng``;
    ``(step, losses, val, wall)``.  A checkpoint made with other settings is refused."""
    with np.load(path, allow_pickle=False) as f:
        saved = {k: f[k] for k in f.files}
    if json.loads(str(saved["config"])) != config:
        raise TransconvError(f"train: checkpoint {str(path)!r} was made with other settings: {str(saved['config'])}")
    model.load_state_dict({k[6:]: v for k, v in saved.items() if k.startswith("model.")})
    opt.load_state_dict({k[4:]: v for k, v in saved.items() if k.startswith("opt.")})
    rng.bit_generator.state = json.loads(str(saved["rng"]))
    val = {int(k): v for k, v in json.loads(str(saved["val"])).items()}
    return int(saved["step"]), saved["losses"].tolist(), val, float(saved["wall"])


def train(
    scale: int = 2,
    *,
    steps: int | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    quick: bool = False,
    progress: bool = True,
    force: bool = False,
    size: str = "s",
    patch: int | None = None,
    batch: int = 16,
    lr: float = 2e-3,
    eval_every: int | None = None,
    command: str | None = None,
    head: str = "k9",
    init: str = "bicubic-path",
) -> dict:
    """Train FSRCNN for ``scale`` x up-sampling; returns a summary and writes the model to ``out``.

    Parameters
    ----------
    scale : up-sampling factor (2, 3 or 4).
    steps : Adam steps (default 3000; 30 with ``quick``).
    seed : seeds the initial weights and the patch generator.
    out : the model file (``.npz``); its checkpoint is ``out`` + ``.ckpt.npz``. ``None`` writes nothing.
    resume : continue from the checkpoint (bit for bit the same as an uninterrupted run).
    quick : few steps, 8-pixel patches, two photographs (for tests).
    force : overwrite an existing ``out``.
    size : ``"s"`` (FSRCNN-s: d=32, s=5, m=1) or ``"full"`` (d=56, s=12, m=4).
    patch : LR patch side (default 32; 8 with ``quick``).
    eval_every : steps between validations and checkpoints (default 250; 10 with ``quick``).
    head : the up-sampling layer, one of :data:`HEADS` (default ``"k9"``, the shipped models'
        ConvTranspose k9; the others are compared in ``docs/checkerboard.md``).
    init : ``"bicubic-path"`` (default, see :func:`fsrcnn`) or ``"torch"`` (PyTorch's initialisation).

    Returns
    -------
    dict with ``model``, ``losses`` (per step), ``val_psnr`` (step -> dB), ``bicubic_psnr``,
    ``wall_seconds`` and ``metadata`` (what the model file records).

    Examples
    --------
    >>> r = train(2, steps=4, quick=True, progress=False, eval_every=2)
    >>> len(r["losses"]), sorted(r["val_psnr"])
    (4, [2, 4])
    """
    if scale not in (2, 3, 4):
        raise TransconvError(f"train: scale must be 2, 3 or 4, got {scale!r}")
    if size not in FSRCNN_SIZES:
        raise TransconvError(f"train: size must be one of {sorted(FSRCNN_SIZES)}, got {size!r}")
    if head not in HEADS:
        raise TransconvError(f"train: head must be one of {list(HEADS)}, got {head!r}")
    if head in ("k3s2", "k4s2") and scale != 2:
        raise TransconvError(f"train: head {head!r} has stride 2 and needs scale 2, got scale {scale!r}")
    if init not in ("bicubic-path", "torch"):
        raise TransconvError(f"train: init must be 'bicubic-path' or 'torch', got {init!r}")
    steps = int(steps if steps is not None else (30 if quick else 3000))
    patch = int(patch if patch is not None else (8 if quick else 32))
    eval_every = int(eval_every if eval_every is not None else (10 if quick else 250))
    if steps < 1 or patch < 4 or batch < 1 or eval_every < 1:
        raise TransconvError(f"train: steps ({steps}), batch ({batch}), eval_every ({eval_every}) must be >= 1 and patch ({patch}) >= 4")
    out_path = Path(out) if out is not None else None
    ckpt_path = out_path.with_name(out_path.name + ".ckpt.npz") if out_path is not None else None
    if out_path is not None:
        check_target("train", out_path, overwrite=force or resume, how="pass force=True (--force) to overwrite it")
    if resume and (ckpt_path is None or not ckpt_path.is_file()):
        raise TransconvError(f"train: resume needs a checkpoint, {str(ckpt_path)!r} does not exist")

    from . import nn

    d, s, m = FSRCNN_SIZES[size]
    photos = ("camera", "text") if quick else TRAIN_PHOTOS
    config = {"scale": scale, "d": d, "s": s, "m": m, "seed": seed, "steps": steps, "patch": patch, "batch": batch,
              "lr": lr, "loss": "mse", "init": init, "schedule": "cosine to lr/100", "eval_every": eval_every, "quick": quick,
              "train_photos": list(photos), "held_out_photos": list(HELD_OUT_PHOTOS)}
    architecture = {"scale": scale, "d": d, "s": s, "m": m}
    if head != "k9":  # the default head is not recorded, so default files and checkpoints stay as they were
        config["head"] = architecture["head"] = head
    model = fsrcnn(scale, d, s, m, seed=seed, head=head, init=init)
    opt = nn.Adam(model, lr=lr)
    rng = np.random.default_rng(seed)
    start, losses, val, wall_before = _load_checkpoint(ckpt_path, config, model, opt, rng) if resume else (0, [], {}, 0.0)

    sampler = PatchSampler(scale, patch, photos)
    pairs = _eval_pairs(scale, quick)
    bicubic = evaluate(model, pairs, scale)[1]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc=f"train x{scale}", unit="step", file=sys.stderr)
    t0 = time.perf_counter()
    for step in range(start + 1, steps + 1):
        lr_batch, hr_batch = sampler.batch(rng, batch)
        opt.lr = lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps)))
        opt.zero_grad()
        loss, grad = nn.mse_loss(model.forward(lr_batch), hr_batch)
        model.backward(grad)
        opt.step()
        losses.append(loss)
        if step % eval_every == 0 or step == steps:
            val[step] = evaluate(model, pairs, scale)[0]
            if ckpt_path is not None:
                _save_checkpoint(ckpt_path, config, model, opt, rng, step, losses, val, wall_before + time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
            if step % 10 == 0 or step in val:
                last = max(val) if val else None
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.2e}",
                                val_psnr=f"{val[last]:.2f}" if last else "-", bicubic=f"{bicubic:.2f}")
    if bar is not None:
        bar.close()
    wall = wall_before + time.perf_counter() - t0
    final = val[max(val)] if val else evaluate(model, pairs, scale)[0]
    metadata = dict(config, command=command or f"transconv.train({scale}, steps={steps}, seed={seed})",
                    backend="transconv", wall_seconds=round(wall, 1),
                    load_average=[round(x, 2) for x in os.getloadavg()], val_psnr=round(final, 3),
                    val_bicubic_psnr=round(bicubic, 3))
    if out_path is not None:
        save_model(model, out_path, architecture, metadata)
    return {"model": model, "losses": losses, "val_psnr": val, "bicubic_psnr": bicubic, "wall_seconds": wall,
            "metadata": metadata}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", type=int, default=2, choices=(2, 3, 4), help="up-sampling factor (default: 2)")
    parser.add_argument("--out", "-o", metavar="PATH", default=None, help="model file to write (default: fsrcnn_xS.npz)")
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (default 3000; quick 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the patches (default: 0)")
    parser.add_argument("--size", choices=sorted(FSRCNN_SIZES), default="s",
                        help="s: FSRCNN-s (d=32, s=5, m=1); full: d=56, s=12, m=4 (default: s)")
    parser.add_argument("--patch", type=int, default=None, help="LR patch side (default 32; quick 8)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-decayed to 1/100 (default 2e-3)")
    parser.add_argument("--head", choices=list(HEADS), default="k9",
                        help="up-sampling layer: k9 (ConvTranspose k9, default), k3s2, k4s2, resize (resize-conv), "
                             "icnr (sub-pixel conv); see docs/checkerboard.md")
    parser.add_argument("--init", choices=("bicubic-path", "torch"), default="bicubic-path",
                        help="bicubic-path: the untrained net is close to bicubic (default); torch: PyTorch's initialisation")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between validation and checkpoint (default 250)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT.ckpt.npz")
    parser.add_argument("--quick", action="store_true", help="a few steps on tiny patches (for tests)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    out = args.out or f"fsrcnn_x{args.scale}.npz"
    command = "transconv train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["train"] else None
    try:
        r = train(args.scale, steps=args.steps, seed=args.seed, out=out, resume=args.resume, quick=args.quick,
                  progress=not args.no_progress, force=args.force, size=args.size, patch=args.patch, lr=args.lr,
                  eval_every=args.eval_every, command=command or _command_line(args, out), head=args.head,
                  init=args.init)
    except TransconvError as exc:
        print(f"transconv train: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {r['metadata']['steps']} steps in {r['wall_seconds']:.0f} s; held-out Y PSNR "
          f"{r['metadata']['val_psnr']:.2f} dB (bicubic {r['bicubic_psnr']:.2f} dB)")
    return 0


def _command_line(args: argparse.Namespace, out: str) -> str:
    parts = ["transconv train", f"--scale {args.scale}", f"--seed {args.seed}", f"--size {args.size}", f"--out {out}"]
    parts += [f"--{k} {v}" for k, v in (("steps", args.steps), ("patch", args.patch), ("eval-every", args.eval_every), ("lr", args.lr)) if v is not None]
    parts += [f"--head {args.head}"] if args.head != "k9" else []
    parts += [f"--init {args.init}"] if args.init != "bicubic-path" else []
    return " ".join(parts + (["--quick"] if args.quick else []))


def main(argv: list[str] | None = None) -> int:
    """``python -m transconv.train``: the same as ``transconv train``."""
    from .cli import main as cli_main

    return cli_main(["train"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
