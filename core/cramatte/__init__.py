"""cramatte: portrait matting (low-resolution ViT + regional refinement with cross-region attention)."""
from .frames import FrameError
from .runtime import Matte, Matter

__all__ = ["Matter", "Matte", "FrameError"]
__version__ = "0.1.0"
