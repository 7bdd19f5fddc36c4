"""cramatte: portrait matting (low-resolution ViT + regional refinement with cross-region attention)."""
from .frames import FrameError
from .runtime import Matte, Matter, VideoMatter

__all__ = ["Matter", "Matte", "VideoMatter", "FrameError"]
__version__ = "0.1.0"
