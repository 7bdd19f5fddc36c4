"""Compositor node setup from built-in nodes: footage -> Set Alpha (Replace) with the matte -> output,
plus the matte's own foreground colour as a clean-edged second output. Blender 4.x and 5.x."""
import bpy

GROUP_NAME = "cramatte"


def _tree(scene):
    """The scene's compositor tree and its output node (5.x: a node group; 4.x: scene.node_tree)."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0 and newer
        tree = scene.compositing_node_group
        if tree is None:
            tree = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
            scene.compositing_node_group = tree
        for name in ("Image", "Foreground"):
            if name not in [s.name for s in tree.interface.items_tree if getattr(s, "in_out", "") == "OUTPUT"]:
                tree.interface.new_socket(name=name, in_out="OUTPUT", socket_type="NodeSocketColor")
        out = next((n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"), None) or tree.nodes.new("NodeGroupOutput")
        return tree, out, out.inputs["Image"], out.inputs["Foreground"]
    scene.use_nodes = True
    tree = scene.node_tree
    out = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None) or \
        tree.nodes.new("CompositorNodeComposite")
    viewer = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeViewer"), None) or \
        tree.nodes.new("CompositorNodeViewer")
    return tree, out, out.inputs["Image"], viewer.inputs["Image"]


def footage_node(tree, target):
    if isinstance(target, bpy.types.MovieClip):
        node = tree.nodes.new("CompositorNodeMovieClip")
        node.clip = target
        return node
    node = tree.nodes.new("CompositorNodeImage")
    node.image = target
    return node


def build(scene, footage, matte_image, frame_start: int, frames: int, footage_start: int | None = None):
    """Create (or refresh) the cramatte nodes; returns the Set Alpha node. `footage_start`: the scene
    frame a strip's movie starts at, so the footage node shows the frame the strip shows."""
    tree, out, image_socket, fg_socket = _tree(scene)
    for node in [n for n in tree.nodes if n.name.startswith("cramatte ")]:
        tree.nodes.remove(node)
    src = footage_node(tree, footage)
    src.name = src.label = "cramatte footage"
    if footage_start is not None and footage.source == "MOVIE":
        src.frame_start, src.frame_offset = footage_start, 0
        src.frame_duration = max(footage.frame_duration, frame_start + frames - footage_start)
    matte = tree.nodes.new("CompositorNodeImage")
    matte.name = matte.label = "cramatte matte"
    matte.image = matte_image
    if matte_image.source == "SEQUENCE":
        matte.frame_start, matte.frame_duration, matte.frame_offset = frame_start, frames, frame_start - 1
        matte.use_auto_refresh = True
    set_alpha = tree.nodes.new("CompositorNodeSetAlpha")
    set_alpha.name = set_alpha.label = "cramatte set alpha"
    if hasattr(set_alpha, "mode"):
        set_alpha.mode = "REPLACE_ALPHA"
    else:  # 5.x exposes the mode as an input socket
        set_alpha.inputs["Type"].default_value = "Replace Alpha"
    tree.links.new(src.outputs["Image"], set_alpha.inputs["Image"])
    tree.links.new(matte.outputs["Alpha"], set_alpha.inputs["Alpha"])
    tree.links.new(set_alpha.outputs["Image"], image_socket)
    tree.links.new(matte.outputs["Image"], fg_socket)
    src.location, matte.location, set_alpha.location, out.location = (-500, 150), (-500, -200), (-150, 0), (200, 0)
    return set_alpha
