"""What a run's queue ads say beyond ``JobStatus`` (used by :mod:`condorkit.condor.monitor`).

Owns two readings of the schedd's ads: whether a held job's own ``PeriodicRelease`` (e.g.
condorkit's ``memory_retry``) will release it, so waiting goes on; and, for a cluster submitted
with late materialization (``max_materialize``/``max_idle``), from which proc id on the jobs are
not made yet (the cluster ad's ``JobMaterializeNextProcId``), so they count as waiting, not lost.
Both come from the same single queue query (``QueryOpt.IncludeClusterAd``), never job by job.
Also which chunks of a job folder some queued job still works on (:func:`queued_chunks`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from condorkit.errors import CondorError

#: extra attributes the monitor's queue/history projection needs for these readings
PROJECTION = ("PeriodicRelease", "NumHolds", "HoldReasonSubCode", "RequestMemory",
              "MemoryUsage", "ResidentSetSize", "JobMaterializeNextProcId")
UNMADE = "not materialized yet (max_materialize)"


def releasing(ad: Any) -> bool:
    """Whether a held job's own PeriodicRelease is true now (the schedd will release it)."""
    try:
        return ad.get("PeriodicRelease") is not None and ad.eval("PeriodicRelease") is True
    except Exception:  # an expression the bindings cannot evaluate here: not releasing
        return False


def release_note(ad: Any) -> str:
    try:
        memory = ad.eval("RequestMemory")
    except Exception:
        memory = "?"
    return f"; its periodic_release releases it (request_memory now {memory} MB)"


def split_cluster_ad(ads: Iterable[Any]) -> tuple[list[Any], int | None]:
    """(the job ads, the first proc id not materialized yet, or None)."""
    jobs, first = [], None
    for ad in ads:
        if "ProcId" in ad:
            jobs.append(ad)
        else:  # the cluster ad of a late-materializing cluster
            nxt = ad.get("JobMaterializeNextProcId")
            first = nxt if isinstance(nxt, int) else None
    return jobs, first


def unmade(procs: Iterable[int], queue: Any, events: Any, first: int | None) -> set[int]:
    """The procs a late-materializing cluster has not made yet: from ``first`` on, neither in
    the queue nor in the event log."""
    if first is None:
        return set()
    return {p for p in procs if p >= first and p not in queue and p not in events}


JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held", 6: "running",
              7: "running"}


def _value(value: Any) -> Any:
    """A ClassAd value as a plain Python value (None for undefined or error)."""
    return value if isinstance(value, (bool, int, float, str)) else None


def queued_chunks(job_dir: Path, schedd_name: str | None = None) -> dict[int, str]:
    """Chunks of this job folder that some job in the queue is still working on.

    Asks the schedd for every job whose (submit) folder is ``job_dir``, whichever way it was
    submitted, and returns ``{start: "CLUSTER.PROC state"}`` for those idle, running, held, or
    finished but waiting for their spooled outputs to be retrieved.
    """
    from condorkit.condor.submit import CONFIG_HINT, locate_schedd

    schedd, _ = locate_schedd(schedd_name)
    folder = json.dumps(str(job_dir.resolve()))
    try:
        ads = schedd.query(f"(Iwd == {folder} || SUBMIT_Iwd == {folder}) && JobStatus != 3",
                           projection=["ClusterId", "ProcId", "JobStatus", "CondorkitStart",
                                       "SUBMIT_Iwd"])
    except Exception as exc:
        raise CondorError(f"cannot query the schedd for jobs of {job_dir}: {exc}",
                          CONFIG_HINT) from exc
    out = {}
    for ad in ads:
        start, code = _value(ad.get("CondorkitStart")), _value(ad.get("JobStatus"))
        if not isinstance(start, int) or (code == 4 and _value(ad.get("SUBMIT_Iwd")) is None):
            continue  # not a condorkit chunk, or completed and about to leave the queue
        out[start] = f"{ad['ClusterId']}.{ad['ProcId']} {JOB_STATUS.get(int(code or 0), code)}"
    return out
