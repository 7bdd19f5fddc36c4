"""The `cramatte` command: matte images, folders and videos; info; export; train; eval."""
import argparse
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from .temporal import STRENGTH

OUTPUTS = ("alpha", "rgba", "premultiplied", "composite")


def _parse_background(spec: str):
    """'colour:#00ff00' / 'colour:0,1,0' / 'blur[:sigma]' / 'image:PATH' -> (kind, value)."""
    kind, _, value = spec.partition(":")
    if kind in ("color", "colour"):
        value = value or "#00ff00"
        if value.startswith("#") and len(value) == 7:
            rgb = tuple(int(value[i:i + 2], 16) / 255 for i in (1, 3, 5))
        else:
            rgb = tuple(float(v) for v in value.split(","))
        if len(rgb) != 3:
            raise ValueError(f"background colour needs 3 components: {spec!r}")
        return "colour", rgb
    if kind == "blur":
        return "blur", float(value or 20)
    if kind == "image":
        from .io import read_image
        from .frames import to_unit_float
        img, _ = read_image(value)
        return "image", to_unit_float(img[None])[0]
    raise ValueError(f"unknown background {spec!r}; use colour:#rrggbb, blur[:sigma] or image:PATH")


class FrameWriter:
    """Turns one frame + matte into the requested outputs, as images or into a video."""

    def __init__(self, args, background):
        self.args, self.background = args, background

    def pictures(self, frame01: np.ndarray, matte) -> dict:
        from . import compose

        out = {}
        for kind in self.args.output:
            if kind == "alpha":
                out[kind] = matte.alpha
            elif kind in ("rgba", "premultiplied"):
                out[kind] = matte.rgba(kind == "premultiplied")
            else:
                bkind, value = self.background
                bg = compose.background_like(bkind, frame01, colour=value if bkind == "colour" else (0, 1, 0),
                                             blur=value if bkind == "blur" else 20.0,
                                             image=value if bkind == "image" else None)
                out[kind] = compose.composite(matte.foreground, matte.alpha, bg)
        return out


def cmd_matte(args) -> int:
    from tqdm import tqdm

    from . import io
    from .frames import to_unit_float
    from .runtime import Matter, VideoMatter

    matter = Matter(args.model, config=args.config, backend=args.backend, device=args.device, threads=args.threads)
    writer = FrameWriter(args, _parse_background(args.background))
    need_fg = any(o != "alpha" for o in args.output)
    inputs = io.expand_inputs(args.inputs)
    if not inputs:
        raise ValueError("no images or videos found in the inputs")
    out_dir = Path(args.out)
    sources = {p.resolve() for p in inputs}
    suffix = ".exr" if args.format == "exr" else ".png"

    def target(path: Path) -> Path:
        if path.resolve() in sources:
            raise FileExistsError(f"{path} is an input; refusing to write over it")
        return path

    for path in inputs:
        if not io.is_video(path):
            frame, space = io.read_image(path)
            space = space if args.colorspace == "auto" else args.colorspace
            matte = matter(frame, colorspace=space, foreground=need_fg)
            for kind, pixels in writer.pictures(to_unit_float(frame[None])[0], matte).items():
                dest = target(out_dir / f"{path.stem}_{kind}{suffix}")
                io.write_image(dest, pixels, args.depth, args.overwrite)
                print(dest)
            continue
        frames, fps, count = io.read_video(path)
        video_matter = VideoMatter(matter, strength=args.temporal)
        videos = {}
        try:
            for i, frame in enumerate(tqdm(frames, total=count or None, desc=path.name, unit="frame")):
                matte = video_matter(frame, foreground=need_fg)
                for kind, pixels in writer.pictures(to_unit_float(frame[None])[0], matte).items():
                    if args.video_codec == "png":
                        io.write_image(target(out_dir / f"{path.stem}_{kind}" / f"{i:06d}{suffix}"), pixels,
                                       args.depth, args.overwrite)
                        continue
                    if kind not in videos:
                        ext = io.VIDEO_CODECS[args.video_codec][0]
                        videos[kind] = io.VideoWriter(target(out_dir / f"{path.stem}_{kind}{ext}"),
                                                      args.video_codec, fps, frame.shape[1], frame.shape[0],
                                                      args.overwrite)
                    videos[kind].write(_as_rgba(pixels))
        except BaseException:
            for v in videos.values():
                v.abort()
            raise
        for v in videos.values():
            print(v.close())
        if args.video_codec == "png":
            for kind in args.output:
                print(out_dir / f"{path.stem}_{kind}")
    return 0


def _as_rgba(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 4, -1) * [1, 1, 1, 0] + [0, 0, 0, 1]
    if pixels.shape[-1] == 3:
        return np.concatenate([pixels, np.ones_like(pixels[..., :1])], -1)
    return pixels


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
        print(export_nuke(weights, args.out, config=args.config))
    elif args.int8:
        from .export import quantize_int8
        from .io import expand_inputs, is_video
        images = [p for p in expand_inputs(args.int8) if not is_video(p)]
        images = images[::max(1, len(images) // args.calibration_images)][:args.calibration_images]
        print(quantize_int8(args.model_onnx or shipped_model(), images, args.out))
    else:
        from .export import export_onnx
        print(export_onnx(weights, args.out))
    return 0


def cmd_train(args) -> int:
    from .train.trainer import TrainOptions, train

    opts = TrainOptions(config=args.config, data=tuple(args.data), cutouts=tuple(args.cutouts),
                        backgrounds=tuple(args.backgrounds), out=args.out, steps=args.steps, batch=args.batch,
                        size=args.size, lr=args.lr, seed=args.seed, stage=args.stage, workers=args.workers,
                        max_minutes=args.max_minutes, init_trunk=args.init_trunk or "",
                        init_weights=args.init_weights or "", schedule_minutes=args.schedule_minutes,
                        device=args.device)
    print(train(opts))
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate, evaluate_video

    if args.video:
        evaluate_video(args.data, model=args.model, config=args.config, backend=args.backend)
        return 0
    evaluate(args.data, out=args.out, model=args.model, config=args.config, backend=args.backend,
             limit=args.limit)
    return 0


def _model_args(p):
    p.add_argument("--model", help="a cramatte .onnx or .safetensors file (default: the shipped model)")
    p.add_argument("--config", default="realtime", help="realtime (default), fast or quality")
    p.add_argument("--backend", default="onnx", choices=["onnx", "torch"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, tensorrt, directml or coreml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cramatte", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("matte", help="matte images, folders of images, and videos")
    p.add_argument("inputs", nargs="+")
    p.add_argument("-o", "--out", required=True, help="output folder")
    _model_args(p)
    p.add_argument("--output", nargs="+", default=["alpha"], choices=OUTPUTS)
    p.add_argument("--background", default="colour:#00ff00", help="for composite: colour:#rrggbb, blur[:sigma], image:PATH")
    p.add_argument("--format", default="png", choices=["png", "exr"])
    p.add_argument("--depth", type=int, default=8, choices=[8, 16], help="PNG bit depth")
    p.add_argument("--video-codec", default="png", choices=["png", "prores", "vp9"],
                   help="png: an image sequence per output; prores (.mov) / vp9 (.webm): video with alpha")
    p.add_argument("--colorspace", default="auto", choices=["auto", "srgb", "linear"])
    p.add_argument("--threads", type=int)
    p.add_argument("--temporal", type=float, default=STRENGTH,
                   help="video mode: weight of the previous matte, carried along the optical flow, where the flow fits the picture (0: per frame)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_matte)

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
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("config", help="configuration name (realtime or quality)")
    p.add_argument("--data", nargs="+", required=True, help="folders of image/alpha pairs (or RGBA cut-outs)")
    p.add_argument("--cutouts", nargs="*", default=[])
    p.add_argument("--backgrounds", nargs="*", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage", default="joint", choices=["joint", "lowres", "refiner"])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop (checkpointed) after this many minutes")
    p.add_argument("--schedule-minutes", type=float, default=0.0,
                   help="the learning-rate cosine spans this much training time instead of --steps, then stops")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--init-trunk", help="MoveNet Lightning trunk ONNX to initialise the trunk from")
    p.add_argument("--init-weights", help="cramatte safetensors to start from")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="SAD, MSE, MAD, Grad, Conn and IoU on a matting set")
    p.add_argument("--data", required=True)
    p.add_argument("--out", default="runs/eval")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--video", action="store_true",
                   help="DATA holds one sub-folder per clip: report dtSSD and MAD, per-frame and video mode")
    _model_args(p)
    p.set_defaults(func=cmd_eval)

    for ep in entry_points(group="cramatte.commands"):  # host adapters add their own subcommands
        ep.load()(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError, OSError) as e:
        print(f"cramatte: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
