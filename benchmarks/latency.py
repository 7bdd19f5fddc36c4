"""End-to-end latency (uint8 frame in, alpha out) and peak memory per backend, configuration and size.

    python benchmarks/latency.py [--backends onnx onnx-fp32 torch] [--configs realtime fast quality] [--runs 30]
    python benchmarks/latency.py --split     # ms per stage inside Matter.alpha
    python benchmarks/latency.py --backends torch --device cuda    # on a GPU (torch fp16)

Each case runs in its own process so its peak resident memory (ru_maxrss) is its own.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

SIZES = {"1280x720": (720, 1280), "1920x1080": (1080, 1920), "3840x2160": (2160, 3840)}


def run_case(backend: str, config: str, size: str, runs: int, threads: int | None, device: str) -> dict:
    import cv2

    from cramatte import Matter
    from cramatte.runtime import shipped_model

    h, w = SIZES[size]
    base = cv2.resize(cv2.imread("examples/astronaut.png")[..., ::-1], (w, h))
    if backend == "onnx-fp32":  # the shipped fp32 graphs (the default CPU path runs the int8 ones)
        matter = Matter(shipped_model(), config=config, device=device, threads=threads)
    else:
        matter = Matter(config=config, backend=backend, device=device, threads=threads)
    for _ in range(2):
        matter(base)
    times = []
    for i in range(runs):
        frame = np.ascontiguousarray(np.roll(base, i * 7, axis=1))
        start = time.perf_counter()
        matter(frame)
        times.append((time.perf_counter() - start) * 1e3)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"backend": backend, "config": config, "size": size, "median_ms": float(np.median(times)),
            "min_ms": float(np.min(times)), "peak_mb": peak_mb, "providers": matter.providers}


def split(backend: str, config: str, size: str, runs: int) -> None:
    """ms per stage of the ONNX path, timed inside `Matter.alpha`: the low-resolution network, the
    refiner, and everything else (resize in, region selection and gathering, upsampling, paste)."""
    import cv2

    from cramatte import Matter
    from cramatte.runtime import shipped_model

    h, w = SIZES[size]
    frame = cv2.resize(cv2.imread("examples/astronaut.png")[..., ::-1], (w, h))
    matter = Matter(shipped_model() if backend == "onnx-fp32" else None, config=config, device="cpu")
    spent = {"coarse": 0.0, "refine": 0.0}
    regions = []

    def timer(name, fn):
        def run(*args):
            start = time.perf_counter()
            out = fn(*args)
            spent[name] += (time.perf_counter() - start) * 1e3
            return out
        return run

    matter.backend.coarse = timer("coarse", matter.backend.coarse)
    matter.backend.refine = timer("refine", lambda p, o, m, fn=matter.backend.refine: regions.append(len(p)) or fn(p, o, m))
    matter(frame)
    spent.update(coarse=0.0, refine=0.0)
    start = time.perf_counter()
    for _ in range(runs):
        matter(frame)
    total = (time.perf_counter() - start) * 1e3 / runs
    coarse, refine = spent["coarse"] / runs, spent["refine"] / runs
    print(f"{backend:9} {config:9} {size:10} low-res net {coarse:5.1f} ms | refiner {refine:5.1f} ms "
          f"({regions[-1]} of K={matter.config.regions(h, w)} regions) | rest {total - coarse - refine:5.1f} ms | "
          f"total {total:5.1f} ms")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backends", nargs="+", default=["onnx", "onnx-fp32", "torch"],
                   help="onnx: the default CPU path (int8 graphs); onnx-fp32: the fp32 graphs; torch")
    p.add_argument("--configs", nargs="+", default=["realtime", "fast", "quality"])
    p.add_argument("--sizes", nargs="+", default=list(SIZES))
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda, tensorrt, ... for the backends that have it")
    p.add_argument("--split", action="store_true", help="ms per stage (ONNX) instead of the end-to-end table")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.split:
        for backend in [b for b in args.backends if b.startswith("onnx")]:
            for config in args.configs:
                for size in args.sizes:
                    split(backend, config, size, args.runs)
        return
    if args.case:
        backend, config, size = args.case.split(",")
        print(json.dumps(run_case(backend, config, size, args.runs, args.threads, args.device)))
        return
    if args.device == "cuda":
        import torch
        print(f"device: {torch.cuda.get_device_name()} (torch {torch.__version__})")
    print(f"{'backend':8} {'config':9} {'size':10} {'median ms':>10} {'min ms':>8} {'fps':>6} {'peak MB':>8}")
    for backend in args.backends:
        for config in args.configs:
            for size in args.sizes:
                cmd = [sys.executable, __file__, "--case", f"{backend},{config},{size}", "--runs", str(args.runs),
                       "--device", args.device]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
                print(f"{backend:8} {config:9} {size:10} {r['median_ms']:10.1f} {r['min_ms']:8.1f} "
                      f"{1e3 / r['median_ms']:6.1f} {r['peak_mb']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
