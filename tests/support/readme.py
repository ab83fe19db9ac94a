"""The README's code blocks, so tests run exactly what the README shows."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_block(marker: str) -> str:
    """The README's ```python block whose first line is ``# MARKER``."""
    for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S):
        if block.startswith(f"# {marker}\n"):
            return block
    raise AssertionError(f"README.md has no python block starting with '# {marker}'")
