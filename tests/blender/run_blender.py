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


def clip_check(scene, sample, prefs):
    """A Movie Clip starting at scene frame 5, matted in video mode: the matte of scene frame N is the
    movie's frame N - 5."""
    import cv2

    from cramatte import Matter

    movie = work / "clip.mp4"
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"mp4v"), 25, (sample.shape[1], sample.shape[0]))
    for i in range(6):
        writer.write(np.ascontiguousarray(np.roll(sample, 8 * i, axis=1)[..., ::-1]))
    writer.release()
    clip = bpy.data.movieclips.load(str(movie))
    clip.frame_start = 5
    prefs.video_mode = True
    results["clip_op"] = sorted(bpy.ops.cramatte.matte(kind="CLIP", name=clip.name))
    folder = work / "cache" / "clip.mp4"
    results["clip_frames"] = sorted(int(p.stem.split("_")[1]) for p in folder.glob("matte_*.png"))
    cap = cv2.VideoCapture(str(movie))
    decoded = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        decoded.append(np.ascontiguousarray(bgr[..., ::-1]))
    matter = Matter(config="realtime")
    scores = {}
    for frame in (5, 7, 10):
        alpha = read_image(folder / f"matte_{frame:04d}.png")[0][..., 3] / 65535
        per_frame = [matter(f).alpha for f in decoded]
        ious = [float(((alpha > 0.5) & (p > 0.5)).sum() / ((alpha > 0.5) | (p > 0.5)).sum()) for p in per_frame]
        scores[frame] = {"best_source": int(np.argmax(ious)), "iou": max(ious),
                         "differs_from_per_frame": float(np.abs(alpha - per_frame[frame - 5]).max())}
    results["clip_alignment"] = scores
    results["clip_manifest_video"] = json.loads((folder / "cramatte.json").read_text())["settings"]["video"]
    prefs.video_mode = False


def modal_check():
    """The modal operator's own steps (BackgroundRun), as its timer drives them: a run to the end, and a
    run cancelled as Esc does, which keeps its finished frames for the next run."""
    import time

    from cramatte_blender.operators import BackgroundRun

    steps = []
    for cancel in (False, True):
        folder = work / "cache" / "plate_0001.png"
        for p in folder.glob("matte_*"):
            p.unlink()
        run = BackgroundRun(bpy.context, "IMAGE", "plate_0001.png")
        if cancel:
            run.cancel()
        while (state := run.step(bpy.context))[0] == "RUNNING":
            steps.append(state[1])
            time.sleep(0.02)
        results[f"modal_{'cancelled' if cancel else 'finished'}"] = list(state)
    results["modal_progress_seen"] = any("frame" in s for s in steps)
    bpy.ops.cramatte.matte(kind="IMAGE", name="plate_0001.png")  # whole again for the checks after this


def strip_colour(scene, path, sample):
    """Which of the movie's frames the scene's render shows (the sequencer's, by default)."""
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    render = read_image(path)[0]
    return int(np.argmin([np.abs(render[..., :3].astype(np.float32) - np.roll(sample, 8 * k, axis=1)).mean()
                          for k in range(12)]))


def strip_check(scene, sample, prefs):
    """A 30 fps movie strip in a 25 fps scene, starting at frame 10, trimmed by 2 at the start and 3 at
    the end: only the shown frames 12-18 are matted, matte N is the movie's frame N - 10, and the
    compositor, rendered at frame 14, shows the movie's frame 4 with that matte."""
    import cv2

    from cramatte import Matter

    movie = work / "strip30.mp4"
    writer = cv2.VideoWriter(str(movie), cv2.VideoWriter_fourcc(*"mp4v"), 30, (sample.shape[1], sample.shape[0]))
    for i in range(12):
        writer.write(np.ascontiguousarray(np.roll(sample, 8 * i, axis=1)[..., ::-1]))
    writer.release()
    scene.render.fps = 25
    editor = scene.sequence_editor_create()
    strips = editor.strips if hasattr(editor, "strips") else editor.sequences
    strip = strips.new_movie("walk", str(movie), channel=1, frame_start=10)
    strip.frame_offset_start, strip.frame_offset_end = 2, 3
    prefs.video_mode = True
    results["strip_op"] = sorted(bpy.ops.cramatte.matte(kind="STRIP", name=strip.name))
    folder = work / "cache" / "walk"
    results["strip_frames"] = sorted(int(p.stem.split("_")[1]) for p in folder.glob("matte_*.png"))
    cap = cv2.VideoCapture(str(movie))
    matter, per_frame = Matter(config="realtime"), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        per_frame.append(matter(np.ascontiguousarray(bgr[..., ::-1])).alpha)

    def best(alpha):
        ious = [float(((alpha > 0.5) & (p > 0.5)).sum() / ((alpha > 0.5) | (p > 0.5)).sum()) for p in per_frame]
        return int(np.argmax(ious)), max(ious)

    results["strip_matte_14"] = best(read_image(folder / "matte_0014.png")[0][..., 3] / 65535)
    scene.frame_start, scene.frame_end = 10, 21
    scene.frame_set(14)
    sequenced = strip_colour(scene, out / "sequencer_strip.png", sample)
    scene.render.filepath = str(out / "render_strip.png")
    scene.render.use_sequencer = False  # the compositor's picture, not the sequencer's
    bpy.ops.render.render(write_still=True)
    scene.render.use_sequencer = True
    render = read_image(out / "render_strip.png")[0]
    results["sequencer_source_14"] = sequenced
    results["strip_render_14"] = best(render[..., 3] / 255)
    colour = [float(np.abs(render[..., :3].astype(np.float32) - np.roll(sample, 8 * k, axis=1)).mean())
              for k in range(12)]
    results["strip_render_source"] = int(np.argmin(colour))
    scene.render.fps, scene.frame_start, scene.frame_end = 24, 1, 3
    prefs.video_mode = False


try:
    mod = addon_utils.enable("cramatte_blender", default_set=True)
    results["enabled"] = mod is not None and hasattr(bpy.ops.cramatte, "matte")
    prefs = bpy.context.preferences.addons["cramatte_blender"].preferences
    prefs.config, prefs.cache_folder, prefs.video_mode = "realtime", str(work / "cache"), False
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
    modal_check()
    clip_check(scene, sample, prefs)
    strip_check(scene, sample, prefs)
    # a saved .blend: mattes go to //cramatte/ and the matte image's path is relative; a second run
    # reuses the image datablock instead of making matte_0001.png.001
    (work / "project").mkdir(exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(work / "project" / "shot.blend"))
    for _ in range(2):
        bpy.ops.cramatte.matte(kind="IMAGE", name="plate_0001.png")
    mattes = [i for i in bpy.data.images if i.get("cramatte_matte_of") == "plate_0001.png"]
    results["matte_images"] = [(i.name, i.filepath) for i in mattes]
    results["ok"] = True
except Exception as e:
    import traceback
    results["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
(out / "results.json").write_text(json.dumps(results, indent=1))
