"""A stand-in for libobs (as obs_plugin/libobs.py binds it): records calls and plays a video source.

Handles are small ints or strings; `frame` is the RGBA picture the target source renders; settings
are dicts registered with `settings()`; ctypes out-parameters are filled as libobs would."""
import ctypes

import numpy as np


class FakeLibobs:
    def __init__(self, frame: np.ndarray):
        self.frame = frame
        self.calls: list = []
        self.registered = []
        self.data: dict = {}
        self.params: dict = {}
        self.textures: dict = {}
        self.filter_ends = 0  # frames drawn by the filter (with its effect)
        self.stagings = 0
        self._looping = False
        self.skips = 0
        self.grabs = 0
        self.logs: list = []
        self.props: list = []
        self._handles = 100

    def _new(self):
        self._handles += 1
        return self._handles

    def settings(self, values: dict) -> int:
        key = self._new()
        self.data[key] = dict(values)
        return key

    # registration and logging
    def obs_register_source_s(self, info, size):
        self.registered.append((info._obj, size))

    def blog(self, level, fmt, text):
        self.logs.append((level, text.decode()))

    # sources
    def obs_filter_get_target(self, source):
        return 7

    def obs_filter_get_parent(self, source):
        return 7

    def obs_source_get_output_flags(self, source):
        return 1

    def obs_source_get_base_width(self, target):
        return self.frame.shape[1]

    def obs_source_get_base_height(self, target):
        return self.frame.shape[0]

    def obs_source_skip_video_filter(self, source):
        self.skips += 1

    def obs_source_video_render(self, target):
        self.grabs += 1

    # graphics
    def gs_effect_create(self, text, filename, err):
        assert b"technique Draw" in text
        return self._new()

    def gs_effect_get_param_by_name(self, effect, name):
        return name.decode()

    def _set(self, param, value):
        self.params[param] = value

    def gs_effect_loop(self, effect, technique):
        self._looping = not self._looping  # one pass, as the Draw technique has
        return self._looping

    def gs_draw_sprite(self, tex, flip, w, h):
        self.filter_ends += 1

    def gs_stage_texture(self, stage, tex):
        self.stagings += 1

    def gs_effect_set_texture(self, param, tex):
        self._set(param, tex)

    def gs_effect_set_int(self, param, v):
        self._set(param, v)

    def gs_effect_set_vec4(self, param, v):
        o = v._obj
        self._set(param, (o.x, o.y, o.z, o.w))

    def gs_texrender_create(self, fmt, zs):
        return self._new()

    def gs_texrender_begin(self, tr, w, h):
        return True

    def gs_technique_begin(self, tech):
        return 1

    def gs_texrender_get_texture(self, tr):
        return self._new()

    def gs_stagesurface_create(self, w, h, fmt):
        return self._new()

    def gs_texture_create(self, w, h, fmt, levels, data, flags):
        key = self._new()
        self.textures[key] = {"size": (w, h), "format": fmt, "pixels": None}
        return key

    def gs_texture_destroy(self, tex):
        self.textures.pop(tex, None)

    def gs_stagesurface_map(self, stage, data, linesize):
        h, w, _ = self.frame.shape
        pitch = w * 4 + 16  # rows padded, as GPUs do
        self._staged = np.zeros((h, pitch), np.uint8)
        self._staged[:, :w * 4] = self.frame.reshape(h, w * 4)
        data._obj.contents = ctypes.c_uint8.from_address(self._staged.ctypes.data)
        linesize._obj.value = pitch
        return True

    def gs_texture_set_image(self, tex, address, linesize, flip):
        w, h = self.textures[tex]["size"]
        channels = 4 if self.textures[tex]["format"] == 3 else 1  # GS_RGBA or GS_R8
        buf = (ctypes.c_uint8 * (h * linesize)).from_address(address)
        rows = np.ctypeslib.as_array(buf).reshape(h, linesize)[:, :w * channels].copy()
        self.textures[tex]["pixels"] = rows.reshape(h, w, channels) if channels > 1 else rows

    # settings and properties
    def obs_data_get_string(self, d, k):
        return self.data[d].get(k.decode(), "").encode()

    def obs_data_get_int(self, d, k):
        return int(self.data[d].get(k.decode(), 0))

    def obs_data_get_double(self, d, k):
        return float(self.data[d].get(k.decode(), 0.0))

    def obs_data_get_bool(self, d, k):
        return bool(self.data[d].get(k.decode(), False))

    def _default(self, d, k, v):
        self.data[d].setdefault(k.decode(), v.decode() if isinstance(v, bytes) else v)

    obs_data_set_default_string = obs_data_set_default_int = obs_data_set_default_double = \
        obs_data_set_default_bool = _default

    def obs_properties_create(self):
        self.props = []
        return self._new()

    def obs_properties_add_text(self, props, name, desc, kind):
        self.props.append((name.decode(), desc.decode()))

    def obs_property_list_add_string(self, prop, label, value):
        self.props.append((prop, value.decode()))
        return 0

    def _add(self, props, name, *rest):
        self.props.append((name.decode(), None))
        return name.decode()

    obs_properties_add_list = obs_properties_add_int_slider = obs_properties_add_float_slider = \
        obs_properties_add_color = obs_properties_add_bool = obs_properties_add_path = _add

    def __getattr__(self, name):  # every other libobs call: recorded, returns nothing
        if not name.startswith(("gs_", "obs_")):
            raise AttributeError(name)
        return lambda *args: self.calls.append(name)
