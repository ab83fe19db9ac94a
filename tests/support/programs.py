"""The example jobs' programs imported in-process the way a job runs them (``ckjob`` from the
wrappers folder), and the tutorial's luminance as a plain reference."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image, ImageStat

ROOT = Path(__file__).resolve().parents[2]
WRAPPERS = ROOT / "wrappers"


def load_program(path: Path, name: str) -> ModuleType:
    """Import the program at ``path`` as module ``name`` (its ``ckjob`` is wrappers/ckjob.py)."""
    if str(WRAPPERS) not in sys.path:
        sys.path.insert(0, str(WRAPPERS))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tutorial(path: Path) -> float:
    """A straightforward reference implementation of the tutorial's method."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            pytest.skip("16-bit gray has no RGB tutorial value")
        if im.mode == "L":
            return ImageStat.Stat(im).rms[0] / 256
        rgb = im.convert("RGB")
        r, g, b = ImageStat.Stat(rgb).rms
        return math.sqrt(0.241 * (r ** 2) + 0.691 * (g ** 2) + 0.068 * (b ** 2)) / 256
