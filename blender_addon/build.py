"""Build the installable Blender extension, one zip per platform as the extensions platform expects:
the add-on, cramatte's wheel and that platform's runtime wheels (onnxruntime, OpenCV headless, OpenEXR,
platformdirs, simplejpeg, tqdm; never torch; numpy comes with Blender), split, packed and validated by
Blender's own extension tool (`build --split-platforms`).

    python blender_addon/build.py --blender-python PY [--platforms linux-x64 windows-x64 macos-arm64] -o dist

PY is a Python with bpy (its bundled `blender_ext.py` builds and validates, as `blender --command
extension build` would). Wheels are fetched from PyPI for Blender's Python (3.11 for 4.2-5.0).
"""
import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNTIME = ["onnxruntime", "opencv-python-headless<=4.11.0.86", "OpenEXR", "platformdirs", "simplejpeg", "tqdm"]
PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_13_0_arm64", "macosx_14_0_arm64"],
}


def blender_ext(python: str) -> list:
    code = "import bpy; print(bpy.utils.system_resource('SCRIPTS'))"
    scripts = Path(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    tool = scripts / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    if not tool.is_file():
        sys.exit(f"blender_ext.py not found under {scripts}")
    return [python, str(tool)]


def build(platforms, python_version: str, blender_python: str, out: Path) -> list:
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / "cramatte"
        shutil.copytree(HERE / "cramatte_blender", stage, ignore=shutil.ignore_patterns("__pycache__"))
        wheels = stage / "wheels"
        pip = [sys.executable, "-m", "pip", "-q"]
        subprocess.run(pip + ["wheel", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
        for plat in platforms:
            tags = [a for t in PLATFORMS[plat] for a in ("--platform", t)]
            subprocess.run(pip + ["download", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
                                  "--implementation", "cp", *tags, "-d", str(wheels), *RUNTIME], check=True)
        names = sorted(f"./wheels/{w.name}" for w in wheels.glob("*.whl"))
        manifest = (stage / "blender_manifest.toml").read_text()
        manifest = re.sub(r"(?m)^wheels = \[\]$", "wheels = [\n" + "".join(f'  "{n}",\n' for n in names) + "]", manifest)
        manifest = re.sub(r"(?m)^platforms = .*$", "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]", manifest)
        (stage / "blender_manifest.toml").write_text(manifest)
        out.mkdir(parents=True, exist_ok=True)
        tool = blender_ext(blender_python)
        subprocess.run(tool + ["build", "--split-platforms", "--source-dir", str(stage), "--output-dir", str(out)],
                       check=True)
        zips = [z for p in platforms for z in sorted(out.glob(f"cramatte-*-{p.replace('-', '_')}.zip"))]
        for z in zips:
            subprocess.run(tool + ["validate", str(z)], check=True)
        return zips


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--platforms", nargs="+", default=list(PLATFORMS), choices=list(PLATFORMS))
    p.add_argument("--python-version", default="3.11", help="Blender's Python: 3.11 (4.2-5.0) or 3.13 (5.1+)")
    p.add_argument("--blender-python", required=True, help="a Python with the bpy module")
    p.add_argument("-o", "--out", default="dist", type=Path)
    args = p.parse_args()
    for z in build(args.platforms, args.python_version, args.blender_python, args.out):
        print(f"{z}  {z.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
