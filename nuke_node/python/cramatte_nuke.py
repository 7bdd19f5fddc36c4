"""cramatte in Nuke: the Portrait Matte node for the roto pre-pass.

The node is a Group. Its "Generate matte" button renders the input frames to EXR in a cache folder,
mattes them with the cramatte runtime in a background task (progress bar, cancel), then points the
group's Read at the finished matte sequence; inside the group the matte becomes rgba.alpha (with
live Erode/Blur edge controls and an optional Premult). Plates are scene-linear floats: cramatte
converts them to what the model expects and writes its foreground colour back in linear.
"""
import os
import shutil
import threading
import traceback

import nuke

CONFIGS = ["fast", "realtime", "quality"]
DEVICES = ["auto", "cpu", "cuda", "tensorrt", "directml", "coreml"]
OUTPUTS = ["alpha", "alpha + foreground", "premultiplied RGBA"]


LAYER = "cramatte"  # the matte also lands in cramatte.alpha, beside an artist's own mattes


def _take_place(group) -> None:
    """Like any node made from the menu: fed by the selected node, below it, and in its place in the DAG."""
    try:
        selected = nuke.selectedNode()
    except ValueError:
        return
    for node in selected.dependent(nuke.INPUTS, forceEvaluate=False):
        for i in range(node.inputs()):
            if node.input(i) is selected:
                node.setInput(i, group)
    group.setInput(0, selected)
    group.setXYpos(selected.xpos(), selected.ypos() + 60)


def create_node():
    """Create the Portrait Matte group with its knobs and internal graph (called from the menu)."""
    if LAYER not in nuke.layers():
        nuke.Layer(LAYER, [f"{LAYER}.alpha"])
    group = nuke.nodes.Group(name="PortraitMatte1")
    group["label"].setValue("cramatte")
    group.addKnob(nuke.Tab_Knob("cramatte", "Portrait Matte"))
    group.addKnob(nuke.File_Knob("model", "model"))
    group["model"].setTooltip("a cramatte .onnx model; empty for the one shipped with cramatte")
    group.addKnob(nuke.Enumeration_Knob("config", "quality", CONFIGS))
    group["config"].setValue("quality")
    group.addKnob(nuke.Enumeration_Knob("device", "device", DEVICES))
    group.addKnob(nuke.Int_Knob("first", "frame range"))
    group.addKnob(nuke.Int_Knob("last", ""))
    root = nuke.root()
    group["first"].setValue(int(root["first_frame"].value()))
    group["last"].setValue(int(root["last_frame"].value()))
    group.addKnob(nuke.Enumeration_Knob("output", "output", OUTPUTS))
    group.addKnob(nuke.Double_Knob("grow", "shrink/grow"))
    group["grow"].setRange(-20, 20)
    group.addKnob(nuke.Double_Knob("feather", "feather"))
    group["feather"].setRange(0, 50)
    group.addKnob(nuke.File_Knob("cache", "cache folder"))
    group["cache"].setValue("")  # empty: the per-user cache folder (cramatte.cache.user_cache)
    group.addKnob(nuke.PyScript_Knob("generate", "Generate matte", "import cramatte_nuke; cramatte_nuke.generate(nuke.thisNode())"))
    group.addKnob(nuke.Text_Knob("status", "", "no matte yet"))

    group.begin()
    try:
        plate = nuke.nodes.Input(name="Input1")
        write = nuke.nodes.Write(name="PlateWrite", file_type="exr", channels="rgb", disable=True)
        write.setInput(0, plate)
        read = nuke.nodes.Read(name="MatteRead", disable=True)
        copy = nuke.nodes.Copy(name="MatteCopy", from0="rgba.alpha", to0="rgba.alpha", from1="rgba.alpha",
                               to1=f"{LAYER}.alpha")
        copy.setInput(0, plate)
        copy.setInput(1, read)
        erode = nuke.nodes.FilterErode(name="Grow", channels="alpha")
        erode["size"].setExpression("-parent.grow")
        erode.setInput(0, copy)
        blur = nuke.nodes.Blur(name="Feather", channels="alpha")
        blur["size"].setExpression("parent.feather")
        blur.setInput(0, erode)
        foreground = nuke.nodes.Copy(name="ForegroundCopy", from0="rgba.red", to0="rgba.red", from1="rgba.green",
                                     to1="rgba.green", from2="rgba.blue", to2="rgba.blue")
        foreground["disable"].setExpression('parent.output == 0')
        foreground.setInput(0, blur)
        foreground.setInput(1, read)
        premult = nuke.nodes.Premult(name="Premult")
        premult["disable"].setExpression("parent.output != 2")
        premult.setInput(0, foreground)
        out = nuke.nodes.Output(name="Output1")
        out.setInput(0, premult)
    finally:
        group.end()
    _take_place(group)
    return group


def _paths(group) -> dict:
    from cramatte.cache import user_cache

    cache = group["cache"].value() or str(user_cache("nuke"))
    base = os.path.join(cache, group.name())
    return {"base": base, "plate": os.path.join(base, "plate", "plate.####.exr"),
            "matte": os.path.join(base, "matte"), "partial": os.path.join(base, "matte.partial")}


def _frame_file(pattern: str, frame: int) -> str:
    return pattern.replace("####", f"{frame:04d}")


def generate(group, wait: bool = False):
    """Render the plate, matte it in the background and wire the result in. Errors go to a message box.

    Returns the worker thread (tests pass wait=True to join it)."""
    try:
        first, last = int(group["first"].value()), int(group["last"].value())
        if last < first:
            raise ValueError(f"frame range {first}-{last} is empty")
        if group.input(0) is None:
            raise ValueError("connect a plate to the Portrait Matte node's input first")
        paths = _paths(group)
        os.makedirs(os.path.dirname(paths["plate"]), exist_ok=True)
        with group:
            write = nuke.toNode("PlateWrite")
        write["file"].setValue(paths["plate"])
        write["disable"].setValue(False)
        try:
            nuke.execute(write, first, last)
        finally:
            write["disable"].setValue(True)
        settings = {"model": group["model"].value() or None, "config": group["config"].value(),
                    "device": group["device"].value(), "output": OUTPUTS.index(group["output"].value())}
    except Exception as e:  # anything the user can fix: tell them, never crash Nuke
        nuke.message(f"Portrait Matte: {e}")
        return None
    worker = threading.Thread(target=_run, args=(group, paths, first, last, settings), daemon=True)
    worker.start()
    if wait:
        worker.join()
    return worker


def _run(group, paths, first, last, settings):
    task = nuke.ProgressTask("Portrait Matte")
    partial = paths["partial"]
    try:
        from cramatte import Matter
        from cramatte.io import read_image, write_image

        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        task.setMessage("loading the model")
        matter = Matter(settings["model"], config=settings["config"], device=settings["device"])
        total = last - first + 1
        for i, frame in enumerate(range(first, last + 1)):
            if task.isCancelled():
                raise InterruptedError("cancelled")
            task.setMessage(f"frame {frame} ({i + 1} of {total})")
            pixels, space = read_image(_frame_file(paths["plate"], frame))
            matte = matter(pixels, colorspace=space, foreground=settings["output"] > 0)
            out = matte.alpha if settings["output"] == 0 else matte.rgba()
            write_image(os.path.join(partial, f"matte.{frame:04d}.exr"), out)
            task.setProgress(int(100 * (i + 1) / total))
        shutil.rmtree(paths["matte"], ignore_errors=True)
        os.replace(partial, paths["matte"])  # the finished sequence appears whole, or not at all
        nuke.executeInMainThread(_wire, (group, paths["matte"], first, last))
    except InterruptedError:
        shutil.rmtree(partial, ignore_errors=True)
        nuke.executeInMainThread(_status, (group, "cancelled; the previous matte (if any) is unchanged"))
    except Exception as e:
        shutil.rmtree(partial, ignore_errors=True)
        traceback.print_exc()
        nuke.executeInMainThread(nuke.message, (f"Portrait Matte failed: {e}",))
        nuke.executeInMainThread(_status, (group, f"failed: {e}"))
    finally:
        del task


def _status(group, text):
    group["status"].setValue(text)


def _wire(group, folder, first, last):
    """Point the group's Read at the finished matte sequence and reload it."""
    with group:
        read = nuke.toNode("MatteRead")
    read["file"].setValue(os.path.join(folder, "matte.####.exr"))
    read["first"].setValue(first)
    read["last"].setValue(last)
    read["origfirst"].setValue(first)
    read["origlast"].setValue(last)
    read["disable"].setValue(False)
    read["reload"].execute()
    _status(group, f"matte of frames {first}-{last} in {folder}")
