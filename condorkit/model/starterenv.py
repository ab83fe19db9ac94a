"""The thread variables an HTCondor starter gives a job, and the one function that adds them.

Owns ``THREAD_VARS`` (the starter's ``STARTER_NUM_THREADS_ENV_VARS``: each is set to the
slot's cpus unless the job's environment sets it already) and :func:`worker_env`. Used by
every local execution (:mod:`condorkit.model.scratch`, the persistent workers and their
standby) so that a program sees here the environment a pool's starter would give it. A module
of its own because a run's standby worker needs it before anything heavy is imported.
"""

from __future__ import annotations

from collections.abc import Mapping

THREAD_VARS = ("CUBACORES", "GOMAXPROCS", "JULIA_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "OMP_NUM_THREADS", "OMP_THREAD_LIMIT",
               "OPENBLAS_NUM_THREADS", "PYTHON_CPU_COUNT", "ROOT_MAX_THREADS",
               "TF_LOOP_PARALLEL_ITERATIONS", "TF_NUM_THREADS")


def worker_env(base: Mapping[str, str], cpus: int) -> dict[str, str]:
    """``base`` plus the thread variables a starter sets for a slot of ``cpus`` cores."""
    env = dict(base)
    for var in THREAD_VARS:  # as HTCondor's starter does, unless the environment says otherwise
        env.setdefault(var, str(cpus))
    return env
