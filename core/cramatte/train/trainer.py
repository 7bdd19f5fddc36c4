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
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from ..model.configs import get_config
from ..model.matting import CramatteNet
from ..checkpoint import save_model
from ..cache import user_cache
from ..ranges import check_ranges
from .data import Batches, MattingData, ResumableSampler, find_cutouts, find_pairs
from .losses import TERMS, matting_loss
from .store import open_store

STAGES = ("joint", "lowres", "refiner")
PRECISIONS = ("auto", "bf16", "fp32")


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
    start_step: int = 0  # with no checkpoint: begin the schedule (lr, data) here, from init_weights
    checkpoint_every: int = 100
    init_trunk: str = ""
    init_weights: str = ""
    schedule_minutes: float = 0.0  # > 0: the cosine spans this much training time (across resumes), then stop
    device: str = "auto"
    precision: str = "auto"  # bf16 autocast where the device computes bf16 natively, else fp32
    real_prob: float = 0.3  # share of photos that keep their own background (the rest are composited)
    zoom_prob: float = 0.0  # share of those shown whole and smaller (person size as in a whole frame)
    whole_prob: float = 0.0  # share of batches of whole photos at the runtime's low-res input shape
    far: float = 0.0  # extra weight of coarse errors away from the subject
    exclude: str = ""  # file listing photos (names, first column) whose teacher label is broken
    hard: str = ""  # CSV of photo names and a recent error (`mad`): hard photos drawn more often
    store: str = ""  # folder of prepared training items ("": the user cache)
    threads: int = 0  # torch threads (0: every core)
    eval_data: str = ""  # a matting set scored every `eval_every` steps (`eval_count` of its images)
    eval_every: int = 500
    eval_count: int = 40
    eval_full_every: int = 0  # every image of `eval_data` scored every this many steps (0: never)
    ema: float = 0.0  # decay of an exponential moving average of the weights, kept beside them (0: none)

    def __post_init__(self):
        inf = math.inf
        check_ranges(self, {"steps": (1, inf, True), "batch": (1, 4096, True), "size": (32, 4096, True),
                            "lr": (1e-12, 1, False), "warmup": (0, inf, True), "workers": (0, 256, True),
                            "max_minutes": (0, inf, False), "stop_at": (0, inf, True), "start_step": (0, inf, True),
                            "checkpoint_every": (1, inf, True), "schedule_minutes": (0, inf, False),
                            "real_prob": (0, 1, False), "zoom_prob": (0, 1, False), "whole_prob": (0, 1, False),
                            "far": (0, 1000, False), "threads": (0, inf, True), "eval_every": (1, inf, True),
                            "eval_count": (1, inf, True), "eval_full_every": (0, inf, True),
                            "ema": (0, 1, False)})


def build_data(opts: TrainOptions, log=print) -> MattingData:
    """The training set; decoding, resizing and foreground estimates are prepared once (`store`)."""
    pairs = [p for d in opts.data for p in find_pairs(d)]
    cutouts = [p for d in opts.cutouts for p in find_cutouts(d)] + [p for d in opts.data for p in find_cutouts(d)]
    bgs = [p for d in opts.backgrounds for p in sorted(Path(d).iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    root = Path(opts.store) if opts.store else user_cache("train")
    stores = [open_store(s, root, workers=max(1, opts.workers), log=log) if s else [] for s in (pairs, cutouts, bgs)]
    return MattingData(*stores, size=opts.size, seed=opts.seed, real_prob=opts.real_prob, zoom_prob=opts.zoom_prob,
                       exclude=read_exclusions(opts.exclude) if opts.exclude else (),
                       hardness=read_hardness(opts.hard) if opts.hard else None)


def read_exclusions(path) -> set:
    """Photo names from the first column of a CSV with a header (`docs/bad_labels.csv`)."""
    with open(path, newline="") as f:
        return {row[0] for row in list(csv.reader(f))[1:] if row}


def read_hardness(path) -> dict:
    """{name: mad} from a CSV with `name` and `mad` columns (`scripts/label_sheets.py` writes one)."""
    with open(path, newline="") as f:
        return {row["name"]: float(row["mad"]) for row in csv.DictReader(f)}


def _worker_init(_) -> None:
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def score(model: CramatteNet, pairs: list, config: str) -> dict:
    """Mean MAD (x1e3), IoU and haze (`metrics.far_alpha`, over the images that have a far region) of the
    model (fp32, eval mode) on (image, alpha) path pairs, as the runtime mattes whole frames."""
    from .. import io
    from ..metrics import far_alpha, iou, mad
    from ..model.configs import get_config

    cfg = get_config(config)
    was_training = model.training
    model.eval()
    mads, ious, hazes = [], [], []
    with torch.no_grad():
        for image_path, alpha_path in pairs:
            rgb, gt = io.read_rgb(image_path), io.read_alpha(alpha_path)
            h, w = rgb.shape[:2]
            lh, lw = cfg.internal_size(h, w)
            src = torch.from_numpy(rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255)
            src_lr = F.interpolate(src, size=(lh, lw), mode="area")
            pred = model(src, src_lr, torch.tensor(cfg.regions(h, w)))[0, 0].numpy()
            mads.append(mad(pred, gt))
            ious.append(iou(pred, gt))
            hazes.append(far_alpha(pred, gt))
    model.train(was_training)
    haze = float(np.nanmean(hazes)) if not np.isnan(hazes).all() else float("nan")
    return {"mad": float(np.mean(mads)), "iou": float(np.mean(ious)), "haze": haze}


def _lr_factor(step: int, seconds: float, opts: TrainOptions) -> float:
    if step < opts.warmup:
        return (step + 1) / opts.warmup
    done = seconds / (opts.schedule_minutes * 60) if opts.schedule_minutes else \
        (step - opts.warmup) / max(1, opts.steps - opts.warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))


def _save_checkpoint(path: Path, model, optim, step: int, seconds: float, opts: TrainOptions, ema=None) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
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


def _load_checkpoint(path: Path, model, optim, ema=None, log=print) -> tuple:
    """Restore model, optimiser, weight average and RNG in place; returns (step, training seconds so far).
    A checkpoint without a weight average starts one from its weights."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        averaged = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        if averaged:
            ema.load_state_dict(averaged)
        else:
            log(f"no weight average in {path}: it starts from the weights of step {meta['step']}")
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


def _log_score(path: Path, model, pairs: list, step: int, seconds: float, opts: TrainOptions, log) -> None:
    """Score eval images (the subset or the whole set) and append a row to `path` (a CSV)."""
    tick = time.monotonic()
    result = score(model, pairs, opts.config)
    values = {"step": step, "seconds": seconds, "mad": round(result["mad"], 3), "iou": round(result["iou"], 4),
              "images": len(pairs), "haze": round(result["haze"], 3)}
    # a run resumed from a log written before the haze column keeps that log's columns
    header = []
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
    columns = header or list(values)
    with path.open("a", newline="") as f:
        w = csv.writer(f)
        if not header:
            w.writerow(columns)
        w.writerow([values[c] for c in columns])
    log(f"step {step}: {len(pairs)} eval images ({path.stem}) MAD {result['mad']:.2f} IoU {result['iou']:.4f} "
        f"haze {result['haze']:.2f} ({time.monotonic() - tick:.0f} s)")


def _trim_logs(out: Path, step: int) -> None:
    """Drop the rows of log.csv and eval.csv past `step`: written after the last checkpoint by a run
    that was then stopped (Ctrl-C, SIGTERM, a kill), or after the weights a lost run goes on from,
    they come again when it resumes."""
    for path in (out / "log.csv", out / "eval.csv", out / "eval_ema.csv"):
        if path.exists():
            lines = path.read_text().splitlines(keepends=True)
            keep = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
            if len(keep) < len(lines):
                tmp = path.with_suffix(".tmp")
                tmp.write_text("".join(keep))
                tmp.replace(path)


def _logged_seconds(path: Path) -> float:
    """Training seconds of the last row of a run's log.csv (0 without one): a lost run's clock goes on."""
    if not path.exists():
        return 0.0
    rows = path.read_text().splitlines()
    return float(rows[-1].split(",")[1]) if len(rows) > 1 else 0.0


def autocast_dtype(device: torch.device, precision: str = "auto"):
    """torch.bfloat16 or None (fp32). "auto" takes bf16 only where the hardware computes it: on a CPU
    with AVX-512 but not on one with only AVX2, where oneDNN emulates it and a joint step took 15 s
    instead of 1 s in fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        native = torch.cuda.is_bf16_supported() if device.type == "cuda" else torch.ops.mkldnn._is_mkldnn_bf16_supported()
        precision = "bf16" if native else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


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
    if opts.threads:
        torch.set_num_threads(opts.threads)
    model = model.to(device, memory_format=torch.channels_last).train()
    trunk = set(id(p) for p in model.lowres.trunk.parameters())
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if id(p) in trunk], "lr": opts.lr * 0.3},
              {"params": [p for p in params if id(p) not in trunk], "lr": opts.lr}]
    optim = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=0.01)
    base_lrs = [g["lr"] for g in optim.param_groups]
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(opts.ema), use_buffers=True) if opts.ema else None

    ckpt = out / "last.safetensors"
    step, seconds = _load_checkpoint(ckpt, model, optim, ema, log) if ckpt.exists() else (opts.start_step, 0.0)
    _trim_logs(out, step)
    if ckpt.exists():
        log(f"resumed from {ckpt} at step {step}")
    elif step:
        seconds = _logged_seconds(out / "log.csv")
        log(f"no checkpoint in {out}: the schedule begins at step {step} with fresh optimiser state")
    data = Batches(build_data(opts, log), opts.batch, opts.whole_prob, cfg.internal)
    loader = DataLoader(data, batch_size=None, sampler=ResumableSampler(step), num_workers=opts.workers,
                        persistent_workers=opts.workers > 0, prefetch_factor=2 if opts.workers > 0 else None,
                        pin_memory=device.type == "cuda", worker_init_fn=_worker_init,
                        multiprocessing_context="spawn" if opts.workers > 0 else None)
    all_pairs = find_pairs(opts.eval_data) if opts.eval_data else []
    eval_pairs = all_pairs[::3][:opts.eval_count]
    lr_sizes = [s for s in range(opts.size // 2, opts.size + 1, 32) if s % 32 == 0] or [opts.size]
    log_file = (out / "log.csv").open("a", newline="", buffering=1)  # a row on disk per step, whatever stops us
    writer = None
    dtype = autocast_dtype(device, opts.precision)
    cast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    start = clock()
    it = iter(loader)
    it = itertools.chain([next(it)], it)  # workers started: the clock counts training time only
    log(f"first batch after {clock() - start:.0f} s ({opts.workers} workers, {'fp32' if dtype is None else 'bf16'})")
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
        for g, base in zip(optim.param_groups, base_lrs):
            g["lr"] = base * _lr_factor(step, now, opts)
        # Whole frames come at their low-res shape and train the low-res network alone, as does the
        # low-res stage: the refiner's forward pass would be wasted work there.
        coarse_only = opts.stage == "lowres" or "image_lr" in batch
        with cast:
            if "image_lr" in batch:
                out_aux = {"logits": model.coarse(batch["image_lr"].contiguous(memory_format=torch.channels_last))[0]}
            else:
                src = batch["image"].contiguous(memory_format=torch.channels_last)
                src_lr = F.interpolate(src, size=(lr_size, lr_size), mode="area")
                out_aux = {"logits": model.coarse(src_lr)[0]} if coarse_only else \
                    model(src, src_lr, torch.tensor(4 * 2 * (opts.size // 8)), return_aux=True)
        terms = matting_loss(out_aux, batch, coarse_only=coarse_only, far=opts.far)
        loss = sum(terms.values())
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        if ema is not None:
            ema.update_parameters(model)
        step += 1
        row = {"step": step, "seconds": round(seconds + clock() - start, 1), "lr": optim.param_groups[-1]["lr"],
               "loss": float(loss.detach()), **{k: round(float(v.detach()), 5) for k, v in terms.items()},
               "whole": int("image_lr" in batch)}
        if writer is None:
            writer = csv.DictWriter(log_file, fieldnames=["step", "seconds", "lr", "loss", *TERMS, "whole"])
            if log_file.tell() == 0:
                writer.writeheader()
        writer.writerow(row)
        if step % 10 == 0:
            log(f"step {step} loss {row['loss']:.4f} ({row['seconds']} s)")
        if step % opts.checkpoint_every == 0:
            _save_checkpoint(ckpt, model, optim, step, seconds + clock() - start, opts, ema)
        for pairs, every in ((eval_pairs, opts.eval_every), (all_pairs, opts.eval_full_every)):
            if pairs and every and step % every == 0:
                tick = clock()
                _log_score(out / "eval.csv", model, pairs, step, row["seconds"], opts, log)
                if ema is not None:
                    _log_score(out / "eval_ema.csv", ema.module, pairs, step, row["seconds"], opts, log)
                start += clock() - tick  # scoring is not training time
    _save_checkpoint(ckpt, model, optim, step, seconds + clock() - start, opts, ema)
    log_file.close()
    final = out / "model.safetensors"
    meta = {"config": opts.config, "step": str(step)}
    if ema is not None:
        save_model(ema.module.to("cpu", memory_format=torch.contiguous_format), out / "ema.safetensors", cfg.arch,
                   {**meta, "ema": str(opts.ema)})
    save_model(model.to("cpu", memory_format=torch.contiguous_format), final, cfg.arch, meta)
    return final
