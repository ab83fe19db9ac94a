"""Choosing the chunk size from a measured dry-run (``--target-minutes M``).

Owns the rule: run ONE probe chunk of the job exactly as a worker would (:func:`dry_run` of the
rendered submit file, in a scratch folder), take its wall time per row, and pick the chunk size
whose jobs last about M minutes. The probe includes the program's start-up, so the estimate errs
towards smaller chunks for programs with a slow start. Only the probe's rows file is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from condorkit.errors import RunFailed, UsageError
from condorkit.model.config import JobConfig
from condorkit.model.job import prepare

PROBE_ROWS = 20


@dataclass(frozen=True)
class ChunkChoice:
    """What the probe measured and the chunk size chosen from it."""

    target_minutes: float
    probe_rows: int
    probe_seconds: float
    seconds_per_row: float
    rows: int
    chunk: int

    @property
    def jobs(self) -> int:
        return -(-self.rows // self.chunk)

    def describe(self) -> str:
        return (f"target {self.target_minutes:g} min per job: a dry-run of {self.probe_rows} "
                f"row(s) took {self.probe_seconds:.2f}s ({self.seconds_per_row:.4f}s per row); "
                f"chunk = {self.chunk} rows (~{self.chunk * self.seconds_per_row / 60:.1f} min "
                f"per job), {self.jobs} job(s) for {self.rows} rows")


def choose_chunk(job_dir: Path, config: JobConfig, target_minutes: float,
                 probe_rows: int = PROBE_ROWS) -> ChunkChoice:
    """Dry-run one chunk of ``probe_rows`` rows and size chunks for ``target_minutes``."""
    from condorkit.condor.dryrun import dry_run

    if not target_minutes > 0:
        raise UsageError(f"--target-minutes must be positive, got {target_minutes}",
                         "e.g. --target-minutes 30")
    rows = prepare(job_dir, config, write=False).rows
    n = max(1, min(probe_rows, rows))
    probe = prepare(job_dir, config.with_overrides(chunk=n, max_rows=n), write=True)
    res = dry_run(probe, 0)
    if not res.ok:
        raise RunFailed(f"the probe dry-run of {n} row(s) failed (exit code {res.exit_code}); "
                        "cannot size the chunks", f"run `condorkit dry-run` and read "
                        f"{res.scratch / '_condor_stderr'}")
    per_row = max(res.duration, 1e-3) / res.count
    chunk = max(1, min(rows, int(target_minutes * 60 / per_row)))
    return ChunkChoice(target_minutes, res.count, res.duration, per_row, rows, chunk)
