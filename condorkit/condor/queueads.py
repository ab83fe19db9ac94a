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


def unmade_starts(cluster: int, next_proc: int, record: Path) -> dict[int, str]:
    """Chunks a late-materializing cluster will still make: ``{start: "CLUSTER.PROC ..."}`` for
    every proc from ``next_proc`` on, from that cluster's run record (``runs/CLUSTER.json``)."""
    try:
        chunks = json.loads(record.read_text(encoding="utf-8"))["chunks"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {int(c["start"]): f"{cluster}.{c['proc']} {UNMADE}" for c in chunks
            if isinstance(c, dict) and isinstance(c.get("proc"), int) and c["proc"] >= next_proc}


def queued_chunks(job_dir: Path, schedd_name: str | None = None) -> dict[int, str]:
    """Chunks of this job folder that some job in the queue is still working on, or will.

    Asks the schedd (one query, cluster ads included) for every job whose (submit) folder is
    ``job_dir``, whichever way it was submitted, and returns ``{start: "CLUSTER.PROC state"}``
    for those idle, running, held, or finished but waiting for their spooled outputs to be
    retrieved, and for the jobs a late-materializing cluster has not made yet (mapped to chunks
    through its run record; a cluster without one, e.g. from ``condor_submit``, is adopted
    first by ``status``). Raises :class:`CondorError` naming such a cluster when it cannot be
    mapped, rather than risk running its chunks twice.
    """
    from condorkit.condor.submit import CONFIG_HINT, _htcondor, locate_schedd, runs_dir

    schedd, _ = locate_schedd(schedd_name)
    folder = json.dumps(str(job_dir.resolve()))
    try:
        ads = schedd.query(f"(Iwd == {folder} || SUBMIT_Iwd == {folder}) && JobStatus =!= 3",
                           projection=["ClusterId", "ProcId", "JobStatus", "CondorkitStart",
                                       "SUBMIT_Iwd", "JobMaterializeNextProcId"],
                           opts=_htcondor().QueryOpt.IncludeClusterAd)
    except Exception as exc:
        raise CondorError(f"cannot query the schedd for jobs of {job_dir}: {exc}",
                          CONFIG_HINT) from exc
    out: dict[int, str] = {}
    for ad in ads:
        if "ProcId" not in ad:  # a cluster ad: late materialization still to come?
            nxt = _value(ad.get("JobMaterializeNextProcId"))
            if not isinstance(nxt, int):
                continue
            cluster = int(_value(ad.get("ClusterId")))
            record = runs_dir(job_dir.resolve()) / f"{cluster}.json"
            if not record.is_file():
                raise CondorError(f"cluster {cluster} of {job_dir} still has jobs to "
                                  "materialize, and no run record says which chunks they run",
                                  f"look at it first (condorkit status --cluster {cluster}), "
                                  f"or remove it (condor_rm {cluster})")
            for start, what in unmade_starts(cluster, nxt, record).items():
                out.setdefault(start, what)
            continue
        start, code = _value(ad.get("CondorkitStart")), _value(ad.get("JobStatus"))
        if not isinstance(start, int) or (code == 4 and _value(ad.get("SUBMIT_Iwd")) is None):
            continue  # not a condorkit chunk, or completed and about to leave the queue
        out[start] = f"{ad['ClusterId']}.{ad['ProcId']} {JOB_STATUS.get(int(code or 0), code)}"
    return out
