"""The checkerboard study: FSRCNN-s at 2x with five up-sampling layers, same recipe, seed and batches.

Heads (``transconv train --head``): ConvTranspose k9 s2 (the shipped one), ConvTranspose k3 s2,
ConvTranspose k4 s2, resize-conv (nearest up-sampling then Conv k3) and sub-pixel conv with ICNR
initialisation (Conv k3 to 4 channels then PixelShuffle(2)).  Each is trained by ``tc.train`` with
the shipped recipe; the script reports held-out Y PSNR/SSIM and two checkerboard measures, and draws
``docs/images/checkerboard_study.png``: per head, the overlap map of its equivalent transposed
convolution, the network's response to a flat grey input before and after training, and a zoomed
crop of a held-out photograph's output and error.  See docs/checkerboard.md.

    python benchmarks/checkerboard_study.py --steps 2000 --picture docs/images/checkerboard_study.png
    python benchmarks/checkerboard_study.py --heads k9,icnr   # train a subset (models are kept)
    python benchmarks/checkerboard_study.py --reuse ...      # table and picture from the kept models
    python benchmarks/checkerboard_study.py --tiny --picture /tmp/c.png   # a few steps on crops (tests)
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
from pathlib import Path

import numpy as np

import transconv as tc
from transconv.data import HELD_OUT_PHOTOS, load_photo, lr_hr_pair

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark, also when loaded by path
from bench_upsample_quality import ssim  # noqa: E402  (the quality benchmark's SSIM, the same measure)

train_module = importlib.import_module("transconv.train")  # tc.train is the function
HEADS = list(train_module.HEADS)
LABELS = {"k9": "ConvTranspose k9 s2", "k3s2": "ConvTranspose k3 s2", "k4s2": "ConvTranspose k4 s2",
          "resize": "resize-conv (nearest + k3)", "icnr": "sub-pixel k3 + ICNR"}
SCALE = 2
FLAT_LEVEL = 0.5  # grey level of the flat test input
MODELS = Path(__file__).resolve().parent / "results" / "checkerboard"


def equivalent_transpose(model, scale: int = SCALE):
    """The network's up-sampling head as one transposed convolution from its input features.

    Returns ``(weight, stride, padding, output_padding, phase_bias)``: ``tc.conv_transpose(features,
    weight, None, stride, padding, output_padding)`` plus ``phase_bias`` tiled over the output equals the
    head.  Nearest up-sampling by ``s`` then a k-tap conv is a transposed conv with the kernel convolved
    with an ``s``-box (kernel ``k + s - 1``); a k-tap conv to ``s**2`` channels then PixelShuffle(s) is
    ``tc.nn.pixelshuffle_to_convtranspose`` (kernel ``s*k``) plus a bias per phase.
    """
    layers = list(model)
    up = [layer for layer in layers if hasattr(layer, "kernel_size")][-1]
    w, b = up.params["weight"], up.params["bias"]
    kind = type(layers[-1]).__name__
    if type(up).__name__ == "ConvTranspose":
        return w, up.stride[0], up.padding[0], up.output_padding[0], np.full((scale, scale), b[0])
    k = up.kernel_size[0]
    if kind == "Conv":  # Upsample(nearest) then Conv, padding k // 2
        box = np.ones((scale, scale), dtype=w.dtype)  # a stride-1 transposed conv of two arrays is their full convolution
        weight = np.stack([tc.conv_transpose(np.ascontiguousarray(w[0, c, ::-1, ::-1]), box) for c in range(w.shape[1])])[:, None]
        return weight.astype(w.dtype), scale, k // 2, scale + 2 * (k // 2) - (k + scale - 1), np.full((scale, scale), b[0])
    # Conv then PixelShuffle: tc.nn's converter, with the per-phase bias (which it refuses) kept aside
    conv = copy.deepcopy(up)
    conv.params["bias"][...] = 0
    layer = tc.nn.pixelshuffle_to_convtranspose(conv, layers[-1])
    return layer.weight, layer.stride[0], layer.padding[0], layer.output_padding[0], b.reshape(scale, scale)


def head_features(model, x: np.ndarray) -> np.ndarray:
    """The features entering the up-sampling head (the network without its head)."""
    layers = list(model)
    first = [i for i, layer in enumerate(layers) if type(layer).__name__ in ("ConvTranspose", "Upsample")]
    cut = first[-1] if first else len(layers) - 2  # the sub-pixel head is Conv + PixelShuffle
    for layer in layers[:cut]:
        x = layer.forward(x)
    return x


def overlap(model, lr_side: int = 6, scale: int = SCALE) -> np.ndarray:
    """``tc.overlap_map`` of the head's equivalent transposed convolution on an ``lr_side`` square."""
    weight, stride, padding, output_padding, _ = equivalent_transpose(model, scale)
    return tc.overlap_map((lr_side, lr_side), weight.shape[-2:], stride=stride, padding=padding, output_padding=output_padding)


def overlap_phases(model, scale: int = SCALE) -> str:
    """Taps reaching an interior output pixel at each phase, per axis (``tc.overlap_diagnosis``), e.g. ``2/1``."""
    weight, stride, padding, output_padding, _ = equivalent_transpose(model, scale)
    diagnosis = tc.overlap_diagnosis((12, 12), weight.shape[-2:], stride=stride, padding=padding, output_padding=output_padding)
    return "/".join(map(str, diagnosis.phase_counts[0]))


def flat_response(model, side: int = 24) -> np.ndarray:
    """The network's output on a flat grey LR square, interior only (the zero-padded border cut)."""
    y = model.forward(np.full((1, 1, side, side), FLAT_LEVEL, dtype=np.float32))[0, 0]
    cut = SCALE * 6
    return y[cut:-cut, cut:-cut]


def phase_means(residual: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Mean of ``residual`` over each of the ``scale x scale`` output phases."""
    h, w = (residual.shape[0] // scale) * scale, (residual.shape[1] // scale) * scale
    r = residual[:h, :w].reshape(h // scale, scale, w // scale, scale)
    return r.mean(axis=(0, 2))


def held_out_pairs(tiny: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pairs = {name: lr_hr_pair(load_photo(name), SCALE) for name in HELD_OUT_PHOTOS}
    if tiny:  # a central crop of each photograph keeps the tiny mode fast
        pairs = {n: (lr[40:88, 40:88], hr[80:176, 80:176]) for n, (lr, hr) in pairs.items()}
    return pairs


def measure(model, pairs) -> dict:
    """Held-out Y PSNR / SSIM (border ``SCALE`` cropped) and the checkerboard measures (8-bit grey levels)."""
    row = {"photos": {}}
    spreads = []
    for name, (lr, hr) in pairs.items():
        sr = np.clip(model.forward(lr[None, None])[0, 0], 0, 1)
        row["photos"][name] = (train_module.psnr(sr, hr, SCALE), ssim(sr, hr, SCALE))
        b = SCALE * 4
        spreads.append(np.ptp(phase_means((sr - hr)[b:-b, b:-b])))
    row["psnr"] = float(np.mean([p for p, _ in row["photos"].values()]))
    row["ssim"] = float(np.mean([s for _, s in row["photos"].values()]))
    row["phase_bias"] = 255 * float(np.mean(spreads))
    row["flat_ptp"] = 255 * float(np.ptp(flat_response(model)))
    return row


def bicubic_row(pairs) -> dict:
    row = {"photos": {}}
    for name, (lr, hr) in pairs.items():
        bic = np.clip(train_module.bicubic_resize(lr, hr.shape), 0, 1)
        row["photos"][name] = (train_module.psnr(bic, hr, SCALE), ssim(bic, hr, SCALE))
    row["psnr"] = float(np.mean([p for p, _ in row["photos"].values()]))
    row["ssim"] = float(np.mean([s for _, s in row["photos"].values()]))
    return row


def head_parameters(model) -> int:
    layers = list(model)
    up = [layer for layer in layers if hasattr(layer, "kernel_size")][-1]
    return int(sum(v.size for v in up.params.values()))


def table(rows: dict, bicubic: dict) -> str:
    photos = list(bicubic["photos"])
    lines = ["| head | head params | overlap (interior, per axis) | " + " | ".join(photos)
             + " | mean PSNR | mean SSIM | flat p-p init -> trained | phase bias | train time |",
             "|---|---|---|" + "---|" * (len(photos) + 5)]
    bic_cells = " | ".join(f"{bicubic['photos'][p][0]:.2f} / {bicubic['photos'][p][1]:.4f}" for p in photos)
    lines.append(f"| bicubic (Pillow) | | | {bic_cells} | {bicubic['psnr']:.2f} | {bicubic['ssim']:.4f} | | | |")
    for head, r in rows.items():
        cells = " | ".join(f"{r['photos'][p][0]:.2f} / {r['photos'][p][1]:.4f}" for p in photos)
        lines.append(f"| {LABELS[head]} | {r['params']} | {r['overlap']} | {cells} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['init_flat_ptp']:.2f} -> {r['flat_ptp']:.2f} | {r['phase_bias']:.3f} | {r['wall']:.0f} s |")
    return "\n".join(lines)


def smooth_window(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` square of ``hr`` with the least gradient energy (a flat area,
    where checkerboards show), on a grid of half-window steps away from the border."""
    gy, gx = np.gradient(hr.astype(np.float64))
    energy = gy**2 + gx**2
    best, corner = np.inf, (0, 0)
    step = max(size // 2, 1)
    for top in range(SCALE * 8, hr.shape[0] - size - SCALE * 8 + 1, step):
        for left in range(SCALE * 8, hr.shape[1] - size - SCALE * 8 + 1, step):
            e = energy[top : top + size, left : left + size].mean()
            if e < best:
                best, corner = e, (top, left)
    return corner


def picture(path: str, trained: dict, initial: dict, pairs, init: str = "bicubic-path", photo: str = "coffee", crop: int = 40) -> None:
    """Per head: overlap map, flat response at init and trained, held-out crop and its error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lr, hr = pairs[photo]
    crop = min(crop, hr.shape[0] // 2, hr.shape[1] // 2)
    top, left = smooth_window(hr, crop)
    flats = {h: (flat_response(initial[h]), flat_response(trained[h])) for h in trained}
    outputs = {h: np.clip(m.forward(lr[None, None])[0, 0], 0, 1) for h, m in trained.items()}
    window = (slice(top, top + crop), slice(left, left + crop))
    error = max(np.abs(o - hr)[window].max() for o in outputs.values()) or 1.0
    grey = hr[window]
    lo, hi = float(grey.min()), float(grey.max())
    pad = max(hi - lo, 1e-3) * 0.1

    heads = list(trained)
    fig, axes = plt.subplots(len(heads), 5, figsize=(13, 3.0 * len(heads) + 0.9), squeeze=False)
    for row, head in zip(axes, heads):
        phases = overlap_phases(trained[head])
        row[0].imshow(overlap(trained[head]), cmap="viridis", interpolation="nearest")
        row[0].set_title(f"{LABELS[head]}\noverlap map, inside {phases} taps", fontsize=9)
        for ax, flat, when in ((row[1], flats[head][0], "init"), (row[2], flats[head][1], "trained")):
            # each panel its own range, at least half a grey level, so float noise is not blown up
            deviation = max(float(np.abs(flat - flat.mean()).max()), 0.5 / 255)
            ax.imshow(flat - flat.mean(), cmap="RdBu_r", vmin=-deviation, vmax=deviation, interpolation="nearest")
            ax.set_title(f"flat grey in, {when}\npeak-to-peak {255 * np.ptp(flat):.2f}/255", fontsize=9)
        row[3].imshow(outputs[head][window], cmap="gray", vmin=lo - pad, vmax=hi + pad, interpolation="nearest")
        row[3].set_title(f"{photo} (held out), output\n{train_module.psnr(outputs[head], hr, SCALE):.2f} dB", fontsize=9)
        row[4].imshow(outputs[head][window] - grey, cmap="RdBu_r", vmin=-error, vmax=error, interpolation="nearest")
        row[4].set_title("output - original", fontsize=9)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"2x up-sampling heads, same network and training ({init} initialisation). Columns 2-3: output for a flat {FLAT_LEVEL:g} grey input "
                 f"minus its mean (each panel its own colour range);\ncolumns 4-5: the flattest {crop}x{crop} crop of {photo} "
                 f"(grey range stretched) and its error (colour range +-{255 * error:.1f}/255)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_head(head: str, args, models: Path | None):
    suffix = "" if args.init == "bicubic-path" else f"_{args.init}"
    path = models / f"checkerboard_x{SCALE}_{head}{suffix}.npz" if models is not None else None
    if args.reuse and path is not None and path.is_file():
        model, _, meta = train_module.load_model(path)
        if (meta.get("steps"), meta.get("seed"), meta.get("head", "k9"), meta.get("init")) != (args.steps, args.seed, head, args.init):
            raise SystemExit(f"{path} was trained with other settings (steps {meta.get('steps')}, seed {meta.get('seed')})")
        curve = {}
        checkpoint = path.with_name(path.name + ".ckpt.npz")
        if checkpoint.is_file():
            with np.load(checkpoint, allow_pickle=False) as f:
                curve = {int(k): v for k, v in json.loads(str(f["val"])).items()}
        return model, meta, curve
    r = tc.train(SCALE, steps=args.steps, seed=args.seed, out=path, force=True, quick=args.tiny,
                 progress=not args.no_progress, eval_every=args.eval_every, head=head, init=args.init,
                 command=f"python benchmarks/checkerboard_study.py --heads {head} --steps {args.steps} --seed {args.seed} --init {args.init}")
    return r["model"], r["metadata"], r["val_psnr"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="Adam steps per head (default 2000; tiny 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", choices=("bicubic-path", "torch"), default="bicubic-path",
                        help="initialisation of every network (default: the shipped recipe's bicubic path)")
    parser.add_argument("--heads", default=",".join(HEADS), help=f"comma-separated subset of {HEADS}")
    parser.add_argument("--models", metavar="DIR", default=None,
                        help=f"where the trained models are kept (default {MODELS}; tiny: not kept)")
    parser.add_argument("--reuse", action="store_true", help="load the kept models instead of training")
    parser.add_argument("--eval-every", type=int, default=None, help="steps between validations (default 250)")
    parser.add_argument("--picture", metavar="PATH", help="write the picture (needs all heads measured)")
    parser.add_argument("--json", metavar="PATH", help="write the measurements as JSON")
    parser.add_argument("--tiny", action="store_true", help="3 steps on 8x8 patches, crops of the held-out photos")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    heads = [h.strip() for h in args.heads.split(",") if h.strip()]
    unknown = [h for h in heads if h not in HEADS]
    if unknown or not heads:
        parser.error(f"--heads: unknown {unknown}; choose from {HEADS}")
    args.steps = args.steps if args.steps is not None else (3 if args.tiny else 2000)
    models = Path(args.models) if args.models else (None if args.tiny else MODELS)
    if models is not None:
        models.mkdir(parents=True, exist_ok=True)

    pairs = held_out_pairs(args.tiny)
    trained, initial, rows = {}, {}, {}
    for head in heads:
        model, meta, curve = run_head(head, args, models)
        trained[head] = model
        initial[head] = train_module.fsrcnn(SCALE, seed=args.seed, head=head, init=args.init)
        rows[head] = dict(measure(model, pairs), params=head_parameters(model), wall=float(meta.get("wall_seconds", 0.0)),
                          overlap=overlap_phases(model), init_flat_ptp=255 * float(np.ptp(flat_response(initial[head]))),
                          load_average=meta.get("load_average"), val_psnr=curve)
        print(f"{head}: {rows[head]['psnr']:.2f} dB, {rows[head]['wall']:.0f} s", file=sys.stderr)
    bicubic = bicubic_row(pairs)
    print(f"Y PSNR (dB) / SSIM at {SCALE}x on the held-out photographs, {args.steps} steps, seed {args.seed}, init {args.init}")
    print(table(rows, bicubic))
    if args.json:
        Path(args.json).write_text(json.dumps({"steps": args.steps, "seed": args.seed, "init": args.init, "bicubic": bicubic, "heads": rows}, indent=1))
    if args.picture:
        picture(args.picture, trained, initial, pairs, args.init)
        print(f"wrote {args.picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
