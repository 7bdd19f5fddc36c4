"""Training throughput: where a step's time goes, and samples per second of `cramatte train`.

    python benchmarks/train_speed.py --data ../shared/data [--steps 40] [--baseline /path/to/old/checkout] [--bf16]

1. A step, in process: the data (a batch from the loader's dataset), the forward and the backward pass,
   for a joint step (crops, refiner included), a low-res step on crops and one on whole frames,
   in fp32, and in bf16 autocast where the CPU computes it natively (--bf16 forces it: on an AVX2-only
   CPU oneDNN emulates bf16 and the profile takes minutes).
2. `cramatte train` end to end (one loader worker, as by default), joint and low-res stages: samples
   per second over the steps after the first ten, from its own log; with --baseline, the same
   commands run from another checkout (its `core/` on PYTHONPATH), and the ratio is printed.
Run it on an idle machine: every figure is wall time.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def profile(data_root: Path, steps: int, precisions: tuple) -> None:
    from cramatte.model.configs import get_config
    from cramatte.model.matting import CramatteNet
    from cramatte.train.data import Batches
    from cramatte.train.losses import matting_loss
    from cramatte.train.trainer import TrainOptions, build_data

    opts = TrainOptions(data=(str(data_root / "portraits"),), cutouts=(str(data_root / "cutouts"),),
                        backgrounds=(str(data_root / "backgrounds"),), real_prob=0.75)
    data = build_data(opts, log=lambda *_: None)
    cfg = get_config("realtime")
    model = CramatteNet(**cfg.arch).to(memory_format=torch.channels_last).train()
    k = torch.tensor(4 * 2 * (opts.size // 8))
    print(f"{'step':22} {'precision':9} {'data s':>7} {'forward s':>9} {'backward s':>10}")
    for name, whole, coarse in (("joint, crops", 0.0, False), ("low-res, crops", 0.0, True),
                                ("low-res, whole frames", 1.0, True)):
        batches = Batches(data, 8, whole, cfg.internal)
        for precision in precisions:
            cast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
            times = []
            for step in range(steps):
                t0 = time.perf_counter()
                batch = batches[step]
                t1 = time.perf_counter()
                with cast:
                    if whole:
                        out = {"logits": model.coarse(batch["image_lr"].contiguous(memory_format=torch.channels_last))[0]}
                    else:
                        src = batch["image"].contiguous(memory_format=torch.channels_last)
                        src_lr = F.interpolate(src, size=(160 + 32 * (step % 6),) * 2, mode="area")
                        out = {"logits": model.coarse(src_lr)[0]} if coarse else model(src, src_lr, k, return_aux=True)
                loss = sum(matting_loss(out, batch, coarse_only=coarse).values())
                t2 = time.perf_counter()
                model.zero_grad(set_to_none=True)
                loss.backward()
                times.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
            d, f, b = np.median(times[2:], axis=0)
            print(f"{name:22} {precision:9} {d:7.3f} {f:9.3f} {b:10.3f}", flush=True)


def end_to_end(code: Path, data_root: Path, stage: str, steps: int, extra: list) -> float:
    """Samples per second of `cramatte train` from `code` (a checkout), steps 11..steps of its log."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "cramatte.cli", "train", "realtime", "--data", str(data_root / "portraits"),
               "--cutouts", str(data_root / "cutouts"), "--backgrounds", str(data_root / "backgrounds"),
               "--out", tmp, "--steps", str(steps), "--batch", "8", "--real-prob", "0.75", "--stage", stage, *extra]
        env = {**os.environ, "PYTHONPATH": str(code / "core")}
        subprocess.run(cmd, check=True, env=env, cwd=code, stdout=subprocess.DEVNULL)
        with open(Path(tmp) / "log.csv") as f:
            rows = list(csv.DictReader(f))
    seconds = float(rows[-1]["seconds"]) - float(rows[9]["seconds"])
    return 8 * (len(rows) - 10) / seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with portraits/, cutouts/ and backgrounds/")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--baseline", help="another checkout of cramatte to compare with")
    p.add_argument("--skip-profile", action="store_true")
    p.add_argument("--bf16", action="store_true", help="profile bf16 even where the CPU only emulates it")
    args = p.parse_args()
    data_root = Path(args.data)
    if not args.skip_profile:
        from cramatte.train.trainer import autocast_dtype
        native = autocast_dtype(torch.device("cpu")) is not None
        profile(data_root, 12, ("bf16", "fp32") if native or args.bf16 else ("fp32",))
    print(f"\n{'cramatte train':28} {'samples/s':>9} {'baseline':>9} {'ratio':>6}")
    for label, stage, extra in (("joint", "joint", []), ("low-res", "lowres", []),
                                ("low-res, half whole frames", "lowres", ["--whole-prob", "0.5"])):
        new = end_to_end(REPO, data_root, stage, args.steps, extra)
        old = end_to_end(Path(args.baseline), data_root, stage, args.steps, []) if args.baseline else float("nan")
        print(f"{label:28} {new:9.2f} {old:9.2f} {new / old:6.2f}", flush=True)


if __name__ == "__main__":
    main()
