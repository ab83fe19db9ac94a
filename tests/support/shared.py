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


def required(ok: bool, what: str) -> None:
    """Skip the test when ``ok`` is false, except in CI (``CI=true``), where it FAILS: CI
    installs every tool and root the suite needs (scripts/test), so a missing one is a bug."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is missing in CI; scripts/test must provide it")
    pytest.skip(f"{what} is missing (CI=true makes this a failure)")
