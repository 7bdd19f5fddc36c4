from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "astronaut.png"


@pytest.fixture(scope="session")
def sample() -> np.ndarray:
    """The shipped sample portrait, 512x512 RGB uint8."""
    return cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def matter():
    from cramatte import Matter

    return Matter(config="realtime", device="cpu")


def person_and_corners(alpha: np.ndarray) -> tuple:
    """Mean alpha over the astronaut's face and chest, and the larger mean over the two top corners
    (the bottom corners of the sample are her suit and the helmet she holds)."""
    h, w = alpha.shape
    body = alpha[int(0.25 * h):int(0.9 * h), int(0.3 * w):int(0.55 * w)].mean()
    c = max(h, w) // 16
    corners = max(alpha[:c, :c].mean(), alpha[:c, -c:].mean())
    return float(body), float(corners)
