"""Per-user cache folders: host scratch files (plates, matte sequences of unsaved projects) and the
training store."""
import os
from pathlib import Path

from platformdirs import user_cache_dir


def user_cache(*parts: str) -> Path:
    """`<platform cache>/cramatte/<parts>`, private to this user (mode 0700 on POSIX): never a fixed
    shared path under /tmp, where another user could plant files or links first."""
    top = Path(user_cache_dir("cramatte", appauthor=False))
    path = top.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        for folder in {top, path}:
            os.chmod(folder, 0o700)
    return path
