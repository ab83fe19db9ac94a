"""Running the job contract in a scratch folder on this machine, as an HTCondor starter would.

Owns the one way condorkit executes a chunk here (used by the local scheduler and by
``condorkit dry-run``): a fresh folder under ``JOB/.condorkit/scratch/`` that receives only the
transferred files (flat), the executable copied in and made executable, stdout and stderr in
``_condor_stdout``/``_condor_stderr``, and the environment a starter gives a job: ``TMPDIR``,
``TMP``, ``TEMP`` and ``_CONDOR_SCRATCH_DIR`` pointing at the scratch folder, and the thread
variables (``OMP_NUM_THREADS``, ...) set to the job's ``request_cpus`` unless the caller's
environment sets them already (:mod:`condorkit.model.starterenv`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from condorkit.errors import OutputError
from condorkit.model.starterenv import worker_env

STDOUT = "_condor_stdout"
STDERR = "_condor_stderr"


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


def place(src: Path, dest: Path) -> None:
    """Put an input file into a scratch folder (hard link, else copy)."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def make_scratch(root: Path, label: str, executable: Path, inputs: Iterable[Path],
                 fill: Callable[[Path], None] | None = None) -> Path:
    """A fresh scratch folder under ``root`` holding the inputs (flat) and the executable, then
    whatever ``fill(folder)`` adds. When any of it fails (a full disk, a read-only folder) the
    folder is removed; an ``OSError`` becomes an :class:`~condorkit.errors.OutputError`
    naming it, so a failed start never leaves a scratch folder behind."""
    try:
        scratch = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=root))
    except OSError as exc:
        raise OutputError(f"cannot create a scratch folder in {root}: {exc.strerror or exc}",
                          "free some space on that disk, or make the job folder writable"
                          ) from None
    try:
        for p in inputs:
            place(p, scratch / p.name)
        exe = scratch / executable.name
        shutil.copy2(executable, exe)
        os.chmod(exe, 0o755)
        if fill is not None:
            fill(scratch)
    except BaseException as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        raise OutputError(f"cannot prepare the scratch folder for {label}: "
                          f"{exc.strerror or exc}{where}", "free some space on that disk, "
                          "then run again; finished chunks are kept") from None
    return scratch


def start(scratch: Path, executable: str, arguments: Iterable[str], env: Mapping[str, str],
          new_session: bool = True) -> subprocess.Popen[bytes]:
    """Start ``./EXECUTABLE ARGUMENTS`` in ``scratch`` with a starter's scratch variables."""
    full = dict(env, _CONDOR_SCRATCH_DIR=str(scratch), TMPDIR=str(scratch),
                TMP=str(scratch), TEMP=str(scratch))
    with open(scratch / STDOUT, "wb") as out, open(scratch / STDERR, "wb") as err:
        return subprocess.Popen([str(scratch / executable), *arguments], cwd=scratch,
                                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=full,
                                start_new_session=new_session)


def stop_orphans(root: Path) -> tuple[int, ...]:
    """SIGKILL the process group of every process still working in a scratch folder under
    ``root`` and return their pids.

    Called by a run that holds the job lock before it clears old scratch folders: no live run
    of this job folder exists then, so such a process is an orphan of a coordinator that was
    killed without cleaning up (SIGKILL, OOM, a lost terminal). Found through ``/proc/PID/cwd``
    (Linux); elsewhere nothing is found.
    """
    prefix = str(root.resolve()) + os.sep
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone, or not ours to read
            continue
        if not (cwd + os.sep).startswith(prefix):
            continue
        pid = int(entry.name)
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        found.append(pid)
    return tuple(found)


def stderr_tail(scratch: Path, size: int = 2000) -> str:
    try:
        return (scratch / STDERR).read_bytes()[-size:].decode("utf-8", "replace")
    except OSError:
        return ""


def execute(spec: ScratchSpec, root: Path, env: Mapping[str, str], cpus: int = 1,
            timeout: float | None = None) -> Attempt:
    """Run ``spec`` in a fresh scratch folder under ``root`` (kept) and report what happened."""
    scratch = make_scratch(root, spec.label, spec.executable, spec.inputs)
    t_wall = time.time()
    t0 = time.perf_counter()
    proc = start(scratch, spec.executable.name, spec.arguments, worker_env(env, cpus))
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, 9)
        except OSError:
            pass
        proc.wait()
        code = 124
    duration = time.perf_counter() - t0
    missing = tuple(o for o in spec.outputs if not (scratch / o).is_file())
    return Attempt(spec.label, os.uname().nodename, t_wall, duration,
                   code, scratch, missing, stderr_tail(scratch))
