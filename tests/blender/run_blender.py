"""Runs inside a Python that has bpy (Blender as a module): enables the add-on, mattes a short
sequence made from the sample (as sRGB PNGs and as scene-linear EXRs), renders the compositor and
writes what it saw to OUT/results.json. usage: run_blender.py ADDON_DIR WORK_DIR OUT_DIR"""
import hashlib
import json
import os
import sys
from pathlib import Path

addon_dir, work, out = (Path(a).resolve() for a in sys.argv[1:4])
scripts = work / "scripts"
(scripts / "addons").mkdir(parents=True, exist_ok=True)
link = scripts / "addons" / "cramatte_blender"
if not link.exists():
    link.symlink_to(addon_dir, target_is_directory=True)
os.environ["BLENDER_USER_RESOURCES"] = str(work / "blender_user")  # keep the user's own config out of it

import bpy  # noqa: E402  (bpy first: it puts Blender's script modules on sys.path)
import addon_utils  # noqa: E402

sys.path.insert(0, str(scripts / "addons"))  # after bpy, which sets up sys.path itself
import numpy as np  # noqa: E402

from cramatte.frames import srgb_to_linear  # noqa: E402
from cramatte.io import read_image, write_exr, write_image  # noqa: E402

results = {"blender": bpy.app.version_string}


def digest(folder: Path) -> dict:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def make_plates(sample: np.ndarray):
    png, exr = work / "plate_png", work / "plate_exr"
    png.mkdir(exist_ok=True)
    exr.mkdir(exist_ok=True)
    for i in range(1, 4):
        frame = np.roll(sample, 6 * i, axis=1)
        write_image(png / f"plate_{i:04d}.png", frame.astype(np.float32) / 255, overwrite=True)
        write_exr(exr / f"plate_{i:04d}.exr", srgb_to_linear(frame.astype(np.float32) / 255))
    return png, exr


def setup_scene(w: int, h: int):
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = w, h, 100
    scene.frame_start, scene.frame_end = 1, 3
    scene.view_settings.view_transform = "Standard"
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.use_compositing = True
    if scene.camera is None:
        cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        scene.collection.objects.link(cam)
        scene.camera = cam
    return scene


def matte_and_render(scene, plate_dir: Path, ext: str, tag: str):
    image = bpy.data.images.load(str(plate_dir / f"plate_0001{ext}"))
    image.source = "SEQUENCE"
    if ext == ".exr":
        image.colorspace_settings.name = "Linear Rec.709"
    result = bpy.ops.cramatte.matte(kind="IMAGE", name=image.name)
    results[f"{tag}_op"] = sorted(result)
    scene.frame_set(2)
    scene.render.filepath = str(out / f"render_{tag}.png")
    bpy.ops.render.render(write_still=True)
    return image


try:
    mod = addon_utils.enable("cramatte_blender", default_set=True)
    results["enabled"] = mod is not None and hasattr(bpy.ops.cramatte, "matte")
    prefs = bpy.context.preferences.addons["cramatte_blender"].preferences
    prefs.config, prefs.cache_folder = "realtime", str(work / "cache")
    sample = read_image(Path(sys.argv[4]))[0][::4, ::4][..., :3]  # 128x128
    png, exr = make_plates(sample)
    before = {"png": digest(png), "exr": digest(exr)}
    scene = setup_scene(sample.shape[1], sample.shape[0])
    matte_and_render(scene, png, ".png", "png")
    tree = scene.compositing_node_group if hasattr(scene, "compositing_node_group") else scene.node_tree
    results["nodes"] = sorted(n.bl_idname for n in tree.nodes)
    set_alpha = tree.nodes["cramatte set alpha"]
    results["set_alpha_mode"] = set_alpha.inputs["Type"].default_value if "Type" in set_alpha.inputs else set_alpha.mode
    results["links"] = sorted(f"{l.from_node.name}:{l.from_socket.name}->{l.to_node.name}:{l.to_socket.name}"
                              for l in tree.links)
    matte_dir = work / "cache" / "plate_0001.png"
    first_mtimes = {p.name: p.stat().st_mtime_ns for p in matte_dir.glob("matte_*")}
    bpy.ops.cramatte.matte(kind="IMAGE", name="plate_0001.png")  # unchanged: every frame reused
    results["reused_unchanged"] = first_mtimes == {p.name: p.stat().st_mtime_ns for p in matte_dir.glob("matte_*")}
    matte_and_render(scene, exr, ".exr", "exr")
    results["matte_png_dir"], results["matte_exr_dir"] = str(matte_dir), str(work / "cache" / "plate_0001.exr")
    results["sources_untouched"] = before == {"png": digest(png), "exr": digest(exr)}
    results["ok"] = True
except Exception as e:
    import traceback
    results["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
(out / "results.json").write_text(json.dumps(results, indent=1))
