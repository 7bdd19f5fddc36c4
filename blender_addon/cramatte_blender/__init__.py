"""cramatte Portrait Matte for Blender: matte a person in footage and wire the alpha into the compositor."""
import bpy

from . import operators

bl_info = {  # for installs as a legacy add-on; Blender 4.2+ reads blender_manifest.toml
    "name": "cramatte Portrait Matte", "author": "cramatte authors", "version": (0, 1, 0),
    "blender": (4, 2, 0), "location": "Compositor / Sequencer > Sidebar > cramatte", "category": "Compositing",
}


def _devices(self, context):
    try:
        from cramatte.backends import available_devices
        names = ["auto"] + available_devices()
    except ImportError:
        names = ["auto", "cpu"]
    return [(d, d.upper() if d != "auto" else "Automatic", "") for d in names]


class CramattePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    device: bpy.props.EnumProperty(name="Device", items=_devices)
    config: bpy.props.EnumProperty(name="Model configuration", default="quality",
                                   items=[("fast", "Fast", "fastest, softer edges"), ("realtime", "Real-time", "balanced"),
                                          ("quality", "Quality", "best edges")])
    model: bpy.props.StringProperty(name="Model (.onnx)", subtype="FILE_PATH",
                                    description="A cramatte ONNX model; empty for the shipped one")
    cache_folder: bpy.props.StringProperty(name="Cache folder", subtype="DIR_PATH",
                                           description="Where mattes go while the .blend is unsaved")
    file_format: bpy.props.EnumProperty(name="Matte files", default="PNG",
                                        items=[("PNG", "PNG 16-bit", ""), ("EXR", "OpenEXR (float)", "")])
    video_mode: bpy.props.BoolProperty(name="Video mode for moving footage", default=True,
                                       description="Movies, clips, strips and image sequences: the matte is "
                                                   "carried along the optical flow between frames, which removes flicker")

    def draw(self, context):
        for prop in ("device", "config", "video_mode", "model", "cache_folder", "file_format"):
            self.layout.prop(self, prop)


def _panel_draw(self, context):
    layout, scene = self.layout, context.scene
    layout.prop(scene, "cramatte_image", text="Image")
    if scene.cramatte_image:
        op = layout.operator(operators.CRAMATTE_OT_matte.bl_idname, text="Matte Image")
        op.kind, op.name = "IMAGE", scene.cramatte_image.name
    layout.prop(scene, "cramatte_clip", text="Movie Clip")
    if scene.cramatte_clip:
        op = layout.operator(operators.CRAMATTE_OT_matte.bl_idname, text="Matte Clip")
        op.kind, op.name = "CLIP", scene.cramatte_clip.name


class CRAMATTE_PT_compositor(bpy.types.Panel):
    bl_label, bl_space_type, bl_region_type, bl_category = "Portrait Matte", "NODE_EDITOR", "UI", "cramatte"

    @classmethod
    def poll(cls, context):
        return context.space_data.tree_type == "CompositorNodeTree"

    draw = _panel_draw


class CRAMATTE_PT_sequencer(bpy.types.Panel):
    bl_label, bl_space_type, bl_region_type, bl_category = "Portrait Matte", "SEQUENCE_EDITOR", "UI", "cramatte"

    def draw(self, context):
        strip = getattr(context, "active_strip", None) or getattr(context, "active_sequence_strip", None)
        if strip is not None and strip.type in ("MOVIE", "IMAGE"):
            op = self.layout.operator(operators.CRAMATTE_OT_matte.bl_idname, text=f"Matte '{strip.name}'")
            op.kind, op.name = "STRIP", strip.name
        else:
            self.layout.label(text="Select a movie or image strip")
        _panel_draw(self, context)


CLASSES = (CramattePreferences, operators.CRAMATTE_OT_matte, CRAMATTE_PT_compositor, CRAMATTE_PT_sequencer)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.cramatte_image = bpy.props.PointerProperty(type=bpy.types.Image)
    bpy.types.Scene.cramatte_clip = bpy.props.PointerProperty(type=bpy.types.MovieClip)


def unregister():
    del bpy.types.Scene.cramatte_image, bpy.types.Scene.cramatte_clip
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
