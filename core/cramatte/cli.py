"""The `cramatte` command: matte images, folders and videos (`matte`, or `farm` on a Ray cluster); info;
export; train; eval. Host adapters add their own subcommands (`obs`)."""
import argparse
import logging
import math
import signal
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path

from .batch import OUTPUTS, USER_ERRORS, Job, matte_files
from .ranges import RangeError, check_ranges
from .temporal import STRENGTH


def _job(args, **extra) -> Job:
    """The batch job of `matte` and `farm` from their shared options."""
    return Job(outputs=tuple(args.output), format=args.format, depth=args.depth, background=args.background,
               colorspace=args.colorspace, temporal=args.temporal, overwrite=args.overwrite, model=args.model,
               config=args.config, backend=args.backend, device=args.device, **extra)


def cmd_matte(args) -> int:
    report = matte_files(args.inputs, args.out, _job(args, video_codec=args.video_codec, threads=args.threads))
    if report.skipped:
        print(f"{len(report.skipped)} of {report.inputs} inputs were done already (--overwrite redoes them)")
    return report_failures(report.failed, f"cramatte: {len(report.failed)} of {report.inputs} inputs failed:")


def report_failures(failures: list, heading: str) -> int:
    """Print the heading and each failure to stderr; the exit code: 2 if anything failed, else 0."""
    if not failures:
        return 0
    print(heading, file=sys.stderr)
    for line in failures:
        print(f"  {line}", file=sys.stderr)
    return 2


def cmd_info(args) -> int:
    import onnxruntime as ort

    from .backends import available_devices
    from .runtime import Matter

    matter = Matter(args.model, config=args.config, backend=args.backend, device=args.device)
    cfg = matter.config
    print(f"model:      {matter.model_path}")
    print(f"config:     {cfg.name} (internal long side {cfg.internal} px, "
          f"{cfg.regions_rule} regions refined)")
    print(f"backend:    {matter.backend.name} on {matter.backend.device}")
    print(f"providers:  {', '.join(matter.providers)}")
    print(f"available:  {', '.join(available_devices())} (onnxruntime {ort.__version__})")
    return 0


def cmd_export(args) -> int:
    from .runtime import shipped_model

    weights = args.weights or shipped_model(".safetensors")
    if args.target == "nuke":
        from .export import export_nuke
        print(export_nuke(weights, args.out, config=args.config, overwrite=args.overwrite))
    elif args.int8:
        check_ranges(args, {"calibration_images": (1, math.inf, True)})
        from .export import quantize_int8
        from .io import expand_inputs, is_video
        images = [p for p in expand_inputs(args.int8) if not is_video(p)]
        images = images[::max(1, len(images) // args.calibration_images)][:args.calibration_images]
        print(quantize_int8(args.model_onnx or shipped_model(), images, args.out, overwrite=args.overwrite))
    else:
        from .export import export_onnx
        print(export_onnx(weights, args.out, overwrite=args.overwrite))
    return 0


def cmd_train(args) -> int:
    try:
        from .train.trainer import TrainOptions, train
    except ImportError as e:
        raise _train_extra("train", e) from None

    opts = TrainOptions(config=args.config, data=tuple(args.data), cutouts=tuple(args.cutouts),
                        backgrounds=tuple(args.backgrounds), out=args.out, steps=args.steps, batch=args.batch,
                        size=args.size, lr=args.lr, seed=args.seed, stage=args.stage, workers=args.workers,
                        max_minutes=args.max_minutes, start_step=args.start_step, init_trunk=args.init_trunk or "",
                        init_weights=args.init_weights or "", schedule_minutes=args.schedule_minutes,
                        device=args.device, precision=args.precision, real_prob=args.real_prob, zoom_prob=args.zoom_prob,
                        warmup=args.warmup, whole_prob=args.whole_prob, far=args.far, exclude=args.exclude or "",
                        hard=args.hard or "", store=args.store or "", threads=args.threads, eval_data=args.eval_data or "",
                        eval_every=args.eval_every, eval_count=args.eval_count,
                        eval_full_every=args.eval_full_every, ema=args.ema)
    print(train(opts))
    return 0


def _train_extra(command: str, e: ImportError) -> ImportError:
    """The error for a missing training dependency, saying which extra brings it."""
    return ImportError(f"cramatte {command} needs the 'train' extra ({e.name or e} is missing): in a cramatte "
                       "checkout, pip install -e '.[train]' (with pip install torch==2.13.0 first for the CPU build)")


def cmd_eval(args) -> int:
    try:
        from .evaluate import evaluate, evaluate_video
    except ImportError as e:
        raise _train_extra("eval", e) from None
    from .runtime import Matter

    check_ranges(args, {"limit": (0, math.inf, True)})
    matter = Matter(args.model, config=args.config, backend=args.backend, device=args.device)
    if args.video:
        for data in args.data:
            evaluate_video(data, matter=matter)
        return 0
    results = {}
    for data in args.data:
        out = Path(args.out) / Path(data).name if len(args.data) > 1 else Path(args.out)
        results[Path(data).name] = evaluate(data, out=out, limit=args.limit, matter=matter)
    if len(results) > 1:
        print(f"side by side ({args.config}): " + "   ".join(
            f"{name} MAD {m['mad']:.2f} Grad {m['grad']:.4f} IoU {m['iou']:.3f}" for name, m in results.items()))
    return 0


def _model_args(p):
    p.add_argument("--model", help="a cramatte .onnx or .safetensors file (default: the shipped model)")
    p.add_argument("--config", default="realtime", help="realtime (default), fast or quality")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, tensorrt, directml or coreml")


def _matte_args(p, inputs: str = "+"):
    """Inputs, outputs and options shared by `matte` and `farm`."""
    p.add_argument("inputs", nargs=inputs)
    p.add_argument("-o", "--out", required=True, help="output folder")
    _model_args(p)
    p.add_argument("--output", nargs="+", default=["alpha"], choices=OUTPUTS)
    p.add_argument("--background", default="colour:#00ff00", help="for composite: colour:#rrggbb, blur[:sigma], image:PATH")
    p.add_argument("--format", default="png", choices=["png", "exr"])
    p.add_argument("--depth", type=int, default=8, choices=[8, 16], help="PNG bit depth")
    p.add_argument("--colorspace", default="auto", choices=["auto", "srgb", "linear"])
    p.add_argument("--temporal", type=float, default=STRENGTH,
                   help="video mode: weight of the previous matte, carried along the optical flow, where the flow fits the picture (0: per frame)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def cmd_farm(args) -> int:
    from .farm import Cluster, expand_farm_inputs, farm_files

    cluster = Cluster(address=args.address, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                      gpus_per_worker=args.gpus_per_worker, chunk=args.chunk, overlap=args.overlap,
                      retries=args.retries)
    report = farm_files(expand_farm_inputs(args.inputs, args.list), args.out, _job(args), cluster=cluster)
    return report_failures(report.failed, f"cramatte farm: {len(report.failed)} failures:")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cramatte", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("matte", help="matte images, folders of images, and videos")
    _matte_args(p)
    p.add_argument("--video-codec", default="png", choices=["png", "prores", "vp9"],
                   help="png: an image sequence per output; prores (.mov) / vp9 (.webm): video with alpha")
    p.add_argument("--threads", type=int)
    p.set_defaults(func=cmd_matte)

    p = sub.add_parser("farm", help="matte many shots on a Ray cluster (the 'farm' extra)",
                       description="Matte many shots on a Ray cluster: the same files as `cramatte matte` "
                                   "(image sequences for videos), resumable; every node must see the same paths.")
    _matte_args(p, inputs="*")
    p.add_argument("--list", help="a text file naming one input (file, folder or glob) per line")
    p.add_argument("--address", help="Ray cluster: auto (the one this machine belongs to) or ray://host:10001; "
                                     "default: a local cluster of this machine's cores")
    p.add_argument("--workers", type=int, default=0, help="worker actors (default: the cluster's CPUs / --cpus-per-worker)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (and inference threads) per worker")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per worker (e.g. 1, or 0.5 to share one)")
    p.add_argument("--chunk", type=int, default=100, help="frames per chunk of a video, images per chunk")
    p.add_argument("--overlap", type=int, default=8,
                   help="warm-up frames matted before a video chunk (video mode settles; not written)")
    p.add_argument("--retries", type=int, default=3, help="times a lost worker is restarted and its chunk rerun")
    p.set_defaults(func=cmd_farm)

    p = sub.add_parser("info", help="show the model, backend, providers and device")
    _model_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("export", help="export weights to ONNX, or to a TorchScript Cattery package for Nuke")
    p.add_argument("weights", nargs="?", help="a cramatte .safetensors file (default: the shipped model)")
    p.add_argument("--target", default="onnx", choices=["onnx", "nuke"])
    p.add_argument("--config", default="quality", help="configuration baked into the Nuke model")
    p.add_argument("-o", "--out", required=True, help="the .onnx file, or the folder for the Nuke package")
    p.add_argument("--int8", nargs="+", metavar="IMAGES",
                   help="instead: an int8 copy of an ONNX model (--onnx), calibrated on these images or folders")
    p.add_argument("--onnx", dest="model_onnx", help="the ONNX model --int8 quantises (default: the shipped one)")
    p.add_argument("--calibration-images", type=int, default=64, help="at most this many images for --int8")
    p.add_argument("--overwrite", action="store_true", help="replace existing model files")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("config", help="configuration name (realtime, fast or quality)")
    p.add_argument("--data", nargs="+", required=True, help="folders of image/alpha pairs (or RGBA cut-outs)")
    p.add_argument("--cutouts", nargs="*", default=[])
    p.add_argument("--backgrounds", nargs="*", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=100, help="steps of linear learning-rate warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage", default="joint", choices=["joint", "lowres", "refiner"])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (checkpointed) after this many minutes")
    p.add_argument("--start-step", type=int, default=0,
                   help="without a checkpoint in --out, begin the schedule at this step (a lost checkpoint)")
    p.add_argument("--schedule-minutes", type=float, default=0.0,
                   help="the learning-rate cosine spans this much training time instead of --steps, then stops")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--init-trunk", help="MoveNet Lightning trunk ONNX to initialise the trunk from")
    p.add_argument("--init-weights", help="cramatte safetensors to start from")
    p.add_argument("--real-prob", type=float, default=0.3,
                   help="share of labelled photos kept on their own background (the rest are composited)")
    p.add_argument("--zoom-prob", type=float, default=0.0,
                   help="share of those shown whole and smaller, the rest mirrored, as a whole frame shows a person")
    p.add_argument("--whole-prob", type=float, default=0.0,
                   help="share of batches of whole photos at the low-res input shape the runtime gives them")
    p.add_argument("--far", type=float, default=0.0,
                   help="extra weight of coarse errors away from the subject (people behind it)")
    p.add_argument("--exclude", help="CSV whose first column names photos with broken labels (docs/bad_labels.csv)")
    p.add_argument("--hard", help="CSV of photo names and their recent MAD (scripts/label_sheets.py's mad.csv): "
                   "photos drawn in proportion to its square root")
    p.add_argument("--store", help="folder for the training items prepared once (default: the user cache)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: every core)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="bf16 autocast or fp32 (default: bf16 where the CPU or GPU computes it natively)")
    p.add_argument("--eval-data", help="a matting set scored every --eval-every steps into OUT/eval.csv")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-count", type=int, default=40, help="images of --eval-data scored (every third)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="keep an exponential moving average of the weights with this decay (e.g. 0.999): "
                   "scored beside them into eval_ema.csv, saved as OUT/ema.safetensors (default: none)")
    p.add_argument("--eval-full-every", type=int, default=0,
                   help="every image of --eval-data scored every this many steps too (default: never)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="SAD, MSE, MAD, Grad, Conn and IoU on matting sets")
    p.add_argument("--data", required=True, nargs="+",
                   help="one or more sets (e.g. dev/ and dev_real/); each gets its own sub-folder of --out")
    p.add_argument("--out", default="runs/eval", help="per-image CSV and contact sheets (not with --video)")
    p.add_argument("--limit", type=int, default=0, help="score only the first N images of each set (not with --video)")
    p.add_argument("--video", action="store_true",
                   help="DATA holds one sub-folder per clip: report dtSSD and MAD, per-frame and video mode")
    _model_args(p)
    p.set_defaults(func=cmd_eval)

    for ep in entry_points(group="cramatte.commands"):  # host adapters add their own subcommands
        ep.load()(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (what a farm manager or `kill` sends), handled as Ctrl-C is: staged work is discarded."""


_TERMINATED = []  # set by the handler: Ray's waits may re-raise Terminated as a plain KeyboardInterrupt


def _terminate(signum, frame):
    _TERMINATED.append(signum)
    raise Terminated


def main(argv=None) -> int:
    """Run the command; exit codes: 0 done, 2 an error or failed inputs, 130 Ctrl-C, 143 SIGTERM."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    previous = signal.signal(signal.SIGTERM, _terminate)
    _TERMINATED.clear()
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        if args.verbose:
            traceback.print_exc()
        terminated = isinstance(e, Terminated) or bool(_TERMINATED)
        what = "terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)"
        print(f"cramatte: {what}; rerun the same command to resume", file=sys.stderr)
        return 143 if terminated else 130
    except USER_ERRORS as e:
        if args.verbose:
            traceback.print_exc()
        text = "not enough memory" if isinstance(e, MemoryError) else str(e) or type(e).__name__
        if isinstance(e, RangeError):
            text = e.for_option()
        print(f"cramatte: error: {text}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
