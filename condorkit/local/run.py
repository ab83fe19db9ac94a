"""The local backend: every chunk on the local cores, exactly as a pool worker would run it.

Owns running a job on this machine. Each attempt gets a fresh scratch folder that receives only
its input files (flat, by base name, like HTCondor's file transfer) and a copy of the wrapper,
which runs with the same arguments a worker gets, in its own process group. Its output is
validated and only then moved into place atomically; a chunk with a valid result for the same key
is skipped, so a second run resumes.

Scheduling (:func:`run`): one shared queue of pending row spans (pending -> running -> done |
failed). An idle worker takes the next span; with ``granularity="auto"`` it may take a part of a
chunk (to balance the tail) or several small adjacent chunks (when start-up would dominate), see
:mod:`condorkit.local.pieces` and :func:`plan_piece`. A failed attempt (non-zero exit,
killed, invalid output) is retried with exponential backoff up to ``retries`` times, then its
chunk is recorded failed with the reason and the run goes on. When nothing is pending and a
worker is idle, the longest-running piece that is overdue gets a second copy; the first valid
result wins and the other copy's process group is killed. SIGINT/SIGTERM kill every process
group and raise
:class:`~condorkit.errors.Interrupted`; finished work stays and the next run resumes.
``dispatch="random"`` pre-assigns whole chunks to workers at random instead (for comparison).
Every attempt is one line of a tab-separated joblog. Library code only: prints nothing.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from condorkit.errors import Interrupted, UsageError
from condorkit.local.pieces import leftover_parts
from condorkit.local.scheduler import (
    ChunkState,
    RunProgress,
    Scheduler,
    Span,
    killpg,
)
from condorkit.local.workers import Worker, default_workers
from condorkit.model.failures import FailureCause, group
from condorkit.model.fileio import check_writable, open_append
from condorkit.model.interpreter import ENV_VAR, bundle_brings_python, job_env
from condorkit.model.job import Job
from condorkit.model.joblock import job_lock
from condorkit.model.layout import JOBLOG, SCRATCH_DIR, scratch_root, state_dir
from condorkit.model.scratch import stop_orphans
from condorkit.model.states import State

__all__ = ["ChunkOutcome", "RunProgress", "RunReport", "default_workers", "run"]


@dataclass(frozen=True)
class ChunkOutcome:
    """The end state of one chunk in a local run."""

    start: int
    count: int
    status: State  # done, skipped (valid result already there), failed or pending
    attempts: int
    reason: str = ""
    cause: str = ""  # the failure's cause without the attempt count, for grouping
    log: str = ""  # the stderr log of its last failed attempt


@dataclass(frozen=True)
class RunReport:
    """The summary of a local run."""

    job_dir: Path
    chunks: tuple[ChunkOutcome, ...]
    rows: int
    wall_s: float
    workers: int
    dispatch: str = "balanced"
    rows_run: int = 0
    attempts: int = 0
    retried: int = 0
    speculated: int = 0
    pieces: int = 0
    joblog: Path | None = None
    interrupted: str = ""
    python: str = ""  # the interpreter a .py program ran under ("" with a bundle)

    @property
    def causes(self) -> tuple[FailureCause, ...]:
        """Failed chunks grouped by cause, most frequent first, with a log and a hint each."""
        return group(((c.start, c.cause or c.reason, c.log) for c in self.failed), self.python)

    @property
    def failed(self) -> tuple[ChunkOutcome, ...]:
        return tuple(c for c in self.chunks if c.status == State.FAILED)

    @property
    def done(self) -> int:
        return sum(1 for c in self.chunks if c.status in (State.DONE, State.SKIPPED))

    @property
    def skipped(self) -> int:
        return sum(1 for c in self.chunks if c.status == State.SKIPPED)

    @property
    def rows_per_s(self) -> float:
        return self.rows_run / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(job_dir=str(self.job_dir), joblog=str(self.joblog) if self.joblog else None,
                 done=self.done, skipped=self.skipped, failed=len(self.failed),
                 rows_per_s=round(self.rows_per_s, 3),
                 causes=[asdict(c) for c in self.causes])
        return d


def run(job: Job, workers: int = 0, retries: int | None = None, *,
        dispatch: str = "balanced", granularity: str = "auto",
        speculate_after: float | None = 10.0, backoff: float = 1.0,
        joblog: Path | None = None, grace: float = 1.0, env: dict[str, str] | None = None,
        seed: int | None = None, on_progress: Callable[[RunProgress], None] | None = None,
        only: Sequence[int] | None = None, lock_wait: float = 0.0, persistent: bool = True,
        time_limit: float | None = None, prestarted: Sequence[Worker] = ()) -> RunReport:
    """Run every chunk (or the chunks starting at ``only``) on ``workers`` local processes.

    ``retries``: extra attempts per failed span (default ``local_retries``), ``backoff`` seconds
    before the first retry, doubling. ``speculate_after``: seconds a piece must have run (and at
    least twice its expected time) before an idle worker starts a copy; None: never.
    ``granularity``: "auto" (split or join chunks, see :func:`plan_piece`) or "chunk".
    ``joblog``: default ``LOGDIR/joblog.tsv`` (appended). In the main thread, SIGINT and SIGTERM
    stop the run and raise :class:`Interrupted` (the report is its ``report`` attribute).
    ``lock_wait``: seconds to wait for another run of the same job to end (default: fail).
    ``persistent``: run a ``.py`` program without a bundle in persistent workers (one per
    worker, :mod:`condorkit.local.workers`: the interpreter and the program's imports once per
    worker).
    ``time_limit``: seconds of wall clock per piece, then it is killed and counts as failed
    (retried, then recorded with that reason). ``prestarted``: workers from
    :func:`condorkit.local.workers.prestart`, used when they match the job (else closed).
    """
    try:
        return _run(job, workers, retries, dispatch=dispatch, granularity=granularity,
                    speculate_after=speculate_after, backoff=backoff, joblog=joblog, grace=grace,
                    env=env, seed=seed, on_progress=on_progress, only=only,
                    lock_wait=lock_wait, persistent=persistent, time_limit=time_limit,
                    prestarted=prestarted)
    finally:
        for w in prestarted:  # no-op for the ones the run took (it closed them)
            w.close()


def _run(job: Job, workers: int, retries: int | None, *, dispatch: str, granularity: str,
         speculate_after: float | None, backoff: float, joblog: Path | None, grace: float,
         env: dict[str, str] | None, seed: int | None,
         on_progress: Callable[[RunProgress], None] | None, only: Sequence[int] | None,
         lock_wait: float, persistent: bool, time_limit: float | None,
         prestarted: Sequence[Worker]) -> RunReport:
    if dispatch not in ("balanced", "random") or granularity not in ("auto", "chunk"):
        raise UsageError(f"unknown dispatch {dispatch!r} or granularity {granularity!r}",
                         "dispatch: balanced or random; granularity: auto or chunk")
    workers = workers or job.config.workers or default_workers()
    retries = job.config.local_retries if retries is None else retries
    if retries < 0:
        raise UsageError(f"retries must be 0 or more, got {retries}",
                         "e.g. --retries 2 (extra attempts after a failed one)")
    if not (backoff >= 0 and math.isfinite(backoff)):
        raise UsageError(f"backoff must be 0 or more seconds, got {backoff}", "e.g. --backoff 1")
    if speculate_after is not None and not speculate_after >= 0:
        raise UsageError(f"speculate_after must be 0 or more seconds, got {speculate_after}",
                         "e.g. --speculate-after 10, or --no-speculate")
    if joblog is None:
        joblog = job.log_dir / JOBLOG
        check_writable(job.log_dir, "the log folder")
    open_append(joblog, "the joblog").close()  # refuses a FIFO, a device, a missing folder
    check_writable(job.results_dir, "the results folder")
    check_writable(state_dir(job.dir) / SCRATCH_DIR, "the scratch folder")
    base_env = dict(os.environ if env is None else env)
    base_env = job_env(base_env, job.config.python, job.config.sources.get("python", "default"),
                       bundle_brings_python(job.bundle))
    lock = job_lock(job.dir, "condorkit run", wait=lock_wait)
    lock.__enter__()
    r = None
    old: dict[int, Any] = {}
    failing = False
    try:
        stop_orphans(scratch_root(job.dir))  # programs a killed coordinator left running
        for d in scratch_root(job.dir).iterdir():
            if d.name.startswith(("chunk-", "piece-")):
                shutil.rmtree(d, ignore_errors=True)
        r = Scheduler(job, workers, retries, dispatch, granularity, speculate_after, backoff,
                      joblog, grace, base_env, on_progress, seed, persistent, time_limit,
                      prestarted)
        skipped: list[int] = []
        for task in job.tasks():
            if only is not None and task.chunk.start not in only:
                continue
            if task.valid() is None:
                skipped.append(task.chunk.index)
            else:
                r.chunks[task.chunk.index] = ChunkState()
        leftovers = leftover_parts(job, r.chunks, skipped)
        for i in r.chunks:
            chunk = job.chunks[i]
            pos = chunk.start
            for p, _ in [pd for pd in leftovers if i in pd[0].chunks]:
                if p.start > pos:
                    r.push(Span(i, pos, p.start - pos))
                pos = max(pos, p.end + 1)
            if pos <= chunk.end:
                r.push(Span(i, pos, chunk.end - pos + 1))
        r.rows_total = r.pending_rows
        for p, doc in leftovers:
            r.add_part(p, doc)
        if threading.current_thread() is threading.main_thread():
            def on_signal(signum: int, _frame: Any) -> None:
                if r is not None:
                    r.stop = signum
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    old[sig] = signal.signal(sig, on_signal)
        r.loop()
        if r.stop:
            r.kill_all("interrupted")
    except BaseException:
        failing = True
        if r is not None:
            try:
                r.kill_all("interrupted")
            except BaseException:  # already failing: make sure nothing keeps running
                for c in r.running:
                    killpg(c.proc.pid, signal.SIGKILL)
        raise
    finally:
        for signum, handler in old.items():
            signal.signal(signum, handler)
        try:
            if r is not None:
                r.close_workers()
                try:
                    r.log.close()
                except OSError:
                    if not failing:  # else the first error is the one to report
                        raise
        finally:
            lock.__exit__(None, None, None)
    outcomes = [ChunkOutcome(job.chunks[i].start, job.chunks[i].count, State.SKIPPED, 0)
                for i in skipped]
    outcomes += [ChunkOutcome(job.chunks[i].start, job.chunks[i].count, st.status, st.attempts,
                              st.reason, st.cause, st.log) for i, st in r.chunks.items()]
    outcomes.sort(key=lambda o: o.start)
    report = RunReport(job.dir, tuple(outcomes), job.rows, time.perf_counter() - r.t0, workers,
                       dispatch, r.rows_done, r.attempts, r.retried, r.speculated, r.pieces,
                       joblog, signal.Signals(r.stop).name if r.stop else "",
                       base_env.get(ENV_VAR, ""))
    if r.stop:
        exc = Interrupted(f"stopped by {report.interrupted}: {report.done} of "
                          f"{len(report.chunks)} chunk(s) have valid results",
                          "run the same command again; it resumes where this run stopped")
        exc.exit_code = 128 + r.stop
        exc.report = report  # type: ignore[attr-defined]
        raise exc
    return report
