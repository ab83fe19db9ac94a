"""The early worker of ``condorkit run``: one worker interpreter started before the command has
parsed its arguments or read its job.

Owns starting that interpreter and handing it over. Python's start and the worker's own imports
(~35 ms) then overlap the coordinator's, and the program's imports (numpy & co.) begin as soon
as the run knows its program, not after yet another interpreter start. The standby is started
with exactly the interpreter and environment a run with default settings gives its workers
(``job_env`` and ``worker_env`` with one cpu); :func:`condorkit.local.workers.start_pool`
adopts it only when those are exactly what it would start, else it is closed (it ends at the
end of its input, and with this process: ``PR_SET_PDEATHSIG``). It also carries one pair of
pipes per other core, so that it can fork the other workers once it has preloaded (clones,
:class:`condorkit.local.workers.Clone`). Prints nothing; light imports only (it runs first).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from typing import IO

from condorkit.model.host import cores
from condorkit.model.interpreter import ENV_VAR, job_env
from condorkit.model.packaged import packaged
from condorkit.model.starterenv import worker_env

#: options after which a run starts no persistent workers (or no run at all)
NO_STANDBY = ("--no-persistent", "-h", "--help")


def can_clone() -> bool:
    """Whether a worker's clones can be watched here (pidfds: Linux 5.3+, Python 3.9+)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
        return True
    except (AttributeError, OSError):
        return False


def clone_channel() -> tuple[int, int, IO[str], IO[str]]:
    """One clone's pipes: the descriptors the clone reads its requests from and writes its
    answers to (to pass to the worker that forks it; close them here once it is started), and
    this process's ends of the same pipes (requests, answers)."""
    c_in, to_c = os.pipe()
    from_c, c_out = os.pipe()
    return (c_in, c_out, open(to_c, "w", buffering=1, encoding="utf-8"),
            open(from_c, buffering=1, encoding="utf-8"))


class Standby:
    """A started, not yet adopted worker: its process, the interpreter and environment it was
    started with, and the coordinator's ends (requests, answers) of each spare clone channel.
    (A plain class: ``dataclasses`` costs milliseconds to import, before the worker starts.)"""

    def __init__(self, proc: subprocess.Popen[str], python: str, env: dict[str, str],
                 channels: list[tuple[IO[str], IO[str]]]) -> None:
        self.proc, self.python, self.env, self.channels = proc, python, env, channels
        self.adopted = self.closed = False

    def fits(self, python: str, env: dict[str, str]) -> bool:
        return not (self.adopted or self.closed) and self.proc.poll() is None and (
            self.python == python and self.env == env)

    def close(self) -> None:
        """Let it end (end of its input) unless a pool adopted it; does not wait."""
        if self.adopted or self.closed:
            return
        self.closed = True
        for ends in self.channels:
            for f in ends:
                f.close()
        self.channels = []
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start(argv: Sequence[str]) -> Standby | None:
    """A standby worker when ``argv`` (the command's arguments) is a ``run`` that may use
    persistent workers, the interpreter is the default one (``CONDORKIT_PYTHON`` unset) and it
    can be started; else None (the run starts its workers itself)."""
    if argv[:1] != ["run"] or any(a in NO_STANDBY for a in argv) or ENV_VAR in os.environ:
        return None
    env = worker_env(job_env(dict(os.environ)), 1)
    python = env[ENV_VAR]
    spare = cores() - 1 if can_clone() else 0
    fds: list[int] = []
    specs: list[str] = []
    channels: list[tuple[IO[str], IO[str]]] = []
    try:
        for _ in range(spare):
            c_in, c_out, to_clone, from_clone = clone_channel()
            fds += (c_in, c_out)
            channels.append((to_clone, from_clone))
            specs.append(f"{c_in},{c_out}")
        proc = subprocess.Popen([python, str(packaged("condorkit.wrappers", "ckworker.py")),
                                 "--standby", *specs],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env, text=True, bufsize=1,
                                start_new_session=True, pass_fds=fds)
    except OSError:
        for ends in channels:
            for f in ends:
                f.close()
        return None
    finally:
        for fd in fds:
            os.close(fd)
    return Standby(proc, python, env, channels)

