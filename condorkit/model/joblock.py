"""The job lock: one command at a time writes a job folder's state.

Owns ``JOB/.condorkit/run.lock`` (``layout.run_lock``). Everything that writes the job folder's
state holds it while it writes: preparing the job (``chunks/rows-*.jsonl``, the wrapper,
ckjob.py: mksubmit, run, dry-run, submit, resubmit, dag), a local run (results, parts, joblog,
scratch folders) and the pool commands that write run records. The lock is an ``flock`` on the
file, so the kernel drops it when its process dies (no stale locks). It is re-entrant within a
process: the CLI takes it around a whole command, and the library functions inside
(``prepare``, ``run``) take it again without blocking themselves. A second holder is refused at
once (or after ``wait`` seconds) with a :class:`~condorkit.errors.UsageError` naming the
holder's process and command.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from condorkit.errors import OutputError, UsageError
from condorkit.model.layout import run_lock

_held: dict[str, list[int]] = {}  # lock path -> [fd, depth], for this process
_guard = threading.Lock()


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    pid, _, command = text.partition(" ")
    return f"`{command}` (process {pid})" if pid.isdigit() and command else ""


@contextlib.contextmanager
def job_lock(job_dir: Path, command: str = "condorkit", wait: float = 0.0) -> Iterator[None]:
    """Hold the job folder's lock for the ``with`` block (``command`` names the holder).

    ``wait``: seconds to wait for another holder to finish (polling; default: refuse at once).
    """
    path = run_lock(Path(job_dir).resolve())
    key = str(path)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot create the job lock {path}: {exc.strerror or exc}",
                              "make the job folder writable") from None
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                who = _holder(fd) or "`condorkit run` (or mksubmit, dry-run, submit, dag)"
                os.close(fd)
                raise UsageError(f"another {who} is running in {job_dir}: it holds the job "
                                 "lock", "wait for it to finish, or stop it (Ctrl-C); it keeps "
                                 "finished chunks") from None
        with contextlib.suppress(OSError):  # who holds it: information only (a full disk)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
        with _guard:
            _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _held[key]
        if last:
            os.close(entry[0])
