"""Which Python runs a job's ``.py`` program: the one rule, used by ``run``, ``dry-run`` and
``graph`` (and by the benchmarks through ``condorkit run``).

1. A job with an interpreter bundle (``condorkit bundle --ship-python``) runs under the
   bundle's Python (the wrapper unpacks it), everywhere. A wheel-set bundle (the default kind)
   brings packages only: they run under the interpreter of rules 2-4.
2. Else, locally, under the interpreter the user chose: the ``python`` option
   (``condorkit.toml``, or ``CONDORKIT_PYTHON`` in the environment, or ``--python``).
3. Else, locally, under the interpreter that runs condorkit itself (``sys.executable``), so the
   packages installed beside condorkit are the ones the program sees, whatever ``python3`` is
   first on PATH.
4. On a pool, the worker's own ``python3`` (the wrapper's default; the ``python`` option names
   a local program and is not sent to workers).

The wrapper receives the choice as ``CONDORKIT_PYTHON`` in its environment. Library code only.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from condorkit.errors import ConfigError

#: the environment variable through which the wrapper learns the interpreter
ENV_VAR = "CONDORKIT_PYTHON"


@functools.lru_cache(maxsize=8)
def _resolve(python: str) -> str | None:
    """The real interpreter ``python`` starts (a pyenv shim costs ~0.2 s per call), or None."""
    exe = shutil.which(python)
    if exe is None:
        return None
    try:
        with open(exe, "rb") as fh:
            if fh.read(4) == b"\x7fELF":  # a real interpreter (or a venv's link to one): keep it
                return os.path.abspath(exe)
    except OSError:
        return None
    try:
        out = subprocess.run([exe, "-c", "import sys; print(sys.executable)"],
                             capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    real = out.stdout.strip()
    return real if out.returncode == 0 and real and os.access(real, os.X_OK) else None


def bundle_brings_python(bundle: Path | None) -> bool:
    """True when ``bundle`` carries its own interpreter (``--ship-python``, rule 1); a wheel-set
    bundle brings packages only, which run under the interpreter of rules 2-4."""
    if bundle is None:
        return False
    from condorkit.errors import CondorkitError
    from condorkit.model.bundle import read_manifest
    from condorkit.model.wheelset import WHEELS_FORMAT

    try:
        return read_manifest(bundle).get("format") != WHEELS_FORMAT
    except CondorkitError:
        return True


def local_python(chosen: str = "", source: str = "default", bundled: bool = False) -> str | None:
    """The interpreter for a local ``.py`` program, by the rule above; None with a bundle.

    ``chosen`` is the ``python`` option ("" when not set) and ``source`` where it came from, for
    the error message when it names no interpreter.
    """
    if bundled:
        return None
    if chosen:
        real = _resolve(chosen)
        if real is None:
            raise ConfigError(f"option python ({source}): {chosen!r} is not a Python interpreter "
                              "on this machine",
                              "give the path of a python that has your program's packages, or "
                              "leave the option out to use the one running condorkit")
        return real
    return os.path.abspath(sys.executable)


def job_env(base: Mapping[str, str], chosen: str = "", source: str = "default",
            bundled: bool = False) -> dict[str, str]:
    """``base`` with ``CONDORKIT_PYTHON`` set by the rule (removed when a bundle decides)."""
    env = dict(base)
    python = local_python(chosen, source, bundled)
    if python is None:
        env.pop(ENV_VAR, None)
    else:
        env[ENV_VAR] = python
    return env


def python_command(command: tuple[str, ...], chosen: str = "",
                   source: str = "default") -> tuple[str, ...]:
    """A graph task command: a ``.py`` script runs under the local interpreter of the rule."""
    if command and command[0].endswith(".py"):
        python = local_python(chosen, source)
        assert python is not None
        return (python, *command)
    return command
