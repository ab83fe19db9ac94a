"""What this machine gives a run: the cores this process may use.

Owns :func:`cores`, the default number of local workers (``condorkit run``) and of parsing
processes (``condorkit aggregate``). Standard library only and light: a run's standby worker
(:mod:`condorkit.local.standby`) needs it before anything heavy is imported.
"""

from __future__ import annotations

import os


def cores() -> int:
    """All the cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)
