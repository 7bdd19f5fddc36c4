"""Training loop: time-limited, checkpointed (safetensors) and exactly resumable."""
import csv
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from ..model.configs import get_config
from ..model.matting import CramatteNet
from ..checkpoint import save_model
from .data import MattingData, ResumableSampler, find_cutouts, find_pairs
from .losses import matting_loss

STAGES = ("joint", "lowres", "refiner")


@dataclass
class TrainOptions:
    config: str = "realtime"
    data: tuple = ()
    cutouts: tuple = ()
    backgrounds: tuple = ()
    out: str = "runs/default"
    steps: int = 3000
    batch: int = 8
    size: int = 320
    lr: float = 5e-4
    warmup: int = 100
    seed: int = 0
    stage: str = "joint"
    workers: int = 1
    max_minutes: float = 0.0
    stop_at: int = 0  # stop (checkpointed) after this step, to run a schedule in chunks
    checkpoint_every: int = 100
    init_trunk: str = ""
    init_weights: str = ""
    schedule_minutes: float = 0.0  # > 0: the cosine spans this much training time (across resumes), then stop
    device: str = "auto"
    real_prob: float = 0.3  # share of photos that keep their own background (the rest are composited)
    zoom_prob: float = 0.0  # share of those shown whole and smaller (person size as in a whole frame)


def build_data(opts: TrainOptions) -> MattingData:
    pairs = [p for d in opts.data for p in find_pairs(d)]
    cutouts = [p for d in opts.cutouts for p in find_cutouts(d)] + [p for d in opts.data for p in find_cutouts(d)]
    bgs = [p for d in opts.backgrounds for p in sorted(Path(d).iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return MattingData(pairs, cutouts, bgs, size=opts.size, seed=opts.seed, real_prob=opts.real_prob,
                       zoom_prob=opts.zoom_prob)


def _lr_factor(step: int, seconds: float, opts: TrainOptions) -> float:
    if step < opts.warmup:
        return (step + 1) / opts.warmup
    done = seconds / (opts.schedule_minutes * 60) if opts.schedule_minutes else \
        (step - opts.warmup) / max(1, opts.steps - opts.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))


def _save_checkpoint(path: Path, model, optim, step: int, seconds: float, opts: TrainOptions) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt_state = optim.state_dict()
    for pid, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{pid}.{key}"] = torch.as_tensor(value).cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": str(step), "seconds": repr(seconds), "options": json.dumps(asdict(opts)),
            "param_groups": json.dumps(opt_state["param_groups"])}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def _load_checkpoint(path: Path, model, optim) -> tuple:
    """Restore model, optimiser and RNG in place; returns (step, training seconds so far)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    optim.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"]), float(meta.get("seconds", 0.0))


def _init_from(model: CramatteNet, path: str, log) -> None:
    """Start from another model's weights: every tensor whose name and shape match; the rest stay fresh."""
    from ..checkpoint import read_weights

    own = model.state_dict()
    state = {k: v for k, v in read_weights(path)[0].items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(state, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0].split(".")[0] for k in own if k not in state})
    log(f"initialised {len(state)}/{len(own)} tensors from {path}" + (f"; fresh: {', '.join(fresh)}" if fresh else ""))


def _set_stage(model: CramatteNet, stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    model.lowres.requires_grad_(stage != "refiner")
    model.refiner.requires_grad_(stage != "lowres")


def train(opts: TrainOptions, log=print, clock=time.monotonic) -> Path:
    """Train (or resume) into `opts.out`; returns the path of the final weights (safetensors).
    `clock` (seconds) times the schedule and the limits; tests pass their own."""
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = get_config(opts.config)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if opts.device == "auto" else opts.device)
    torch.manual_seed(opts.seed)
    # Off: every new low-res size (six of them) cost cuDNN's autotuner about 19 s on an H200.
    torch.backends.cudnn.benchmark = False
    model = CramatteNet(**cfg.arch)
    if opts.init_weights:
        _init_from(model, opts.init_weights, log)
    elif opts.init_trunk:
        from ..model.trunk import load_onnx_trunk
        load_onnx_trunk(model.lowres.trunk, opts.init_trunk)
    _set_stage(model, opts.stage)
    model = model.to(device, memory_format=torch.channels_last).train()
    trunk = set(id(p) for p in model.lowres.trunk.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) in trunk], "lr": opts.lr * 0.3},
              {"params": [p for p in params if id(p) not in trunk], "lr": opts.lr}]
    optim = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01)
    base_lrs = [g["lr"] for g in optim.param_groups]

    ckpt = out / "last.safetensors"
    step, seconds = _load_checkpoint(ckpt, model, optim) if ckpt.exists() else (0, 0.0)
    if step:
        log(f"resumed from {ckpt} at step {step}")
    data = build_data(opts)
    loader = DataLoader(data, batch_size=opts.batch, sampler=ResumableSampler(step * opts.batch),
                        num_workers=opts.workers, persistent_workers=opts.workers > 0,
                        prefetch_factor=2 if opts.workers > 0 else None, pin_memory=device.type == "cuda",
                        multiprocessing_context="spawn" if opts.workers > 0 else None)
    lr_sizes = [s for s in range(opts.size // 2, opts.size + 1, 32) if s % 32 == 0] or [opts.size]
    log_file = (out / "log.csv").open("a", newline="")
    writer = None
    bf16 = torch.autocast(device.type, dtype=torch.bfloat16)
    start = clock()
    it = iter(loader)
    it = itertools.chain([next(it)], it)  # workers started: the clock counts training time only
    log(f"first batch after {clock() - start:.0f} s ({opts.workers} workers)")
    start = clock()
    while step < (min(opts.steps, opts.stop_at) if opts.stop_at else opts.steps):
        now = seconds + clock() - start
        if opts.max_minutes and clock() - start > opts.max_minutes * 60:
            log(f"time limit reached at step {step}")
            break
        if opts.schedule_minutes and now >= opts.schedule_minutes * 60:
            log(f"schedule of {opts.schedule_minutes} minutes done at step {step}")
            break
        batch = {k: v.to(device, non_blocking=True) for k, v in next(it).items()}
        rng = np.random.default_rng([opts.seed, step])
        lr_size = int(rng.choice(lr_sizes))
        src = batch["image"].contiguous(memory_format=torch.channels_last)
        src_lr = F.interpolate(src, size=(lr_size, lr_size), mode="area")
        k = torch.tensor(4 * 2 * (opts.size // 8))
        for g, base in zip(optim.param_groups, base_lrs):
            g["lr"] = base * _lr_factor(step, now, opts)
        with bf16:
            out_aux = model(src, src_lr, k, return_aux=True)
        terms = matting_loss(out_aux, batch, coarse_only=opts.stage == "lowres")
        loss = sum(terms.values())
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        step += 1
        row = {"step": step, "seconds": round(seconds + clock() - start, 1), "lr": optim.param_groups[-1]["lr"],
               "loss": float(loss.detach()), **{k: round(float(v.detach()), 5) for k, v in terms.items()}}
        if writer is None:
            writer = csv.DictWriter(log_file, fieldnames=list(row), extrasaction="ignore")
            if log_file.tell() == 0:
                writer.writeheader()
        writer.writerow(row)
        if step % 10 == 0:
            log_file.flush()
            log(f"step {step} loss {row['loss']:.4f} ({row['seconds']} s)")
        if step % opts.checkpoint_every == 0:
            _save_checkpoint(ckpt, model, optim, step, seconds + clock() - start, opts)
    _save_checkpoint(ckpt, model, optim, step, seconds + clock() - start, opts)
    log_file.close()
    final = out / "model.safetensors"
    save_model(model.to("cpu", memory_format=torch.contiguous_format), final, cfg.arch, {"config": opts.config, "step": str(step)})
    return final
