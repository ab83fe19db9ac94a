"""condorkit: run one program over every row of a manifest, locally or on an HTCondor pool.

The public API (:mod:`condorkit.api`): ``load``, ``run``, ``render``, ``submit``, ``status``,
``wait``, ``aggregate``, imported on first use. The package map is in docs/design.md: ``model``
(the job every backend shares), ``local`` and ``condor`` (the two backends), ``report``, ``cli``.
"""

from typing import Any

from condorkit.version import __version__

__all__ = ["__version__", "aggregate", "load", "render", "run", "status", "submit", "wait"]

_API = ("aggregate", "load", "render", "run", "status", "submit", "wait")


def __getattr__(name: str) -> Any:
    if name in _API:
        from condorkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'condorkit' has no attribute {name!r}")
