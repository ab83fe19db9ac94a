"""Where condorkit's package data lives: the folders of its packages (wrappers, examples, the
chart's HTML), as plain paths.

The library's one home for finding packaged files (``condorkit.demo``, which may use only the
errors, reads its example through ``importlib.resources``). That module would do the same for a
package on disk, but importing it costs about 9 ms, paid by every command before it can start
its workers; condorkit's packages are always regular folders (never zipped: the wrappers are
executed and hard-linked from there).
"""

from __future__ import annotations

import importlib
from pathlib import Path


def package_dir(package: str) -> Path:
    """The folder of ``package`` (e.g. ``"condorkit.wrappers"``), importing it if need be."""
    module = importlib.import_module(package)
    if module.__file__ is None:  # a namespace package: never one of condorkit's
        raise FileNotFoundError(f"package {package} has no folder of its own")
    return Path(module.__file__).parent


def packaged(package: str, name: str) -> Path:
    """The path of the file ``name`` packaged in ``package``."""
    return package_dir(package) / name
