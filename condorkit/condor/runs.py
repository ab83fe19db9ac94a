"""The policy of a job's runs on a pool: what to submit, and what never to do twice.

Owns the decisions the command line used to make: submit only the chunks without valid results
(unless asked for all), never queue a chunk that a job in the queue is still working on (whoever
submitted it), resubmit only when the previous run has nothing queued, running or waiting for
retrieval (its held jobs are removed and replaced), and which run a folder's commands look at (the
newest one, also when it was submitted with plain ``condor_submit``: then it is found in the job
folder's event log and adopted). Returns frozen dataclasses;
prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condorkit.condor.monitor import status
from condorkit.condor.queueads import queued_chunks
from condorkit.condor.submit import (
    RunRecord,
    SubmitReport,
    _htcondor,
    adopt_run,
    chunks_to_run,
    load_run,
    remove,
    runs_dir,
    submit_run,
)
from condorkit.errors import CondorError, UsageError
from condorkit.model.chunking import Chunk
from condorkit.model.job import Job
from condorkit.model.layout import EVENT_LOG, current_run
from condorkit.model.states import State


@dataclass(frozen=True)
class SubmitOutcome:
    """What :func:`submit` or :func:`resubmit` did: the submitted run (None when every chunk
    already had valid results), how many chunks were skipped as valid, the job's chunk count, and
    the held jobs of the previous run that were removed (resubmit)."""

    submitted: SubmitReport | None
    skipped_valid: int
    chunks: int
    removed_held: tuple[int, ...] = ()


def logged_cluster(event_log: Path) -> int | None:
    """The newest cluster submitted into ``event_log`` (the job folder's HTCondor event log),
    read through the bindings' ``JobEventLog``; None when the log is missing or has none."""
    if not event_log.is_file():
        return None
    htcondor = _htcondor()
    newest = None
    try:
        for event in htcondor.JobEventLog(str(event_log)).events(stop_after=0):
            if event.type == htcondor.JobEventType.SUBMIT:
                newest = max(newest or 0, int(event.cluster))
    except Exception as exc:
        raise CondorError(f"cannot read the event log {event_log}: {exc}",
                          "check the file (it is written by HTCondor as the jobs run)") from exc
    return newest


def open_run(job_dir: Path, config: Any, cluster: int | None = None) -> RunRecord:
    """The run to look at: ``cluster`` if given, else the job folder's newest one.

    A cluster submitted another way (``condor_submit submit.sub``, the tutorial's way) has no run
    record yet: it is found in the job folder's event log (``LOGDIR/condorkit.log``, named by
    the submit file) and adopted from its jobs' attributes (:func:`adopt_run`).
    """
    job_dir = job_dir.resolve()
    if cluster is None:
        logged = logged_cluster(job_dir / config.log_dir / EVENT_LOG)
        known = current_run(job_dir).is_file()
        if logged is not None and not (runs_dir(job_dir) / f"{logged}.json").is_file():
            current = load_run(job_dir).cluster if known else -1
            if logged > current:
                return adopt_run(job_dir, config, logged)
        if not known and logged is None:
            raise UsageError(f"{job_dir}: no run has been submitted from this job folder (no run "
                             f"record, and no submission in {config.log_dir}/{EVENT_LOG})",
                             "submit with `condorkit submit` or `condor_submit submit.sub` from "
                             "this folder, pass -C JOB_FOLDER, or name the run with --cluster N")
        return load_run(job_dir)
    if not (runs_dir(job_dir) / f"{cluster}.json").is_file():
        return adopt_run(job_dir, config, cluster)
    return load_run(job_dir, cluster)


def refuse_queued(job: Job, todo: Sequence[Chunk], schedd: str | None) -> None:
    """Never run a chunk twice at once: refuse while a queued job still works on it."""
    queued = queued_chunks(job.dir, schedd)
    clash = [f"{c.start} ({queued[c.start]})" for c in todo if c.start in queued]
    if clash:
        raise UsageError(f"{len(clash)} chunk(s) still have a job in the queue: "
                         f"{', '.join(clash[:5])}{' ...' if len(clash) > 5 else ''}",
                         "wait for them (condorkit wait), or remove them (condor_rm CLUSTER); "
                         "condorkit resubmit --missing removes held jobs of the last run")


def submit(job: Job, *, all_chunks: bool = False, spool: bool = False,
           schedd: str | None = None) -> SubmitOutcome:
    """Submit the job's chunks that lack valid results (all with ``all_chunks``) as one run."""
    todo, valid = chunks_to_run(job, missing_only=not all_chunks)
    if not todo:
        return SubmitOutcome(None, len(valid), len(job.chunks))
    refuse_queued(job, todo, schedd)
    rep = submit_run(job, todo, spool=spool, schedd_name=schedd)
    return SubmitOutcome(rep, len(valid), len(job.chunks))


def resubmit(prev: RunRecord, prepare: Callable[[RunRecord], Job], *, spool: bool = False,
             schedd: str | None = None) -> SubmitOutcome:
    """A new run of the chunks of ``prev``'s job that lack valid results.

    Refused while ``prev`` has jobs idle, running or waiting for retrieval; its held jobs are
    removed first. ``prepare`` makes the job from the previous run (e.g. its chunk size)."""
    st = status(prev)
    busy = [c for c in st.chunks if c.state in (State.IDLE, State.RUNNING, State.COMPLETED)]
    if busy:
        raise UsageError(f"run {prev.cluster} still has {len(busy)} job(s) queued, running or "
                         "waiting for retrieval", "let it finish first: condorkit wait")
    job = prepare(prev)
    todo, valid = chunks_to_run(job, missing_only=True)
    held = tuple(c.proc for c in st.chunks if c.state == State.HELD)
    if held:
        remove(prev, held, "condorkit resubmit: replaced by a new run of its chunk")
    if not todo:
        return SubmitOutcome(None, len(valid), len(job.chunks), held)
    refuse_queued(job, todo, schedd)
    rep = submit_run(job, todo, spool=spool, schedd_name=schedd, parent=prev.cluster)
    return SubmitOutcome(rep, len(valid), len(job.chunks), held)
