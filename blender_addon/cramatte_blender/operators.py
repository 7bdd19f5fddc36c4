"""The Matte Footage operator: runs the matting job in a background thread with Blender's progress
bar (Esc cancels), then loads the matte sequence and builds the compositor nodes."""
import os
import threading

import bpy

from . import footage, nodes


def _settings(context) -> dict:
    prefs = context.preferences.addons[__package__].preferences
    return {"model": bpy.path.abspath(prefs.model) if prefs.model else "", "config": prefs.config,
            "device": prefs.device, "format": prefs.file_format, "video": prefs.video_mode}


def _out_dir(context, name: str) -> str:
    prefs = context.preferences.addons[__package__].preferences
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if bpy.data.filepath:
        base = bpy.path.abspath("//cramatte")
    else:
        from cramatte.cache import user_cache
        base = bpy.path.abspath(prefs.cache_folder) if prefs.cache_folder else str(user_cache("blender"))
    return os.path.join(base, safe)


def _target(context, kind: str, name: str):
    if kind == "IMAGE":
        return bpy.data.images.get(name)
    if kind == "CLIP":
        return bpy.data.movieclips.get(name)
    ed = context.scene.sequence_editor
    strips = (ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all) if ed else None
    return strips.get(name) if strips else None


def _matte_image(first: str, footage_name: str):
    """The matte's image datablock: the one an earlier run made for this footage, pointed at the new
    files, or a new one. Its path is relative to the .blend (//...) once the .blend is saved."""
    path = bpy.path.relpath(first) if bpy.data.filepath else first
    image = next((i for i in bpy.data.images if i.get("cramatte_matte_of") == footage_name), None)
    if image is None:
        image = bpy.data.images.load(first, check_existing=True)
        image["cramatte_matte_of"] = footage_name
    image.filepath = path
    return image


def _finish(context, job, footage_target, frames):
    if not frames:
        raise ValueError("no frames were matted")
    first = job.path(frames[0])
    image = _matte_image(first, job.desc["name"])
    image.source = "SEQUENCE" if len(frames) > 1 else "FILE"
    image.alpha_mode = "STRAIGHT"
    image.colorspace_settings.name = "Linear Rec.709" if job.ext == ".exr" else "sRGB"
    image.reload()
    node_target = footage_target if isinstance(footage_target, (bpy.types.Image, bpy.types.MovieClip)) else \
        bpy.data.images.load(first if "movie" not in job.desc else job.desc["movie"], check_existing=True)
    nodes.build(context.scene, node_target, image, frames[0], len(frames),
                footage_start=None if node_target is footage_target else job.desc["start"])
    return image


def _prepare(context, kind: str, name: str):
    target = _target(context, kind, name)
    if target is None:
        raise ValueError(f"no {kind.lower()} named '{name}'")
    desc = footage.describe(target)
    return target, footage.MatteJob(desc, _out_dir(context, desc["name"]), _settings(context))


class BackgroundRun:
    """What the modal operator does: the job on a worker thread, and `step()` once per timer tick on the
    main thread (progress, then the node tree when the job ends). Blender calls execute() instead of
    invoke() when it has no event loop (background mode, bpy as a module), so the tests drive this class
    with the same calls the modal operator makes."""

    def __init__(self, context, kind: str, name: str):
        self.target, self.job = _prepare(context, kind, name)
        self.frames, self.progress = None, (0, self.job.total)
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self):
        try:
            self.frames = self.job.run(lambda done, total: setattr(self, "progress", (done, total)))
        except Exception as e:  # reported on the main thread
            self.job.error = f"{type(e).__name__}: {e}"

    def cancel(self) -> None:
        self.job.cancelled = True

    def step(self, context) -> tuple:
        """("RUNNING", progress text) while the job runs; then ("FINISHED" | "CANCELLED", report level, text)."""
        done, total = self.progress
        if self.thread.is_alive():
            return "RUNNING", f"cramatte: frame {done}" + (f" of {total}" if total else "") + " (Esc to cancel)"
        if self.job.error:
            return "CANCELLED", "ERROR", f"cramatte: {self.job.error}"
        if self.job.cancelled:
            return "CANCELLED", "WARNING", f"cramatte: cancelled after {done} frames (kept for the next run)"
        try:
            _finish(context, self.job, self.target, self.frames)
        except (ValueError, OSError) as e:
            return "CANCELLED", "ERROR", f"cramatte: {e}"
        return "FINISHED", "INFO", f"cramatte: matte of {len(self.frames)} frames ({self.job.reused} reused)"


class CRAMATTE_OT_matte(bpy.types.Operator):
    """Matte the footage (person -> alpha) and wire the result into the compositor"""
    bl_idname = "cramatte.matte"
    bl_label = "Matte Footage"
    bl_options = {"REGISTER"}

    kind: bpy.props.EnumProperty(items=[("IMAGE", "Image", ""), ("CLIP", "Movie Clip", ""),
                                        ("STRIP", "Sequencer Strip", "")], default="IMAGE")
    name: bpy.props.StringProperty(name="Footage")

    def execute(self, context):
        """Synchronous run (scripts, background mode)."""
        try:
            target, job = _prepare(context, self.kind, self.name)
            frames = job.run()
            image = _finish(context, job, target, frames)
        except (ImportError, ValueError, OSError) as e:
            self.report({"ERROR"}, f"cramatte: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"matte of {len(frames)} frames ({job.reused} reused) -> {image.name}")
        return {"FINISHED"}

    def invoke(self, context, event):
        try:
            self._run = BackgroundRun(context, self.kind, self.name)
        except (ImportError, ValueError, OSError) as e:
            self.report({"ERROR"}, f"cramatte: {e}")
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        wm = context.window_manager
        if event.type == "ESC":
            self._run.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state = self._run.step(context)
        if state[0] == "RUNNING":
            done, total = self._run.progress
            wm.progress_update(int(100 * done / total) if total else done % 100)
            if context.area:
                context.area.header_text_set(state[1])
            return {"PASS_THROUGH"}
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.area:
            context.area.header_text_set(None)
        self.report({state[1]}, state[2])
        return {state[0]}
