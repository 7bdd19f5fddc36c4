"""Score configurations side by side on matting sets: the named ones, and variants of the low-res input
size and the region budget (the levers of the model card).

    python scripts/eval_configs.py --data ../shared/data/dev ../shared/data/dev_real [--model M.onnx]
        [--configs realtime fast quality] [--variants] [--sources]

Prints one row per configuration and set: MAD x1e3, Grad (/1000, sigma 1.4), IoU, SAD, the share of
partly transparent pixels (beside the truth's) and the haze (mean alpha far from the subject, x1e3), as
`cramatte eval` computes them, and with --sources the MAD of each source (the CPU default: the shipped
int8 graphs unless --model says otherwise).
"""
import argparse
import contextlib
import io
import tempfile
from pathlib import Path

from cramatte import Matter
from cramatte.evaluate import evaluate
from cramatte.model.configs import Config, get_config

VARIANTS = {
    "320 px, 6/edge, no cap": Config("v", 320, 6.0),
    "320 px, 12/edge, no cap": Config("v", 320, 12.0),
    "320 px, coarse only (1 region)": Config("v", 320, 0.001, 1),
    "512 px, 6/edge, at most 500": Config("v", 512, 6.0, 500),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True)
    p.add_argument("--model")
    p.add_argument("--backend", default="onnx", help="onnx (default) or torch (for a .safetensors model)")
    p.add_argument("--configs", nargs="*", default=["realtime", "fast", "quality"])
    p.add_argument("--variants", action="store_true", help="also the lever variants above")
    p.add_argument("--sources", action="store_true", help="also MAD per source (the name's prefix before __)")
    args = p.parse_args()
    configs = {name: get_config(name) for name in args.configs}
    if args.variants:
        configs.update(VARIANTS)
    print(f"{'configuration':32} {'set':10} {'MAD':>7} {'Grad':>7} {'IoU':>7} {'SAD':>6} {'soft %':>6} {'haze':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in configs.items():
            matter = Matter(args.model, config=cfg, backend=args.backend, device="cpu")
            for data in args.data:
                with contextlib.redirect_stdout(io.StringIO()):
                    r = evaluate(data, out=Path(tmp), matter=matter, sheet_rows=0, worst=0)
                print(f"{name:32} {Path(data).name:10} {r['mad']:7.2f} {r['grad']:7.4f} {r['iou']:7.4f} "
                      f"{r['sad']:6.2f} {100 * r['soft']:6.1f} {r['far']:6.2f}  (truth soft {100 * r['soft_gt']:.1f}%)", flush=True)
                if args.sources and r["sources"]:
                    print("    " + ", ".join(f"{k} {m:.1f} ({n})" for k, (m, n) in r["sources"].items()), flush=True)


if __name__ == "__main__":
    main()
