"""Runs in a Python with bpy, started with -I -S: only bpy and numpy (what Blender itself ships) can be
imported until the extension zip is installed the way Preferences > Get Extensions > Install from Disk
does it. Then the installed add-on mattes a 3-frame PNG sequence; what it saw goes to OUT/results.json.
usage: python -I -S install_extension.py SITE_PACKAGES ZIP WORK_DIR OUT_DIR SAMPLE"""
import json
import os
import sys
import traceback
from pathlib import Path

site_packages, zip_path, work, out, sample_path = (Path(a).resolve() for a in sys.argv[1:6])
shipped = work / "blender_python"  # the packages a Blender install has, and nothing of this checkout
shipped.mkdir(parents=True, exist_ok=True)
for name in ("bpy", "numpy", "numpy.libs"):
    if (site_packages / name).exists() and not (shipped / name).exists():
        (shipped / name).symlink_to(site_packages / name)
sys.path.insert(0, str(shipped))
os.environ["BLENDER_USER_RESOURCES"] = str(work / "blender_user")

import bpy  # noqa: E402

results = {"blender": bpy.app.version_string}
try:
    results["install"] = sorted(bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True))
    import cv2
    import cramatte
    import onnxruntime
    import simplejpeg

    results["modules"] = {m.__name__: m.__file__ for m in (cramatte, cv2, onnxruntime, simplejpeg)}
    prefs = bpy.context.preferences.addons["bl_ext.user_default.cramatte"].preferences
    prefs.config, prefs.cache_folder, prefs.video_mode = "realtime", str(work / "cache"), False
    plates = work / "plates"
    plates.mkdir(exist_ok=True)
    sample = cv2.resize(cv2.imread(str(sample_path)), (128, 128))
    for i in range(1, 4):
        cv2.imwrite(str(plates / f"plate_{i:04d}.png"), sample if i != 2 else cv2.flip(sample, 1))
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 3
    image = bpy.data.images.load(str(plates / "plate_0001.png"))
    image.source = "SEQUENCE"
    results["matte"] = sorted(bpy.ops.cramatte.matte(kind="IMAGE", name=image.name))
    results["mattes"] = sorted(str(p) for p in (work / "cache" / image.name).glob("matte_*.png"))
    results["ok"] = True
except Exception as e:
    results["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
(out / "results.json").write_text(json.dumps(results, indent=1))
