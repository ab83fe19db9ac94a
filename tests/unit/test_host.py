"""condorkit.model.host: the cores a run and aggregate use by default (one home)."""

from __future__ import annotations

import os
import subprocess
import sys

from condorkit.local import workers
from condorkit.model.host import cores
from condorkit.report import aggregate


def test_cores_is_this_process_affinity() -> None:
    assert cores() == len(os.sched_getaffinity(0)) >= 1


def test_cores_follows_a_restricted_affinity() -> None:
    """Pinned to one core (taskset, a batch system's cgroup), a run defaults to one worker."""
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from condorkit.model.host import cores; print(cores())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "1"


def test_run_and_aggregate_share_the_one_definition() -> None:
    assert workers.default_workers is cores
    assert aggregate.cores is cores
    assert not hasattr(aggregate, "_default_workers")
