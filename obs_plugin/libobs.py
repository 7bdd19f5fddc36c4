"""ctypes bindings for the part of libobs the Portrait Matte filter calls (OBS 28 and newer)."""
import ctypes
import ctypes.util
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_int, c_longlong,
                    c_size_t, c_uint8, c_uint32, c_void_p)

p = c_void_p
SOURCE_TYPE_FILTER = 1
SOURCE_VIDEO = 1 << 0
SOURCE_ASYNC = 1 << 2
SOURCE_CUSTOM_DRAW = 1 << 3
GS_R8, GS_RGBA = 2, 3
EFFECT_DEFAULT = 0
GS_ZS_NONE = 0
GS_CLEAR_COLOR = 1
GS_DYNAMIC = 1 << 1
COMBO_TYPE_LIST, COMBO_FORMAT_STRING = 2, 3
PATH_FILE = 0
TEXT_INFO = 3
LOG_ERROR, LOG_WARNING, LOG_INFO = 100, 200, 300

GET_NAME = CFUNCTYPE(c_void_p, c_void_p)
CREATE = CFUNCTYPE(c_void_p, c_void_p, c_void_p)
DESTROY = CFUNCTYPE(None, c_void_p)
GET_SIZE = CFUNCTYPE(c_uint32, c_void_p)
GET_DEFAULTS = CFUNCTYPE(None, c_void_p)
GET_PROPERTIES = CFUNCTYPE(c_void_p, c_void_p)
UPDATE = CFUNCTYPE(None, c_void_p, c_void_p)
NOTIFY = CFUNCTYPE(None, c_void_p)
VIDEO_TICK = CFUNCTYPE(None, c_void_p, c_float)
VIDEO_RENDER = CFUNCTYPE(None, c_void_p, c_void_p)


class SourceInfo(Structure):
    """The leading fields of `struct obs_source_info`; libobs zero-fills the rest from the size."""
    _fields_ = [("id", c_char_p), ("type", c_int), ("output_flags", c_uint32), ("get_name", GET_NAME),
                ("create", CREATE), ("destroy", DESTROY), ("get_width", GET_SIZE), ("get_height", GET_SIZE),
                ("get_defaults", GET_DEFAULTS), ("get_properties", GET_PROPERTIES), ("update", UPDATE),
                ("activate", NOTIFY), ("deactivate", NOTIFY), ("show", NOTIFY), ("hide", NOTIFY),
                ("video_tick", VIDEO_TICK), ("video_render", VIDEO_RENDER)]


class Vec4(Structure):
    _fields_ = [("x", c_float), ("y", c_float), ("z", c_float), ("w", c_float)]


SIGNATURES = {
    "obs_register_source_s": (None, [POINTER(SourceInfo), c_size_t]),
    "obs_filter_get_target": (p, [p]), "obs_filter_get_parent": (p, [p]),
    "obs_source_get_base_width": (c_uint32, [p]), "obs_source_get_base_height": (c_uint32, [p]),
    "obs_source_skip_video_filter": (None, [p]), "obs_source_get_output_flags": (c_uint32, [p]), "obs_source_video_render": (None, [p]),
    "obs_get_base_effect": (p, [c_int]), "gs_effect_get_technique": (p, [p, c_char_p]),
    "gs_technique_begin": (c_size_t, [p]), "gs_technique_begin_pass": (c_bool, [p, c_size_t]),
    "gs_technique_end_pass": (None, [p]), "gs_technique_end": (None, [p]),
    "obs_enter_graphics": (None, []), "obs_leave_graphics": (None, []),
    "gs_texrender_create": (p, [c_int, c_int]), "gs_texrender_destroy": (None, [p]),
    "gs_texrender_reset": (None, [p]), "gs_texrender_begin": (c_bool, [p, c_uint32, c_uint32]),
    "gs_texrender_end": (None, [p]), "gs_texrender_get_texture": (p, [p]),
    "gs_ortho": (None, [c_float] * 6), "gs_clear": (None, [c_uint32, POINTER(Vec4), c_float, c_uint8]),
    "gs_blend_state_push": (None, []), "gs_blend_state_pop": (None, []), "gs_reset_blend_state": (None, []),
    "gs_stagesurface_create": (p, [c_uint32, c_uint32, c_int]), "gs_stagesurface_destroy": (None, [p]),
    "gs_stage_texture": (None, [p, p]),
    "gs_stagesurface_map": (c_bool, [p, POINTER(POINTER(c_uint8)), POINTER(c_uint32)]),
    "gs_stagesurface_unmap": (None, [p]),
    "gs_texture_create": (p, [c_uint32, c_uint32, c_int, c_uint32, POINTER(c_void_p), c_uint32]),
    "gs_texture_destroy": (None, [p]), "gs_texture_set_image": (None, [p, p, c_uint32, c_bool]),
    "gs_effect_create": (p, [c_char_p, c_char_p, POINTER(c_char_p)]), "gs_effect_destroy": (None, [p]),
    "gs_effect_get_param_by_name": (p, [p, c_char_p]), "gs_effect_set_texture": (None, [p, p]),
    "gs_effect_set_int": (None, [p, c_int]), "gs_effect_set_vec4": (None, [p, POINTER(Vec4)]),
    "gs_effect_loop": (c_bool, [p, c_char_p]), "gs_draw_sprite": (None, [p, c_uint32, c_uint32, c_uint32]),
    "obs_properties_create": (p, []),
    "obs_properties_add_list": (p, [p, c_char_p, c_char_p, c_int, c_int]),
    "obs_property_list_add_string": (c_size_t, [p, c_char_p, c_char_p]),
    "obs_properties_add_int_slider": (p, [p, c_char_p, c_char_p, c_int, c_int, c_int]),
    "obs_properties_add_float_slider": (p, [p, c_char_p, c_char_p, c_double, c_double, c_double]),
    "obs_properties_add_color": (p, [p, c_char_p, c_char_p]),
    "obs_properties_add_bool": (p, [p, c_char_p, c_char_p]),
    "obs_properties_add_path": (p, [p, c_char_p, c_char_p, c_int, c_char_p, c_char_p]),
    "obs_properties_add_text": (p, [p, c_char_p, c_char_p, c_int]),
    "obs_data_get_string": (c_char_p, [p, c_char_p]), "obs_data_get_int": (c_longlong, [p, c_char_p]),
    "obs_data_get_double": (c_double, [p, c_char_p]), "obs_data_get_bool": (c_bool, [p, c_char_p]),
    "obs_data_set_default_string": (None, [p, c_char_p, c_char_p]),
    "obs_data_set_default_int": (None, [p, c_char_p, c_longlong]),
    "obs_data_set_default_double": (None, [p, c_char_p, c_double]),
    "obs_data_set_default_bool": (None, [p, c_char_p, c_bool]),
    "blog": (None, [c_int, c_char_p, c_char_p]),
}


def load():
    """The libobs already loaded into this OBS process, with argument and result types set."""
    names = {"win32": ["obs.dll"], "darwin": ["libobs.framework/libobs", "libobs.dylib"]}.get(
        sys.platform, ["libobs.so.30", "libobs.so.0", "libobs.so"])
    found = ctypes.util.find_library("obs")
    lib = None
    for name in names + ([found] if found else []):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise OSError(f"libobs not found (tried {', '.join(names)})")
    for name, (restype, argtypes) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib
