"""``condorkit dry-run``: one chunk run here exactly as the rendered submit file tells a worker to.

Owns checking the submit file itself: the executable, arguments and transferred files come from
HTCondor's own expansion of the rendered text for one queue item (not recomputed), and the chunk
runs through the shared scratch executor (:mod:`condorkit.model.scratch`) with a starter's
environment. The scratch folder is kept for inspection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from condorkit.condor.render import render_submit
from condorkit.condor.submit import expand_item, parse_items
from condorkit.errors import UsageError
from condorkit.model.interpreter import bundle_brings_python, job_env
from condorkit.model.job import Job
from condorkit.model.layout import scratch_root
from condorkit.model.scratch import ScratchSpec, execute


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
    text = render_submit(job)
    items = parse_items(text)
    if not 0 <= index < len(items):
        raise UsageError(f"chunk index {index} is out of range (0..{len(items) - 1})",
                         "pick a chunk index shown by `condorkit mksubmit`")
    ex = expand_item(text, items[index])
    base = Path(ex.initialdir or job.dir)

    def resolve(name: str) -> Path:
        if "://" in name and job.bundle is not None and name.rsplit("/", 1)[-1] == job.bundle.name:
            return job.bundle  # bundle_url: the local copy (the wrapper checks its sha256)
        p = Path(name)
        return p if p.is_absolute() else base / p

    spec = ScratchSpec(resolve(ex.executable), ex.arguments,
                       tuple(resolve(f) for f in ex.transfer_input_files),
                       ex.transfer_output_files, f"dry-run-{index}")
    env = job_env(os.environ, job.config.python, job.config.sources.get("python", "default"),
                  bundle_brings_python(job.bundle))
    a = execute(spec, scratch_root(job.dir), env, job.config.request_cpus)
    chunk = job.chunks[index]
    return DryRunResult(index, chunk.start, chunk.count, a.scratch, ex.executable, ex.arguments,
                        ex.transfer_input_files, ex.transfer_output_files, a.missing_outputs,
                        a.exit_code, a.duration, a.stderr_tail)
