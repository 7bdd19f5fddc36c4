"""The Portrait Matte video filter: libobs callbacks, settings, and the render path.

video_render never waits for the model. Each frame of the source is kept as a GPU texture for as long
as it may be shown or its matte is awaited (at most KEEP_BYTES of them); a frame is staged for the
cramatte worker when it is idle (and every N frames), and read back a frame later. By default each
output frame is a kept frame drawn with the matte computed from that same frame, so the video is
delayed by the matte's latency and the matte never trails the picture ("Lowest latency" draws the
newest frame with the newest matte instead). A frame is read back only for an idle worker, so the
render thread pays for one read-back per matte. Until a matte exists, or when cramatte is missing or
the model failed to load, the source passes through unchanged.
"""
import ctypes
import os
import time

import libobs as L

ID = b"cramatte_portrait_matte"
NAME = ctypes.create_string_buffer(b"Portrait Matte (cramatte)")
PRESETS = {"fast": "fast", "balanced": "realtime", "quality": "quality"}  # preset -> cramatte configuration
KEEP_BYTES = 256 << 20  # GPU memory for kept source frames: the video can wait this long for its mattes
KEEP_MAX = 90  # frames (3 s at 30 fps), whatever the size
BACKGROUNDS = ["transparent", "colour", "blur", "image"]
DEVICE_LABELS = {"cpu": "CPU", "cuda": "CUDA", "tensorrt": "TensorRT", "directml": "DirectML", "coreml": "CoreML"}
EFFECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "matte.effect")

# What the script tells the filter: the import error, if cramatte cannot be imported, and the Python
# environment cramatte was found in (the model runs in a child process of its interpreter).
state = {"import_error": None, "python_env": ""}


def log(level: int, text: str) -> None:
    if lib is not None:
        lib.blog(level, b"%s", f"[cramatte] {text}".encode())


def read_settings(settings) -> dict:
    s = lambda k: (lib.obs_data_get_string(settings, k.encode()) or b"").decode()
    return {"preset": s("preset") or "balanced", "device": s("device") or "auto",
            "threads": int(lib.obs_data_get_int(settings, b"threads")),
            "every": max(1, int(lib.obs_data_get_int(settings, b"every"))),
            "smoothing": float(lib.obs_data_get_double(settings, b"smoothing")),
            "grow": float(lib.obs_data_get_double(settings, b"grow")),
            "feather": float(lib.obs_data_get_double(settings, b"feather")),
            "background": s("background") or "transparent",
            "blur": float(lib.obs_data_get_double(settings, b"blur")),
            "colour": int(lib.obs_data_get_int(settings, b"colour")),
            "image": s("image"), "show_matte": bool(lib.obs_data_get_bool(settings, b"show_matte")),
            "sync": s("sync") or "frame"}


def defaults(settings) -> None:
    lib.obs_data_set_default_string(settings, b"preset", b"balanced")
    lib.obs_data_set_default_string(settings, b"device", b"auto")
    lib.obs_data_set_default_int(settings, b"threads", 0)
    lib.obs_data_set_default_int(settings, b"every", 1)
    lib.obs_data_set_default_double(settings, b"smoothing", 0.3)
    lib.obs_data_set_default_double(settings, b"grow", 0.0)
    lib.obs_data_set_default_double(settings, b"feather", 1.0)
    lib.obs_data_set_default_string(settings, b"background", b"transparent")
    lib.obs_data_set_default_double(settings, b"blur", 12.0)
    lib.obs_data_set_default_int(settings, b"colour", 0xFF00FF00)
    lib.obs_data_set_default_bool(settings, b"show_matte", False)
    lib.obs_data_set_default_string(settings, b"sync", b"frame")


def properties(filt) -> int:
    props = lib.obs_properties_create()
    if state["import_error"] or (filt and filt.error):
        lib.obs_properties_add_text(props, b"status", (state["import_error"] or filt.error).encode(), L.TEXT_INFO)
    plist = lib.obs_properties_add_list(props, b"preset", b"Quality / speed", L.COMBO_TYPE_LIST, L.COMBO_FORMAT_STRING)
    for key, label in (("fast", "Fast (256 px internal)"), ("balanced", "Balanced (320 px internal)"),
                       ("quality", "Quality (every uncertain region refined)")):
        lib.obs_property_list_add_string(plist, label.encode(), key.encode())
    dlist = lib.obs_properties_add_list(props, b"device", b"Device", L.COMBO_TYPE_LIST, L.COMBO_FORMAT_STRING)
    lib.obs_property_list_add_string(dlist, b"Automatic", b"auto")
    for dev in available_devices():
        lib.obs_property_list_add_string(dlist, DEVICE_LABELS[dev].encode(), dev.encode())
    lib.obs_properties_add_int_slider(props, b"threads", b"CPU threads (0: half the cores)", 0, os.cpu_count() or 8, 1)
    lib.obs_properties_add_int_slider(props, b"every", b"Compute every N frames", 1, 10, 1)
    lib.obs_properties_add_float_slider(props, b"smoothing", b"Temporal smoothing", 0.0, 0.95, 0.05)
    lib.obs_properties_add_float_slider(props, b"grow", b"Edge: shrink (-) / grow (+), px", -10.0, 10.0, 0.5)
    lib.obs_properties_add_float_slider(props, b"feather", b"Edge: feather outward, px", 0.0, 20.0, 0.5)
    blist = lib.obs_properties_add_list(props, b"background", b"Background", L.COMBO_TYPE_LIST, L.COMBO_FORMAT_STRING)
    for key in BACKGROUNDS:
        lib.obs_property_list_add_string(blist, key.capitalize().encode(), key.encode())
    lib.obs_properties_add_float_slider(props, b"blur", b"Background blur strength", 1.0, 50.0, 1.0)
    lib.obs_properties_add_color(props, b"colour", b"Background colour")
    lib.obs_properties_add_path(props, b"image", b"Background image", L.PATH_FILE,
                                b"Images (*.png *.jpg *.jpeg *.bmp)", None)
    lib.obs_properties_add_bool(props, b"show_matte", b"Show matte")
    slist = lib.obs_properties_add_list(props, b"sync", b"Timing", L.COMBO_TYPE_LIST, L.COMBO_FORMAT_STRING)
    lib.obs_property_list_add_string(slist, b"Each frame with its own matte (video delayed)", b"frame")
    lib.obs_property_list_add_string(slist, b"Lowest latency (matte may trail motion)", b"latency")
    if filt is not None and filt.settings.get("sync") == "frame":
        delay = f"{filt.delay} frames ({filt.delay_ms:.0f} ms)" if filt.delay_ms else "not measured yet"
        lib.obs_properties_add_text(props, b"delay", f"Video delay: {delay}. Set the audio sync offset of "
                                    f"this source's audio to match (Audio Mixer > Advanced Audio Properties)."
                                    .encode(), L.TEXT_INFO)
    return props


def available_devices() -> list:
    try:
        from cramatte.backends import available_devices as devices
        return devices()
    except ImportError:
        return ["cpu"]


class PortraitMatte:
    """One filter instance. All methods run on OBS threads and never raise into libobs."""

    def __init__(self, source):
        self.source, self.settings = source, {}
        self.live = None
        self.error = state["import_error"]
        self.alpha_tex = self.bg_tex = self.blur_tex = self.effect = None
        self.stages: list = []  # two staging surfaces: one read back while the next frame is staged
        self.staged = None  # (stage index, frame number) staged on the previous frame
        self.frames: dict = {}  # frame number -> texrender of the source frames kept, oldest first
        self.spare: list = []  # texrenders no longer needed, for the next frames
        self.awaiting = None  # the frame number whose matte the worker is making
        self.arrivals: list = []  # frames between a frame's render and its matte's arrival
        self.delay, self.delay_ms, self.seen_version, self.frame_times = 0, 0.0, -1, []
        self.blur_size, self.blur_version = (0, 0), -1
        self.params = {}
        self.size = (0, 0)
        self.alpha_version = -1
        self.frame = 0
        self.render_ms: list = []

    # --- settings -------------------------------------------------------------------------------
    def update(self, settings: dict) -> None:
        old, self.settings = self.settings, settings
        model_keys = ("preset", "device", "threads")
        if self.live is None or any(old.get(k) != settings[k] for k in model_keys):
            self._restart()
        else:
            self.live.smoothing, self.live.grow, self.live.feather = \
                settings["smoothing"], settings["grow"], settings["feather"]
            self.live.blur = self._blur()
        if old.get("image") != settings["image"]:
            self._bg_pixels = self._load_background(settings["image"])

    def _restart(self) -> None:
        if self.live is not None:
            self.live.close(timeout=0.5)
            self.live = None
        if state["import_error"]:
            return
        from cramatte.live import LiveMatter, python_interpreter

        s = self.settings
        config = PRESETS.get(s["preset"], PRESETS["balanced"])
        # Automatic threads leave half the cores to OBS, the game and the encoder.
        threads = s["threads"] or max(1, (os.cpu_count() or 2) // 2)
        matter = {"config": config, "device": s["device"], "threads": threads}
        python = python_interpreter(state["python_env"]) if state["python_env"] else None
        self.live = LiveMatter(matter, s["smoothing"], s["grow"], s["feather"], nice=10, blur=self._blur(),
                               python=python)
        if self.live.proc is not None:
            log(L.LOG_INFO, f"model ({config}) in process {self.live.proc.pid} of {self.live.proc.args[0]}")
        self.alpha_version = -1

    def _blur(self) -> float:
        """The worker blurs each frame only while the background is set to blur."""
        return self.settings["blur"] if self.settings.get("background") == "blur" else 0.0

    def _load_background(self, path: str):
        if not path:
            return None
        try:
            from cramatte.io import read_image
            import numpy as np
            img, _ = read_image(path)
            if img.dtype != np.uint8:
                img = (np.clip(img / (65535 if img.dtype == np.uint16 else 1), 0, 1) * 255).astype(np.uint8)
            if img.shape[2] == 3:
                img = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
            return np.ascontiguousarray(img)
        except Exception as e:
            log(L.LOG_WARNING, f"background image {path}: {e}")
            return None

    # --- graphics -------------------------------------------------------------------------------
    def _ensure_graphics(self, w: int, h: int) -> bool:
        if self.effect is None:
            err = ctypes.c_char_p()
            with open(EFFECT, "rb") as f:
                self.effect = lib.gs_effect_create(f.read(), EFFECT.encode(), ctypes.byref(err))
            if not self.effect:
                self.error = f"shader failed to compile: {(err.value or b'').decode()}"
                log(L.LOG_ERROR, self.error)
                return False
            self.params = {n: lib.gs_effect_get_param_by_name(self.effect, n.encode())
                           for n in ("image", "matte", "background", "bg_color", "mode")}
        if self.size != (w, h):
            for tex, destroy in [(t, lib.gs_stagesurface_destroy) for t in self.stages] + [
                    (self.alpha_tex, lib.gs_texture_destroy)]:
                if tex:
                    destroy(tex)
            self.stages = [lib.gs_stagesurface_create(w, h, L.GS_RGBA) for _ in range(2)]
            self.alpha_tex = lib.gs_texture_create(w, h, L.GS_R8, 1, None, L.GS_DYNAMIC)
            self.size, self.alpha_version, self.staged, self.awaiting = (w, h), -1, None, None
            self.spare += self.frames.values()
            self.frames, self.arrivals = {}, []
            if self.live is not None:
                self.live.reset()
        bg = getattr(self, "_bg_pixels", None)
        if bg is not None:
            if self.bg_tex:
                lib.gs_texture_destroy(self.bg_tex)
            data = ctypes.c_void_p(bg.ctypes.data)
            self.bg_tex = lib.gs_texture_create(bg.shape[1], bg.shape[0], L.GS_RGBA, 1, ctypes.byref(data), 0)
            self._bg_pixels = None
        return True

    def _grab(self, target, texrender, w: int, h: int) -> bool:
        """Render the target (the source below this filter) into `texrender`."""
        lib.gs_texrender_reset(texrender)
        if not lib.gs_texrender_begin(texrender, w, h):
            return False
        clear = L.Vec4(0, 0, 0, 0)
        lib.gs_clear(L.GS_CLEAR_COLOR, ctypes.byref(clear), 0.0, 0)
        lib.gs_ortho(0.0, float(w), 0.0, float(h), -100.0, 100.0)
        lib.gs_blend_state_push()
        lib.gs_reset_blend_state()
        flags = lib.obs_source_get_output_flags(target)
        if target == lib.obs_filter_get_parent(self.source) and not flags & (L.SOURCE_ASYNC | L.SOURCE_CUSTOM_DRAW):
            # As libobs does for a filtered synchronous source: draw it in the default effect.
            tech = lib.gs_effect_get_technique(lib.obs_get_base_effect(L.EFFECT_DEFAULT), b"Draw")
            for i in range(lib.gs_technique_begin(tech)):
                lib.gs_technique_begin_pass(tech, i)
                lib.obs_source_video_render(target)
                lib.gs_technique_end_pass(tech)
            lib.gs_technique_end(tech)
        else:
            lib.obs_source_video_render(target)
        lib.gs_blend_state_pop()
        lib.gs_texrender_end(texrender)
        return True

    def _read_back(self, w: int, h: int) -> None:
        """Map the surface staged on an earlier frame (no stall waiting for the GPU) and submit it."""
        import numpy as np

        (index, tag), self.staged = self.staged, None
        stage = self.stages[index]
        data, linesize = ctypes.POINTER(ctypes.c_uint8)(), ctypes.c_uint32()
        if lib.gs_stagesurface_map(stage, ctypes.byref(data), ctypes.byref(linesize)):
            try:
                buf = np.ctypeslib.as_array(data, shape=(h * linesize.value,))
                frame = buf.reshape(h, linesize.value)[:, :w * 4].reshape(h, w, 4).copy()
            finally:
                lib.gs_stagesurface_unmap(stage)
            self.live.submit(frame, tag)

    def render(self) -> None:
        start = time.perf_counter()
        try:
            self._render()
        finally:
            self.render_ms.append((time.perf_counter() - start) * 1e3)
            if len(self.render_ms) >= 100:
                ms = sorted(self.render_ms)
                latency = f", matte {self.live.last_ms:.0f} ms" if self.live else ""
                if self.settings.get("sync") == "frame":
                    latency += f", video delay {self.delay} frames ({self.delay_ms:.0f} ms)"
                log(L.LOG_INFO, f"render thread ({self.size[0]}x{self.size[1]}): median {ms[50]:.2f} ms, "
                                f"max {ms[-1]:.2f} ms per frame{latency}")
                self.render_ms.clear()

    def _render(self) -> None:
        """Every frame is kept; one at a time is staged for the worker (read back a frame later, so
        the render thread never waits for the GPU). In "frame" timing the filter shows the kept
        frame `delay` frames back with the matte made from it (or, for a frame that got none, the
        nearest earlier one); `delay` is the longest recent wait for a matte. In "latency" timing it
        shows the newest frame with the newest matte."""
        target = lib.obs_filter_get_target(self.source)
        w, h = lib.obs_source_get_base_width(target), lib.obs_source_get_base_height(target)
        live = self.live
        if not target or not w or not h or live is None or live.error or not self._ensure_graphics(w, h):
            self.error = self.error or (live.error if live else None)
            lib.obs_source_skip_video_filter(self.source)
            return
        self.frame += 1
        fid, texrender = self.frame, self._take(w, h)
        self.frames[fid] = texrender
        if not self._grab(target, texrender, w, h):
            self.spare.append(self.frames.pop(fid))
            lib.obs_source_skip_video_filter(self.source)
            return
        self.frame_times = (self.frame_times + [time.perf_counter()])[-31:]
        index, busy = 0, not live.idle  # read back a frame only for a worker that will start on it at once
        if self.staged is not None:
            index = 1 - self.staged[0]
            self._read_back(w, h)
        if not busy and fid % self.settings["every"] == 0:
            lib.gs_stage_texture(self.stages[index], lib.gs_texrender_get_texture(texrender))
            self.staged, self.awaiting = (index, fid), fid
        mattes = live.mattes()
        if not mattes or mattes[-1][1].shape != (h, w):
            self._release(fid if self.awaiting is None else self.awaiting)
            lib.obs_source_skip_video_filter(self.source)
            return
        show, (_, alpha, version) = self._choose(fid, mattes)
        if version != self.alpha_version:
            lib.gs_texture_set_image(self.alpha_tex, alpha.ctypes.data, w, False)
            self.alpha_version = version
        self._draw(lib.gs_texrender_get_texture(self.frames[show]), live, w, h)
        self._release(self._oldest_needed(fid, show, mattes))

    def _take(self, w: int, h: int):
        """A texrender for the next source frame: a spare one, a new one while under the memory budget,
        else the oldest kept frame's."""
        if self.spare:
            return self.spare.pop()
        if len(self.frames) < max(4, min(KEEP_MAX, KEEP_BYTES // (w * h * 4))):
            return lib.gs_texrender_create(L.GS_RGBA, L.GS_ZS_NONE)
        return self.frames.pop(next(iter(self.frames)))

    def _release(self, oldest: int) -> None:
        """Frames before `oldest` will not be shown again: their texrenders become spares (two at most)."""
        for old in [f for f in self.frames if f < oldest]:
            self.spare.append(self.frames.pop(old))
        while len(self.spare) > 2:
            lib.gs_texrender_destroy(self.spare.pop())

    def _oldest_needed(self, fid: int, show: int, mattes: list) -> int:
        """The oldest frame that may be shown again: the one shown now, the newest matte's own (shown
        again while the worker falls behind) and the one the worker is matting (`_choose` may clear it)."""
        return min(show, mattes[-1][0], fid if self.awaiting is None else self.awaiting)

    def _choose(self, fid: int, mattes: list) -> tuple:
        """(frame number to show, its matte entry) for this render."""
        newest = mattes[-1]
        if newest[2] != self.seen_version:
            self.seen_version = newest[2]
            if self.awaiting is not None and newest[0] >= self.awaiting:
                self.awaiting = None
            self.arrivals = (self.arrivals + [fid - newest[0]])[-30:]
            self.delay = max(self.arrivals)
            span = self.frame_times[-1] - self.frame_times[0] if len(self.frame_times) > 1 else 0.0
            self.delay_ms = 1000 * self.delay * span / max(1, len(self.frame_times) - 1)
        if self.settings["sync"] != "frame":
            return fid, newest
        show = fid - self.delay
        if show not in self.frames:
            show = fid
        earlier = [m for m in mattes if m[0] <= show]
        if earlier and show - earlier[-1][0] < self.settings["every"]:
            return show, earlier[-1]  # its own matte, or with "every N" one at most N-1 frames older
        # the worker fell behind: the newest frame up to `show` that has its own matte is shown again
        # rather than a frame with another frame's matte
        kept = [m for m in mattes if m[0] in self.frames]
        own = [m for m in kept if m[0] <= show] or kept
        if own:
            return own[-1][0], own[-1]
        return fid, newest

    def _draw(self, image, live, w: int, h: int) -> None:
        s = self.settings
        mode = 4 if s["show_matte"] else BACKGROUNDS.index(s["background"]) if s["background"] in BACKGROUNDS else 0
        if mode == 3 and not self.bg_tex or mode == 2 and not self._upload_blur(live):
            mode = 0
        c = s["colour"]
        colour = L.Vec4((c & 0xFF) / 255, ((c >> 8) & 0xFF) / 255, ((c >> 16) & 0xFF) / 255, ((c >> 24) & 0xFF) / 255)
        background = self.blur_tex if mode == 2 else self.bg_tex
        lib.gs_effect_set_texture(self.params["image"], image)
        lib.gs_effect_set_texture(self.params["matte"], self.alpha_tex)
        lib.gs_effect_set_texture(self.params["background"], background or self.alpha_tex)
        lib.gs_effect_set_vec4(self.params["bg_color"], ctypes.byref(colour))
        lib.gs_effect_set_int(self.params["mode"], mode)
        while lib.gs_effect_loop(self.effect, b"Draw"):
            lib.gs_draw_sprite(image, 0, w, h)

    def _upload_blur(self, live) -> bool:
        """Upload the worker's newest blurred frame (small: the shader's linear sampling stretches it)."""
        pixels, version = live.latest_background()
        if pixels is None:
            return self.blur_tex is not None
        if version != self.blur_version:
            size = (pixels.shape[1], pixels.shape[0])
            if size != self.blur_size:
                if self.blur_tex:
                    lib.gs_texture_destroy(self.blur_tex)
                self.blur_tex = lib.gs_texture_create(size[0], size[1], L.GS_RGBA, 1, None, L.GS_DYNAMIC)
                self.blur_size = size
            import numpy as np
            pixels = np.ascontiguousarray(pixels)
            lib.gs_texture_set_image(self.blur_tex, pixels.ctypes.data, size[0] * 4, False)
            self.blur_version = version
        return True

    def destroy(self) -> None:
        if self.live is not None:
            self.live.close(timeout=1.0)
            self.live = None
        lib.obs_enter_graphics()
        try:
            owned = [(t, lib.gs_stagesurface_destroy) for t in self.stages]
            owned += [(t, lib.gs_texture_destroy) for t in (self.alpha_tex, self.bg_tex, self.blur_tex)]
            owned += [(t, lib.gs_texrender_destroy) for t in [*self.frames.values(), *self.spare]]
            owned += [(self.effect, lib.gs_effect_destroy)]
            for tex, fn in owned:
                if tex:
                    fn(tex)
        finally:
            lib.obs_leave_graphics()


# --- registration: one source type per OBS process, kept alive across script reloads ---------------
lib = None
instances: dict = {}
_next_id = [1]


def _guard(default=None):
    def wrap(fn):
        def call(*args):
            try:
                return fn(*args)
            except Exception as e:  # never let an exception cross into libobs
                log(L.LOG_ERROR, f"{fn.__name__}: {type(e).__name__}: {e}")
                return default
        call.__name__ = fn.__name__
        return call
    return wrap


@_guard(0)
def _create(settings, source):
    filt = PortraitMatte(source)
    key = _next_id[0]
    _next_id[0] += 1
    instances[key] = filt
    filt.update(read_settings(settings))
    return key


@_guard()
def _destroy(data):
    filt = instances.pop(data, None)
    if filt is not None:
        filt.destroy()


@_guard()
def _update(data, settings):
    if data in instances:
        instances[data].update(read_settings(settings))


@_guard()
def _render(data, effect):
    filt = instances.get(data)
    if filt is None:
        return
    filt.render()


@_guard(0)
def _properties(data):
    return properties(instances.get(data))


@_guard()
def _defaults(settings):
    defaults(settings)


_callbacks = {"get_name": L.GET_NAME(lambda _: ctypes.addressof(NAME)), "create": L.CREATE(_create),
              "destroy": L.DESTROY(_destroy), "get_defaults": L.GET_DEFAULTS(_defaults),
              "get_properties": L.GET_PROPERTIES(_properties), "update": L.UPDATE(_update),
              "video_render": L.VIDEO_RENDER(_render)}
_info = None


def register(libobs) -> bool:
    """Register the filter type once per process; later calls (script reloads) only report False."""
    global lib, _info
    if _info is not None:
        return False
    lib = libobs
    _info = L.SourceInfo(id=ID, type=L.SOURCE_TYPE_FILTER, output_flags=L.SOURCE_VIDEO, **_callbacks)
    lib.obs_register_source_s(ctypes.byref(_info), ctypes.sizeof(_info))
    return True


def shutdown() -> None:
    """Stop every worker (OBS is closing or the script unloads); graphics are freed by destroy()."""
    for filt in list(instances.values()):
        if filt.live is not None:
            filt.live.close(timeout=1.0)
            filt.live = None
