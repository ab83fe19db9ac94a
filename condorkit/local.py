"""The local backend: every chunk on the local cores, exactly as a pool worker would run it.

Owns running chunks on this machine. Each attempt gets a fresh scratch folder that receives only
the chunk's input files (flat, by base name, like HTCondor's file transfer) and a copy of the
wrapper, which is then run with the same arguments a worker gets. Its output is validated and moved
into the results folder atomically; a chunk with a valid result for the same key is skipped, so a
second run resumes. Library code only: returns frozen dataclasses, prints nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .job import STATE_DIR, ChunkTask, Job
from .wrappers import ckjob


@dataclass(frozen=True)
class ScratchSpec:
    """One execution: the executable, its arguments, the files to place, the files expected."""

    executable: Path
    arguments: tuple[str, ...]
    inputs: tuple[Path, ...]
    outputs: tuple[str, ...]
    label: str


@dataclass(frozen=True)
class Attempt:
    """What one execution in a scratch folder did."""

    label: str
    host: str
    start: float
    duration: float
    exit_code: int
    scratch: Path
    missing_outputs: tuple[str, ...]
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.missing_outputs


@dataclass(frozen=True)
class ChunkOutcome:
    """The end state of one chunk in a local run."""

    start: int
    count: int
    status: str  # "done", "skipped" (valid result already there) or "failed"
    attempts: int
    reason: str = ""


@dataclass(frozen=True)
class RunReport:
    """The summary of a local run."""

    job_dir: Path
    chunks: tuple[ChunkOutcome, ...]
    rows: int
    wall_s: float
    workers: int

    @property
    def failed(self) -> tuple[ChunkOutcome, ...]:
        return tuple(c for c in self.chunks if c.status == "failed")

    @property
    def done(self) -> int:
        return sum(1 for c in self.chunks if c.status in ("done", "skipped"))

    @property
    def rows_per_s(self) -> float:
        ran = sum(c.count for c in self.chunks if c.status == "done")
        return ran / self.wall_s if self.wall_s > 0 else 0.0


def valid_result(path: Path, task: ChunkTask) -> str | None:
    """None when ``path`` holds valid results for exactly this task's rows and key."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        return "no results file"
    except (OSError, ValueError) as exc:
        return f"unreadable results file: {exc}"
    problems = ckjob.check_results(doc, task.chunk.start, task.chunk.count, task.key)
    return "; ".join(problems) or None


def _place(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def scratch_root(job_dir: Path) -> Path:
    root = job_dir / STATE_DIR / "scratch"
    root.mkdir(parents=True, exist_ok=True)
    return root


def execute(spec: ScratchSpec, root: Path, env: dict[str, str] | None = None,
            keep: bool = False, timeout: float | None = None) -> Attempt:
    """Run ``spec`` in a fresh scratch folder under ``root`` and report what happened."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{spec.label}-", dir=root))
    for p in spec.inputs:
        _place(p, scratch / p.name)
    exe = scratch / spec.executable.name
    shutil.copy2(spec.executable, exe)
    os.chmod(exe, 0o755)
    t_wall = time.time()
    t0 = time.perf_counter()
    with open(scratch / "_condor_stdout", "wb") as out, open(scratch / "_condor_stderr", "wb") as err:
        try:
            proc = subprocess.run([str(exe), *spec.arguments], cwd=scratch, stdout=out,
                                  stderr=err, stdin=subprocess.DEVNULL, env=env, timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = 124
    duration = time.perf_counter() - t0
    missing = tuple(o for o in spec.outputs if not (scratch / o).is_file())
    tail = (scratch / "_condor_stderr").read_bytes()[-2000:].decode("utf-8", "replace")
    return Attempt(spec.label, socket.gethostname(), t_wall, duration,
                   code, scratch, missing, tail)


def task_spec(job: Job, task: ChunkTask) -> ScratchSpec:
    return ScratchSpec(job.wrapper, task.arguments, task.inputs, (task.output,),
                       f"chunk-{task.chunk.start}")


def _run_one(job: Job, task: ChunkTask, retries: int) -> ChunkOutcome:
    root = scratch_root(job.dir)
    reason = ""
    for attempt in range(1, retries + 2):
        a = execute(task_spec(job, task), root)
        log = job.log_dir / f"chunk-{task.chunk.start}.err"
        shutil.copyfile(a.scratch / "_condor_stderr", log)
        if a.ok:
            produced = a.scratch / task.output
            problem = valid_result(produced, task)
            if problem is None:
                os.replace(produced, task.result_path)
                shutil.rmtree(a.scratch, ignore_errors=True)
                return ChunkOutcome(task.chunk.start, task.chunk.count, "done", attempt)
            reason = f"invalid results: {problem}"
        elif a.missing_outputs and a.exit_code == 0:
            reason = f"missing output {', '.join(a.missing_outputs)}"
        else:
            last = a.stderr_tail.strip().splitlines()[-1:] or [""]
            reason = f"exit code {a.exit_code}: {last[0]}"
        shutil.rmtree(a.scratch, ignore_errors=True)
    return ChunkOutcome(task.chunk.start, task.chunk.count, "failed", retries + 1, reason)


def run(job: Job, workers: int = 0, retries: int | None = None,
        on_done: Callable[[ChunkOutcome], None] | None = None,
        only: Sequence[int] | None = None) -> RunReport:
    """Run every chunk (or the chunks starting at ``only``) on ``workers`` local processes."""
    workers = workers or job.config.workers or os.cpu_count() or 1
    retries = job.config.local_retries if retries is None else retries
    t0 = time.perf_counter()
    outcomes: list[ChunkOutcome] = []
    todo = []
    for task in job.tasks():
        if only is not None and task.chunk.start not in only:
            continue
        if valid_result(task.result_path, task) is None:
            outcomes.append(ChunkOutcome(task.chunk.start, task.chunk.count, "skipped", 0))
        else:
            todo.append(task)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for outcome in pool.map(lambda t: _run_one(job, t, retries), todo):
            outcomes.append(outcome)
            if on_done:
                on_done(outcome)
    outcomes.sort(key=lambda o: o.start)
    return RunReport(job.dir, tuple(outcomes), job.rows, time.perf_counter() - t0, workers)


@dataclass(frozen=True)
class DryRunResult:
    """One chunk run as a worker would, from the expanded submit text."""

    index: int
    start: int
    count: int
    scratch: Path
    executable: str
    arguments: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    missing_outputs: tuple[str, ...]
    exit_code: int
    duration: float
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.missing_outputs


def dry_run(job: Job, index: int = 0) -> DryRunResult:
    """Run chunk ``index`` in a fresh scratch folder exactly as the rendered submit file says.

    The executable, arguments and transferred files come from HTCondor's own expansion of the
    rendered submit text for that queue item (not recomputed here), so this checks the submit
    file itself. The scratch folder is kept for inspection.
    """
    from .errors import UsageError
    from .render import render_submit
    from .submit import expand_item, parse_items

    text = render_submit(job)
    items = parse_items(text)
    if not 0 <= index < len(items):
        raise UsageError(f"chunk index {index} is out of range (0..{len(items) - 1})",
                         "pick a chunk index shown by `condorkit mksubmit`")
    ex = expand_item(text, items[index])
    base = Path(ex.initialdir or job.dir)

    def resolve(name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else base / p

    spec = ScratchSpec(resolve(ex.executable), ex.arguments,
                       tuple(resolve(f) for f in ex.transfer_input_files),
                       ex.transfer_output_files, f"dry-run-{index}")
    a = execute(spec, scratch_root(job.dir))
    chunk = job.chunks[index]
    return DryRunResult(index, chunk.start, chunk.count, a.scratch, ex.executable, ex.arguments,
                        ex.transfer_input_files, ex.transfer_output_files, a.missing_outputs,
                        a.exit_code, a.duration, a.stderr_tail)
