"""A small stand-in for Nuke's `nuke` module: the subset cramatte_nuke calls, typed after types-nuke.

Nodes hold knobs and inputs; `execute` renders a Write by copying frames from the Read feeding it
(through Input nodes of enclosing groups); background-thread calls to the main thread are queued and
run by `run_main_thread()`, as Nuke's event loop would.
"""
import os
import re
import shutil
import threading

messages: list = []
_layers: dict = {}
INPUTS = 1
_plugin_path: list = [p for p in os.environ.get("NUKE_PATH", "").split(os.pathsep) if p]
_main_queue: list = []
_context: list = []
_all: list = []
_this = threading.local()


class Knob:
    def __init__(self, name="", label="", value=None):
        self._name, self._value, self.expression, self.tooltip = name, value, None, ""

    def name(self):
        return self._name

    def value(self):
        return self._value

    def setValue(self, value):
        self._value = value

    def setExpression(self, expr):
        self.expression = expr

    def setTooltip(self, text):
        self.tooltip = text

    def setRange(self, lo, hi):
        self.range = (lo, hi)


class Tab_Knob(Knob):
    pass


class File_Knob(Knob):
    def __init__(self, name, label=""):
        super().__init__(name, label, "")


class Int_Knob(Knob):
    def __init__(self, name, label=""):
        super().__init__(name, label, 0)


class Double_Knob(Knob):
    def __init__(self, name, label=""):
        super().__init__(name, label, 0.0)


class Text_Knob(Knob):
    def __init__(self, name, label="", text=""):
        super().__init__(name, label, text)


class Enumeration_Knob(Knob):
    def __init__(self, name, label, values):
        super().__init__(name, label, values[0])
        self.values = list(values)

    def setValue(self, value):
        if value not in self.values:
            raise ValueError(f"{value!r} is not one of {self.values}")
        self._value = value

    def getValue(self):
        return float(self.values.index(self._value))


class PyScript_Knob(Knob):
    def __init__(self, name, label="", command=""):
        super().__init__(name, label, command)
        self.executed = 0

    def execute(self):
        self.executed += 1


class Node:
    def __init__(self, cls, **knobs):
        self._class, self._inputs, self._knobs = cls, {}, {}
        self.parent = _context[-1] if _context else None
        for name in ("name", "label", "disable", "file", "first", "last", "origfirst", "origlast", "size",
                     "channels", "file_type"):
            self._knobs[name] = Knob(name, value=False if name == "disable" else None)
        self._knobs["reload"] = PyScript_Knob("reload")
        for k, v in knobs.items():
            self._knobs.setdefault(k, Knob(k)).setValue(v)
        if self._knobs["name"].value() is None:
            self._knobs["name"].setValue(f"{cls}{len(_all) + 1}")
        _all.append(self)

    def Class(self):
        return self._class

    def name(self):
        return self._knobs["name"].value()

    def __getitem__(self, name):
        return self._knobs[name]

    def knobs(self):
        return dict(self._knobs)

    def addKnob(self, knob):
        self._knobs[knob.name()] = knob

    def setInput(self, i, node):
        self._inputs[i] = node
        return True

    def input(self, i):
        return self._inputs.get(i)

    def inputs(self):
        return max(self._inputs, default=-1) + 1

    def dependent(self, what=INPUTS, forceEvaluate=True):
        return [n for n in _all if n.parent is self.parent and self in n._inputs.values()]

    def setSelected(self, selected):
        self._selected = selected

    def isSelected(self):
        return getattr(self, "_selected", False)

    def xpos(self):
        return getattr(self, "_xy", (0, 0))[0]

    def ypos(self):
        return getattr(self, "_xy", (0, 0))[1]

    def setXYpos(self, x, y):
        self._xy = (x, y)


class Group(Node):
    def begin(self):
        _context.append(self)

    def end(self):
        _context.pop()

    def __enter__(self):
        self.begin()
        return self

    def __exit__(self, *exc):
        self.end()

    def nodes(self):
        return [n for n in _all if n.parent is self]


class _Nodes:
    def __getattr__(self, cls):
        return lambda **knobs: (Group if cls == "Group" else Node)(cls, **knobs)


nodes = _Nodes()
_root = Node("Root", first_frame=1, last_frame=1)


def root():
    return _root


def toNode(name):
    parent = _context[-1] if _context else None
    return next((n for n in _all if n.name() == name and n.parent is parent), None)


def thisNode():
    return getattr(_this, "node", None)


def message(text):
    messages.append(text)


def pluginAddPath(path):
    _plugin_path.insert(0, path)


def pluginPath():
    return list(_plugin_path)


def selectedNode():
    """The selected node of the current context; ValueError when none is, as in Nuke."""
    parent = _context[-1] if _context else None
    chosen = [n for n in _all if n.parent is parent and n.isSelected()]
    if not chosen:
        raise ValueError("no node selected")
    return chosen[-1]


def Layer(name, channels):
    if name in _layers:
        raise ValueError(f"layer {name} exists")
    _layers[name] = list(channels)


def layers(node=None):
    return list(_layers)


def _source_file(node, frame):
    """The file a node shows at `frame`: follow inputs (and Input nodes out to their group) to a Read."""
    while node is not None:
        if node.Class() == "Read" and not node["disable"].value():
            return re.sub("#+", lambda m: f"{frame:0{len(m.group())}d}", node["file"].value())
        if node.Class() == "Input":
            node = node.parent.input(0)
        else:
            node = node.input(0)
    raise RuntimeError("nothing to render: no Read upstream")


def execute(node, first, last):
    if node["disable"].value():
        raise RuntimeError(f"{node.name()} is disabled")
    for frame in range(first, last + 1):
        target = re.sub("#+", lambda m: f"{frame:0{len(m.group())}d}", node["file"].value())
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(_source_file(node.input(0), frame), target)


class ProgressTask:
    cancel_after = None  # tests set a number of progress updates after which the user cancels
    instances: list = []

    def __init__(self, title):
        self.title, self.progress, self.message, self._updates = title, 0, "", 0
        ProgressTask.instances.append(self)

    def setMessage(self, text):
        self.message = text

    def setProgress(self, value):
        self.progress = value
        self._updates += 1

    def isCancelled(self):
        return self.cancel_after is not None and self._updates >= self.cancel_after


def executeInMainThread(fn, args=(), kwargs=None):
    _main_queue.append((fn, args, kwargs or {}))


def run_main_thread():
    while _main_queue:
        fn, args, kwargs = _main_queue.pop(0)
        fn(*args, **kwargs)


class _Menu:
    def __init__(self):
        self.items = {}

    def addMenu(self, name):
        return self.items.setdefault(name, _Menu())

    def addCommand(self, name, command):
        self.items[name] = command


_menus: dict = {}


def menu(name):
    return _menus.setdefault(name, _Menu())
