"""The job folder's layout: every file and folder name condorkit reads or writes in a job folder.

Owns the names only (no I/O beyond creating a folder on request), so the local backend, the
HTCondor backend, the report and the templates agree on one spelling. Rows are 1-based and a
chunk's files are named by its first row ``START``::

    JOB/condorkit.toml                 project file
    JOB/chunks/rows-START.jsonl        a chunk's rows (input)
    JOB/RESULTS/results-START.json     a chunk's results (RESULTS: ``results_dir``, default results)
    JOB/LOGS/chunk-START.out|.err      a chunk's stdout/stderr (LOGS: ``log_dir``, default logs)
    JOB/LOGS/joblog.tsv                one line per local attempt
    JOB/.condorkit/wrapper.sh, ckjob.py      the job-side files shipped with every chunk
    JOB/.condorkit/scratch/            local scratch folders (one per attempt)
    JOB/.condorkit/parts/results-START-COUNT.json   results of a part of a chunk (local)
    JOB/.condorkit/workers/worker-K.log     a persistent local worker's own stderr
    JOB/.condorkit/runs/CLUSTER.json   run records of pool submissions (+ current-run.json)
    JOB/.condorkit/rows-staging/       rows files being written, until the manifest validated
"""

from __future__ import annotations

import re
from pathlib import Path

PROJECT_FILE = "condorkit.toml"
STATE_DIR = ".condorkit"
CHUNK_DIR = "chunks"
WRAPPER = "wrapper.sh"
CKJOB = "ckjob.py"
START_MACRO = "$(start)"  # the submit file's per-chunk macro, used in place of START
SCRATCH_DIR = "scratch"
PARTS_DIR = "parts"
WORKERS_DIR = "workers"
RUNS_DIR = "runs"
ROWS_STAGING = "rows-staging"
CURRENT_RUN = "current-run.json"
RUN_LOCK = "run.lock"
JOBLOG = "joblog.tsv"
EVENT_LOG = "condorkit.log"
AGGREGATOR = "ckaggregate.pyz"

RESULTS_NAME = re.compile(r"^results-(\d+)\.json$")
PART_NAME = re.compile(r"^results-(\d+)-(\d+)\.json$")


def rows_name(start: int | str) -> str:
    """``rows-START.jsonl``: a chunk's rows file."""
    return f"rows-{start}.jsonl"


def results_name(start: int | str) -> str:
    """``results-START.json``: a chunk's results file."""
    return f"results-{start}.json"


def part_name(start: int, count: int) -> str:
    """``results-START-COUNT.json``: the results of rows START.. of a part of a chunk."""
    return f"results-{start}-{count}.json"


def chunk_label(start: int | str) -> str:
    """``chunk-START``: a chunk's name in logs, scratch folders and DAG nodes."""
    return f"chunk-{start}"


def err_name(start: int | str) -> str:
    """``chunk-START.err``: a chunk's stderr in the log folder."""
    return f"{chunk_label(start)}.err"


def out_name(start: int | str) -> str:
    """``chunk-START.out``: a chunk's stdout in the log folder."""
    return f"{chunk_label(start)}.out"


def name_start(path: Path) -> int | None:
    """START of a ``results-START.json`` name, else None."""
    m = RESULTS_NAME.match(path.name)
    return int(m.group(1)) if m else None


def state_dir(job_dir: Path) -> Path:
    return job_dir / STATE_DIR


def chunk_dir(job_dir: Path) -> Path:
    return job_dir / CHUNK_DIR


def scratch_root(job_dir: Path) -> Path:
    """Where local attempts get their scratch folders (created)."""
    root = job_dir / STATE_DIR / SCRATCH_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root


def parts_dir(job_dir: Path) -> Path:
    return job_dir / STATE_DIR / PARTS_DIR


def worker_log(job_dir: Path, k: int) -> Path:
    """The stderr of the local run's persistent worker number ``k`` (its own messages, e.g. a
    failed start; each piece's output goes to its chunk's logs)."""
    return job_dir / STATE_DIR / WORKERS_DIR / f"worker-{k}.log"


def runs_dir(job_dir: Path) -> Path:
    return job_dir / STATE_DIR / RUNS_DIR


def rows_staging(job_dir: Path) -> Path:
    """Where rows files wait until the whole manifest is valid (then they move to chunks/)."""
    return job_dir / STATE_DIR / ROWS_STAGING


def current_run(job_dir: Path) -> Path:
    return job_dir / STATE_DIR / CURRENT_RUN


def run_lock(job_dir: Path) -> Path:
    return job_dir / STATE_DIR / RUN_LOCK
