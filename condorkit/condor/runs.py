"""The policy of a job's runs on a pool: what to submit, and what never to do twice.

Owns the decisions the command line used to make: submit only the chunks without valid results
(unless asked for all), never queue a chunk that a job in the queue is still working on (whoever
submitted it), resubmit only when the previous run has nothing queued, running or waiting for
retrieval (its held jobs are removed and replaced), and which run a folder's commands look at (the
current one, or a cluster adopted from plain ``condor_submit``). Returns frozen dataclasses;
prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condorkit.condor.monitor import queued_chunks, status
from condorkit.condor.submit import (
    RunRecord,
    SubmitReport,
    adopt_run,
    chunks_to_run,
    load_run,
    remove,
    runs_dir,
    submit_run,
)
from condorkit.errors import UsageError
from condorkit.model.chunking import Chunk
from condorkit.model.job import Job
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


def open_run(job_dir: Path, config: Any, cluster: int | None = None) -> RunRecord:
    """The run to look at: the current one, or ``cluster`` (a cluster submitted with
    ``condor_submit`` from this folder is adopted: its run record is written from its job ads)."""
    if cluster is not None and not (runs_dir(job_dir) / f"{cluster}.json").is_file():
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
