"""Quality of the shipped up-sampler on the held-out photographs, against Pillow's interpolations.

Y-channel PSNR and SSIM (scikit-image's metrics, data range 1, ``scale`` pixels of border
cropped) per held-out photograph, for nearest, bilinear, bicubic (Pillow, on the float Y) and
the shipped FSRCNN.  ``--backend torch`` also trains the same network with the same recipe
(same initial weights, same batches, same schedule) in PyTorch and reports it beside ours, to
show that the two trainings agree.  ``--picture PATH`` writes the side-by-side crop.

    python benchmarks/bench_upsample_quality.py --scale 2 --scale 4 [--backend torch] [--picture P]
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time

import numpy as np

import transconv as tc
from transconv.data import HELD_OUT_PHOTOS, PatchSampler, load_photo, lr_hr_pair, psnr
from transconv.train import load_model
from transconv.upsample import shipped_model_path


def pillow_resize(y: np.ndarray, shape: tuple[int, int], method: str) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(y, dtype=np.float32), mode="F")
    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[method]
    return np.clip(np.asarray(img.resize((shape[1], shape[0]), resample), dtype=np.float32), 0, 1)


def ssim(a: np.ndarray, b: np.ndarray, border: int) -> float:
    from skimage.metrics import structural_similarity

    a, b = a[border:-border, border:-border], b[border:-border, border:-border]
    return float(structural_similarity(a.astype(np.float64), b.astype(np.float64), data_range=1.0))


def torch_twin_trained(scale: int, meta: dict):
    """The shipped network's architecture and recipe trained in PyTorch (float32, eager autograd)."""
    import torch

    train = importlib.import_module("transconv.train")
    net = train.fsrcnn(scale, meta["d"], meta["s"], meta["m"], seed=meta["seed"])
    twin = tc.nn.to_torch(net)
    opt = torch.optim.Adam(twin.parameters(), lr=meta["lr"])
    rng = np.random.default_rng(meta["seed"])
    sampler = PatchSampler(scale, meta["patch"], tuple(meta["train_photos"]))
    steps = meta["steps"]
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        lr_batch, hr_batch = sampler.batch(rng, meta["batch"])
        for group in opt.param_groups:
            group["lr"] = meta["lr"] * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps)))
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(twin(torch.from_numpy(lr_batch)), torch.from_numpy(hr_batch))
        loss.backward()
        opt.step()
    print(f"torch twin x{scale}: {steps} steps in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    def forward(y):
        with torch.no_grad():
            return twin(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))[None, None])[0, 0].numpy()

    return forward


def measure(scale: int, backend: str) -> list[dict]:
    net, _, meta = load_model(shipped_model_path(scale))
    methods = {m: (lambda lr, shape, m=m: pillow_resize(lr, shape, m)) for m in ("nearest", "bilinear", "bicubic")}
    methods["fsrcnn (transconv)"] = lambda lr, shape: np.clip(net.forward(lr[None, None])[0, 0], 0, 1)
    if backend == "torch":
        twin = torch_twin_trained(scale, meta)
        methods["fsrcnn (torch twin)"] = lambda lr, shape: np.clip(twin(lr), 0, 1)
    rows = []
    for name in HELD_OUT_PHOTOS:
        lr, hr = lr_hr_pair(load_photo(name), scale)
        for method, fn in methods.items():
            sr = fn(lr, hr.shape)
            rows.append({"scale": scale, "photo": name, "method": method, "psnr": psnr(sr, hr, scale), "ssim": ssim(sr, hr, scale)})
    return rows


def table(rows: list[dict]) -> str:
    photos = list(dict.fromkeys(r["photo"] for r in rows))
    lines = ["| scale | method | " + " | ".join(photos) + " | mean PSNR | mean SSIM |",
             "|---|---|" + "---|" * (len(photos) + 2)]
    for scale in dict.fromkeys(r["scale"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows if r["scale"] == scale):
            sel = {r["photo"]: r for r in rows if r["scale"] == scale and r["method"] == method}
            cells = " | ".join(f"{sel[p]['psnr']:.2f} / {sel[p]['ssim']:.4f}" for p in photos)
            lines.append(f"| {scale}x | {method} | {cells} | {np.mean([r['psnr'] for r in sel.values()]):.2f} | "
                         f"{np.mean([r['ssim'] for r in sel.values()]):.4f} |")
    return "\n".join(lines)


def picture(path: str, scale: int = 2, photo: str = "chelsea", box: tuple[int, int, int] = (60, 150, 96)) -> None:
    """HR crop, bicubic and ours side by side, each zoomed 4x with nearest neighbours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lr, hr = lr_hr_pair(load_photo(photo), scale)
    bicubic = pillow_resize(lr, hr.shape, "bicubic")
    ours = tc.upsample(lr, scale)
    top, left, size = box
    crops = [(f"original ({photo}, held out)", hr), (f"bicubic {scale}x  {psnr(bicubic, hr, scale):.2f} dB", bicubic),
             (f"FSRCNN {scale}x (transconv)  {psnr(ours, hr, scale):.2f} dB", ours)]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (title, img) in zip(axes, crops):
        ax.imshow(img[top : top + size, left : left + size], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"Y channel, {size}x{size} crop; PSNR over the whole held-out photograph", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, action="append", default=None, help="2 and/or 4 (default: both)")
    parser.add_argument("--backend", choices=("transconv", "torch"), default="transconv",
                        help="torch: also train the PyTorch twin with the same recipe")
    parser.add_argument("--picture", metavar="PATH", help="write the side-by-side crop (2x) to PATH")
    args = parser.parse_args(argv)
    rows = [r for scale in (args.scale or [2, 4]) for r in measure(scale, args.backend)]
    print("Y PSNR (dB) / SSIM per held-out photograph")
    print(table(rows))
    for scale in dict.fromkeys(r["scale"] for r in rows):
        ours = np.mean([r["psnr"] for r in rows if r["scale"] == scale and r["method"] == "fsrcnn (transconv)"])
        bic = np.mean([r["psnr"] for r in rows if r["scale"] == scale and r["method"] == "bicubic"])
        print(f"{scale}x: FSRCNN - bicubic = {ours - bic:+.2f} dB (mean over {len(HELD_OUT_PHOTOS)} held-out photographs)")
    if args.picture:
        picture(args.picture)
        print(f"wrote {args.picture}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
