"""cramatte: portrait matting (low-resolution ViT + regional refinement with cross-region attention).

The names below load on first use, so `import cramatte.live` in a host (OBS) stays light."""
from importlib import import_module

_HOMES = {"Matter": "runtime", "Matte": "runtime", "VideoMatter": "runtime", "FrameError": "frames",
          "Job": "batch", "Report": "batch", "matte_files": "batch", "Cluster": "farm", "farm_files": "farm"}
__all__ = list(_HOMES)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'cramatte' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted([*globals(), *__all__])
