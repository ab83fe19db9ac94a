"""The public Python API: the pipeline as a handful of calls, each returning a frozen dataclass.

Owns nothing but the entry points; each delegates to the module that owns the step, and returns
the same frozen dataclass the CLI renders (its ``--json`` output is that dataclass's dict), so a
notebook gets the same information as the command line::

    job = condorkit.load("my-job")          # Job: config, manifest, chunks, keys
    condorkit.run(job)                      # RunReport (local cores)
    condorkit.render(job)                   # the submit file's text
    condorkit.submit(job)                   # SubmitOutcome (HTCondor pool)
    condorkit.wait(job)                     # RunStatus
    condorkit.aggregate(job, "scatter.html")  # AggregateReport
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from condorkit.condor.monitor import RunStatus
    from condorkit.condor.runs import SubmitOutcome
    from condorkit.local.run import RunReport
    from condorkit.model.job import Job
    from condorkit.report.aggregate import AggregateReport

__all__ = ["aggregate", "load", "render", "run", "status", "submit", "wait"]


def load(job_dir: str | Path = ".", **options: Any) -> Job:
    """Read a job folder (condorkit.toml < CONDORKIT_* < ``options``), check its manifest and
    write its per-chunk rows files: the prepared :class:`~condorkit.model.job.Job`."""
    from condorkit.model.config import load_config
    from condorkit.model.job import prepare

    folder = Path(job_dir).resolve()
    return prepare(folder, load_config(folder, options))


def run(job: Job, **kwargs: Any) -> RunReport:
    """Run every chunk on the local cores (see :func:`condorkit.local.run.run` for options)."""
    from condorkit.local.run import run as run_local

    return run_local(job, **kwargs)


def render(job: Job) -> str:
    """The job's HTCondor submit file (what ``mksubmit`` prints)."""
    from condorkit.condor.render import render_submit

    return render_submit(job)


def submit(job: Job, *, all_chunks: bool = False, spool: bool = False,
           schedd: str | None = None) -> SubmitOutcome:
    """Submit the chunks without valid results to the pool as one run (never a queued chunk)."""
    from condorkit.condor.runs import submit as submit_job

    return submit_job(job, all_chunks=all_chunks, spool=spool, schedd=schedd)


def status(job: Job, cluster: int | None = None) -> RunStatus:
    """Every chunk's state in the job folder's current run (or run ``cluster``)."""
    from condorkit.condor.monitor import status as run_status
    from condorkit.condor.runs import open_run

    return run_status(open_run(job.dir, job.config, cluster))


def wait(job: Job, timeout: float | None = None, cluster: int | None = None,
         interval: float = 1.0) -> RunStatus:
    """Follow the current run (or ``cluster``) until every chunk is done, failed or held."""
    from condorkit.condor.monitor import wait as wait_run
    from condorkit.condor.runs import open_run

    return wait_run(open_run(job.dir, job.config, cluster), timeout=timeout, interval=interval)


def aggregate(job: Job, out_html: str | Path = "scatter.html", *,
              allow_missing: bool = False) -> AggregateReport:
    """Aggregate the job's results into ``out_html`` (relative to the job folder) and report
    coverage: every row a value, a recorded error, or missing."""
    from condorkit.report.jobreport import aggregate_job

    out = Path(out_html)
    return aggregate_job(job.dir, job.config, out if out.is_absolute() else job.dir / out,
                         allow_missing=allow_missing)
