"""The shared data beside the repository (``../shared``): present in CI, maybe not elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def shared_file(relative: str) -> Path:
    """``../shared/RELATIVE``. Missing: the test FAILS in CI (``CI=true``), else it is skipped."""
    path = SHARED / relative
    if not path.is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{path} is missing: CI must have ../shared beside the repository")
        pytest.skip(f"{path} is not beside this checkout (CI=true makes this a failure)")
    return path
