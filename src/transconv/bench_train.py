"""One training step of the shipped up-sampler against the identical network in PyTorch.

A step is forward, MSE loss, backward and Adam on a batch of 16 LR patches of 48x48 (HR
``scale`` x that).  Both run in this process with the same threads (numba's count, given to
PyTorch too), after warm-up, in alternating blocks of calls; the median of the blocks is
reported.  Per layer: forward, input gradient and weight gradient of each convolution, ours
(``tc.conv``, ``tc.conv_transpose``, ``tc.conv_weight_grad``) against ``torch.nn.functional`` / ``torch.nn.grad``.

    transconv bench --train [--scale 2] [--blocks 7] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys

import numpy as np

import transconv as tc
from transconv.bench import alternating_blocks


def _block_median(fns: dict, blocks: int, calls: int) -> dict:
    """Alternate blocks of ``calls`` calls of each function; per-call median over the blocks (ms)."""
    times = alternating_blocks(list(fns.values()), blocks, calls=calls)
    return {name: statistics.median(t) * 1e3 for name, t in zip(fns, times)}


def bench(scale: int = 2, patch: int = 48, batch: int = 16, blocks: int = 7, calls: int = 3) -> dict:
    import numba
    import torch

    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    train = importlib.import_module("transconv.train")
    from transconv.upsample import shipped_model_path

    net = train.load_model(shipped_model_path(scale))[0]
    nn = tc.nn
    twin = tc.nn.to_torch(net)
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, patch, patch), dtype=np.float32)
    target = rng.random((batch, 1, patch * scale, patch * scale), dtype=np.float32)
    xt, tt = torch.from_numpy(x), torch.from_numpy(target)
    opt, opt_t = nn.Adam(net, lr=1e-4), torch.optim.Adam(twin.parameters(), lr=1e-4)

    def ours_step():
        opt.zero_grad()
        _, grad = nn.mse_loss(net.forward(x), target)
        net.backward(grad)
        opt.step()

    def torch_step():
        opt_t.zero_grad()
        torch.nn.functional.mse_loss(twin(xt), tt).backward()
        opt_t.step()

    step = _block_median({"ours": ours_step, "torch": torch_step}, blocks, calls)
    rows = []
    h = x
    for i, layer in enumerate(net):
        out = layer.forward(h)
        name = type(layer).__name__
        if name in ("Conv", "ConvTranspose"):
            transposed = name == "ConvTranspose"
            g = rng.standard_normal(out.shape).astype(np.float32)
            ht, gt, wt = torch.from_numpy(h), torch.from_numpy(g), torch.from_numpy(layer.weight)
            kw = {"stride": layer.stride, "padding": layer.padding}
            if transposed:
                fns = {
                    "fwd": lambda: tc.conv_transpose(h, layer.weight, layer.bias, output_padding=layer.output_padding, **kw),
                    "dx": lambda: tc.conv(g, layer.weight, **kw),
                    "dw": lambda: tc.conv_weight_grad(h, g, layer.weight.shape, transposed=True, output_padding=layer.output_padding, **kw),
                    "t_fwd": lambda: torch.nn.functional.conv_transpose2d(ht, wt, output_padding=layer.output_padding, **kw),
                    "t_dx": lambda: torch.nn.functional.conv2d(gt, wt, **kw),
                    "t_dw": lambda: torch.nn.grad.conv2d_weight(gt, wt.shape, ht, **kw),
                }
            else:
                fns = {
                    "fwd": lambda: tc.conv(h, layer.weight, layer.bias, **kw),
                    "dx": lambda: tc.conv_transpose(g, layer.weight, **kw),
                    "dw": lambda: tc.conv_weight_grad(h, g, layer.weight.shape, **kw),
                    "t_fwd": lambda: torch.nn.functional.conv2d(ht, wt, **kw),
                    "t_dx": lambda: torch.nn.grad.conv2d_input(ht.shape, wt, gt, **kw),
                    "t_dw": lambda: torch.nn.grad.conv2d_weight(ht, wt.shape, gt, **kw),
                }
            t = _block_median(fns, blocks, calls)
            rows.append({"layer": f"{i} {name} {layer.in_channels}->{layer.out_channels} k{layer.kernel_size[0]}"
                                  f"{' s' + str(layer.stride[0]) if transposed else ''} on {tuple(h.shape)}", **t})
        h = out
    return {"threads": threads, "scale": scale, "batch": batch, "patch": patch,
            "step_ms": step, "ratio": step["ours"] / step["torch"], "layers": rows}


def table(r: dict) -> str:
    lines = [f"training step, FSRCNN x{r['scale']}, batch {r['batch']} of {r['patch']}x{r['patch']}, {r['threads']} threads: ours {r['step_ms']['ours']:.1f} ms, PyTorch {r['step_ms']['torch']:.1f} ms, "
             f"ratio {r['ratio']:.2f}",
             f"{'layer':48s} {'fwd':>7s} {'t_fwd':>7s} {'dx':>7s} {'t_dx':>7s} {'dw':>7s} {'t_dw':>7s}  (ms)"]
    for row in r["layers"]:
        lines.append(f"{row['layer'][:48]:48s} " + " ".join(f"{row[k]:7.2f}" for k in ("fwd", "t_fwd", "dx", "t_dx", "dw", "t_dw")))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``transconv bench --train`` (``transconv.bench.run`` has checked that PyTorch is there)."""
    r = bench(scale=getattr(args, "scale", 2), blocks=getattr(args, "blocks", 7))
    print(json.dumps(r, indent=2) if args.json else table(r))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m transconv.bench_train``: the same as ``transconv bench --train``."""
    from .cli import main as cli_main

    return cli_main(["bench", "--train"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
