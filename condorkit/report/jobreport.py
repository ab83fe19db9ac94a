"""Aggregating a job folder: which results files, which rows and chunk keys are expected.

Owns the policy around :func:`condorkit.report.aggregate.aggregate` for a job folder: the results
files (default ``RESULTS/results-*.json``), the rows the manifest expects, the chart's fields and
title (``chart_x``, ``chart_y``, ``chart_title``), and the current job's chunk keys, so results
made for other rows, another program or other options count as stale. The chunk size is the one
the results were made with (the row count of ``results-1.json``) unless given. When the job
cannot be prepared (e.g. its program is gone) the manifest alone gives the expected rows and a
note says the keys were not checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from condorkit.errors import ConfigError, UsageError
from condorkit.model.config import PROJECT_FILE, JobConfig
from condorkit.model.fileio import kind
from condorkit.model.job import prepare
from condorkit.model.layout import chunk_dir, results_name, state_dir
from condorkit.model.manifest import scan
from condorkit.model.results import load_results
from condorkit.report.aggregate import AggregateReport, aggregate


def results_chunk_size(paths: Sequence[Path]) -> int | None:
    """The chunk size the results were made with: the row count of the file for row 1."""
    first = [p for p in paths if p.name == results_name(1)]
    if not first:
        return None
    rf = load_results(first[0])
    return rf.count if rf.valid and rf.start == 1 and rf.count else None


def job_results(job_dir: Path, config: JobConfig) -> list[Path]:
    """The job folder's results files, in name order."""
    return sorted((job_dir / config.results_dir).glob("results-*.json"))


def refuse_own_files(out_html: Path, job_dir: Path, config: JobConfig,
                     results: Sequence[Path]) -> None:
    """The page must not replace an input of the job: a results file, the manifest, the
    project file, the program, a rows file or a file of the job's state (``-o
    results/results-1.json`` would destroy a chunk's results)."""
    out = os.path.realpath(out_html)
    own = {os.path.realpath(p) for p in results}
    own |= {os.path.realpath(job_dir / n)
            for n in (PROJECT_FILE, config.manifest, config.program)}
    for d in (chunk_dir(job_dir), state_dir(job_dir)):
        real = os.path.realpath(d)
        if os.path.commonpath([out, real]) == real:
            own.add(out)
    if out in own:
        raise UsageError(f"-o {out_html} would replace a file of the job ({out})",
                         "write the page elsewhere, e.g. -o scatter.html")


def aggregate_job(job_dir: Path, config: JobConfig, out_html: Path, *,
                  paths: Sequence[Path] = (), check_manifest: bool = True,
                  manifest_required: bool = False, chunk_given: bool = False,
                  allow_missing: bool = False,
                  on_note: Callable[[str], None] | None = None) -> AggregateReport:
    """Aggregate a job folder's results (or ``paths``) against its manifest into ``out_html``."""
    paths = list(paths) or job_results(job_dir, config)
    refuse_own_files(out_html, job_dir, config, paths)
    expected = None
    keys = None
    if check_manifest:
        mpath = Path(config.manifest)
        mpath = mpath if mpath.is_absolute() else job_dir / mpath
        if not mpath.is_file() and (mpath.exists() or mpath.is_symlink()):
            what = kind(mpath.stat().st_mode) if mpath.exists() else "a dangling link"
            raise UsageError(f"manifest {mpath} is {what}, not a regular file",
                             "give the path of the manifest file, or --no-manifest")
        if mpath.is_file():
            cfg = config
            try:  # the current job's chunk keys: results made for other rows are stale
                size = None if chunk_given else results_chunk_size(paths)
                if size and size != cfg.chunk:
                    cfg = cfg.with_overrides(chunk=size)  # as the results were cut
                job = prepare(job_dir, cfg, write=False)
                expected = job.rows
                keys = {c.start: (c.count, k) for c, k in zip(job.chunks, job.keys, strict=True)}
            except ConfigError as exc:
                if on_note:
                    on_note(f"results are not checked against the current job ({exc.message})")
                expected = scan(mpath, cfg.column_spec(), allow_empty=True).rows
                if cfg.max_rows:
                    expected = min(expected, cfg.max_rows)
        elif manifest_required:
            raise UsageError(f"manifest {mpath} not found", "pass --manifest or --no-manifest")
    return aggregate(paths, expected_rows=expected, out_html=out_html,
                     allow_missing=allow_missing, expected_keys=keys, x_field=config.chart_x,
                     y_field=config.chart_y, title=config.chart_title)
