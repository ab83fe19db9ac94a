"""Persistent local workers: one long-lived Python per core that runs pieces in a forked runner.

Owns starting, feeding and stopping the workers of ``wrappers/ckworker.py``. A worker pays the
interpreter start and the program's top-level imports once; each piece still gets its own
scratch folder (prepared by the scheduler exactly as for the wrapper), its own environment and
process group, ``_condor_stdout``/``_condor_stderr``, and the wrapper's exit codes. Only a
``.py`` program without a bundle runs this way; anything else goes through the wrapper. A runner
takes the next piece too when the last succeeded and left nothing behind
(``wrappers/ckstate.py`` says exactly what is checked and restored); then the piece reports
``kept`` and its process group is not killed. A *batch* runs several small whole chunks one
after the other in the same runner (each run the wrapper's contract with the chunk's own rows
and results files), recording each run's exit code in the scratch folder's
:data:`BATCH_STATUS` file.

:meth:`Worker.run` returns a :class:`PieceProcess`, which looks like the ``Popen`` the scheduler
otherwise keeps (``pid`` = the piece's process group, ``wait()`` = its exit status, negative for a
signal). If the worker itself dies, the piece ends with the worker's status and the next piece
starts a new worker. Workers die with the coordinator (``PR_SET_PDEATHSIG``, and their input
closing); :meth:`Worker.close` ends them. Prints nothing.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from condorkit.errors import CondorkitError
from condorkit.local.standby import Standby, can_clone, clone_channel
from condorkit.model.config import JobConfig
from condorkit.model.host import cores
from condorkit.model.interpreter import ENV_VAR, job_env
from condorkit.model.layout import worker_log
from condorkit.model.packaged import packaged
from condorkit.model.starterenv import worker_env

WORKER = packaged("condorkit.wrappers", "ckworker.py")
START_TIMEOUT_S = 120.0  # preloading heavy imports on a busy machine


BATCH_STATUS = "_condorkit_runs"  # in a batch's scratch folder: "OUT CODE" per finished run


def batch_codes(scratch: Path) -> dict[str, int]:
    """The exit code of each finished run of a batch, by output name (a run that never ended,
    because an earlier one took the process down, is absent)."""
    codes: dict[str, int] = {}
    try:
        text = (scratch / BATCH_STATUS).read_text("utf-8", "replace")
    except OSError:
        return codes
    for line in text.splitlines():
        name, _, code = line.rpartition(" ")
        if name and code.lstrip("-").isdigit():
            codes.setdefault(name, int(code))
    return codes


class WorkerError(CondorkitError):
    """A persistent worker could not start or answer."""


@dataclass
class PieceProcess:
    """A piece running in a worker's runner, as the scheduler sees it."""

    pid: int
    worker: Worker
    returncode: int | None = None
    kept: bool = False  # ended cleanly and its process lives on for the next piece: no kill
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self) -> int:
        with self._lock:
            if self.returncode is None:
                self.returncode, self.kept = self.worker.result()
            return self.returncode

    def poll(self) -> int | None:
        return self.returncode


class Clone:
    """A worker forked by another one (:meth:`Worker.spawn` with ``clones``), as its
    :class:`Worker` sees it: the parts of a ``Popen`` it uses. Not this process's child, so it
    is watched through a pidfd once its hello gave its pid; its exit status is unknown (-9)."""

    def __init__(self, stdin: IO[str], stdout: IO[str]) -> None:
        self.stdin, self.stdout = stdin, stdout
        self.origin: subprocess.Popen[str] | None = None  # the worker it is forked from
        self.pid = 0
        self.returncode: int | None = None
        self._fd = -1

    def attach(self, pid: int) -> None:
        try:
            self._fd, self.pid = os.pidfd_open(pid), pid
        except OSError:  # already gone
            self.returncode = -9

    def poll(self) -> int | None:
        if self.returncode is None and self._fd >= 0:
            try:
                self.wait(0)
            except subprocess.TimeoutExpired:
                pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if self._fd >= 0:  # readable once the process has ended
                if not select.select([self._fd], [], [], timeout)[0]:
                    raise subprocess.TimeoutExpired("ckworker clone", timeout or 0)
                os.close(self._fd)
                self._fd = -1
            self.returncode = -9  # never attached: it ends at the end of its input
        return self.returncode

    def kill(self) -> None:
        if self._fd >= 0:
            signal.pidfd_send_signal(self._fd, signal.SIGKILL)
        elif self.pid == 0 and self.origin is not None and self.origin.poll() is None:
            self.origin.kill()  # not forked yet: its origin is stuck; it takes the clone along


class Worker:
    """One persistent worker process; not thread-safe beyond one ``run`` + one ``wait``."""

    def __init__(self, python: str, program: Path, env: dict[str, str], log: Path) -> None:
        self.python, self.program, self.env, self.log = python, program, env, log
        self.proc: subprocess.Popen[str] | Clone | None = None
        self.preloaded: tuple[str, ...] = ()
        self.started = 0
        self.ready = False

    def spawn(self, clones: Sequence[Worker] = ()) -> None:
        """Start the worker process without waiting for it (it preloads while others start);
        with ``clones``, it forks those workers once it has preloaded (they import nothing)."""
        if self.alive:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fds: list[int] = []
        specs: list[str] = []
        try:
            for c in clones:
                c_in, c_out, to_clone, from_clone = clone_channel()
                err = os.open(c.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                              0o644)
                fds += (c_in, c_out, err)
                specs.append(f"{c_in},{c_out},{err}")
                c.proc = Clone(to_clone, from_clone)
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen([self.python, str(WORKER), str(self.program),
                                              *specs],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=log, env=self.env, text=True, bufsize=1,
                                             start_new_session=True, pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        for c in clones:
            assert isinstance(c.proc, Clone)
            c.proc.origin = self.proc
            c.started += 1
            c.ready = False
        self.started += 1
        self.ready = False

    def adopt(self, standby: Standby, others: Sequence[Worker]) -> None:
        """Take ``standby`` as this worker, tell it the program, and make the first of
        ``others`` its clones (one per spare channel it carries); the rest are spawned."""
        clones = list(others[:len(standby.channels)])
        line = json.dumps({"program": str(self.program), "log": str(self.log),
                           "clones": [str(w.log) for w in clones]})
        for w in (self, *clones):
            w.log.parent.mkdir(parents=True, exist_ok=True)
        assert standby.proc.stdin is not None
        try:
            standby.proc.stdin.write(line + "\n")
            standby.proc.stdin.flush()
        except OSError:  # it died: start the pool the usual way
            standby.close()
            spawn_pool([self, *others])
            return
        standby.adopted = True
        self.proc, self.ready = standby.proc, False
        self.started += 1
        for w, (to_c, from_c) in zip(clones, standby.channels[:len(clones)], strict=True):
            w.proc = Clone(to_c, from_c)
            w.proc.origin = standby.proc
            w.started += 1
            w.ready = False
        for to_c, from_c in standby.channels[len(clones):]:
            to_c.close()
            from_c.close()
        for w in others[len(clones):]:
            w.spawn()

    def _start(self) -> None:
        if not self.alive:
            self.spawn()
        if self.ready:
            return
        hello = self._read(START_TIMEOUT_S)
        if not hello.get("ready"):
            self.close()
            raise WorkerError(f"the persistent worker ({self.python} {WORKER.name}) did not "
                              f"start: {hello}", f"see {self.log}")
        if isinstance(self.proc, Clone):
            self.proc.attach(int(hello.get("pid", 0)))
        self.preloaded = tuple(hello.get("preloaded", ()))
        self.ready = True

    def _read(self, timeout: float | None = None) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        out: IO[str] = self.proc.stdout
        if timeout is not None:
            timer = threading.Timer(timeout, self.kill)
            timer.start()
        try:
            line = out.readline()
        finally:
            if timeout is not None:
                timer.cancel()
        if not line:
            code = self.proc.wait()
            return {"dead": code}
        try:
            doc = json.loads(line)
        except ValueError:
            return {"dead": f"unreadable answer {line[:200]!r}"}
        return doc if isinstance(doc, dict) else {"dead": "unreadable answer"}

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, scratch: Path, runs: list[list[str]], env: dict[str, str]) -> PieceProcess:
        """Start one piece: each of ``runs`` (the wrapper's ``PROGRAM ROWS OUT``) in turn, in
        the worker's runner; with several (a batch) each run's exit code goes to
        :data:`BATCH_STATUS` in the scratch folder (:func:`batch_codes`)."""
        if not (self.alive and self.ready):
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        req = {"scratch": str(scratch), "runs": runs, "env": env,
               "status": BATCH_STATUS if len(runs) > 1 else ""}
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise WorkerError(f"the persistent worker died before taking a piece: {exc}",
                              f"see {self.log}") from exc
        got = self._read(START_TIMEOUT_S)
        if "pid" not in got:
            self.kill()
            raise WorkerError(f"the persistent worker did not start the piece: {got}",
                              f"see {self.log}")
        return PieceProcess(int(got["pid"]), self)

    def result(self) -> tuple[int, bool]:
        """Block until the running piece ends: its exit status, and whether its process (the
        worker's runner) lives on, clean, for the next piece."""
        got = self._read()
        if "exit" in got:
            return int(got["exit"]), got.get("kept") is True
        dead = got.get("dead")
        self.kill()
        return (dead if isinstance(dead, int) and dead != 0 else -9), False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass

    def shutdown(self) -> None:
        """Ask the worker to end (end of its input) without waiting for it."""
        try:
            if self.proc is not None and self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass

    def close(self, timeout: float = 5.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


#: the default number of workers: every core this process may run on (its CPU affinity)
default_workers = cores


def _interpreter(env: Mapping[str, str], cpus: int) -> tuple[str | None, dict[str, str]]:
    """The workers' interpreter (``CONDORKIT_PYTHON``, else ``python3`` on the PATH) and their
    environment (the thread variables set before any import)."""
    python = env.get(ENV_VAR) or shutil.which("python3", path=env.get("PATH"))
    return python, worker_env(env, cpus)


def start_pool(program: Path, env: Mapping[str, str], cpus: int, count: int, job_dir: Path,
               standby: Standby | None = None) -> list[Worker]:
    """``count`` persistent workers for the ``.py`` program ``program`` under the interpreter
    the environment names (``job_env``: ``CONDORKIT_PYTHON``, else ``python3`` on its PATH),
    spawned at once so they preload while the caller goes on (the first one only, where
    workers can be cloned: it forks the others once it has preloaded, see :class:`Clone`);
    [] without an interpreter. ``standby`` (:mod:`condorkit.local.standby`) becomes the first
    worker when its interpreter and environment are exactly these; else it is closed."""
    python, wenv = _interpreter(env, cpus)
    if not python:
        if standby is not None:
            standby.close()
        return []
    pool = [Worker(python, program, wenv, worker_log(job_dir, k)) for k in range(count)]
    if standby is not None and standby.fits(python, wenv):
        pool[0].adopt(standby, pool[1:])
        return pool
    if standby is not None:
        standby.close()
    spawn_pool(pool)
    return pool


def spawn_pool(pool: Sequence[Worker]) -> None:
    """Spawn ``pool``: the first worker, which preloads and forks the others where workers can
    be cloned (:func:`can_clone`), else each worker on its own."""
    if len(pool) > 1 and can_clone():
        pool[0].spawn(clones=pool[1:])
    else:
        for w in pool:
            w.spawn()


def prestart(job_dir: Path, config: JobConfig, count: int,
             env: Mapping[str, str] | None = None, standby: Standby | None = None
             ) -> list[Worker]:
    """Start a run's persistent workers before its job is prepared (the CLI does, so that the
    workers' imports overlap reading the manifest); :func:`condorkit.local.run.run` takes them
    when they match the prepared job, else closes them. [] when the job will not use them (a
    bundle, a program that is not ``.py``) or anything about it is not valid yet: preparing
    the job reports that properly. ``standby``: adopted when it fits (:func:`start_pool`),
    else closed."""
    try:
        if config.bundle or not config.program.endswith(".py"):
            return []
        program = Path(config.program)
        program = (program if program.is_absolute() else job_dir / program)
        if not program.is_file():
            return []
        base = job_env(dict(os.environ if env is None else env), config.python,
                       config.sources.get("python", "default"), False)
        return start_pool(program.resolve(), base, config.request_cpus, count, job_dir,
                          standby)
    except (CondorkitError, OSError):
        return []
    finally:
        if standby is not None:
            standby.close()  # a no-op once adopted


def matching(pool: Sequence[Worker], program: Path, env: Mapping[str, str], cpus: int,
             count: int) -> bool:
    """True when ``pool`` (from :func:`prestart`) is what :func:`start_pool` would start."""
    python, wenv = _interpreter(env, cpus)
    return len(pool) == count and all(
        w.python == python and w.program == program and w.env == wenv and w.proc is not None
        for w in pool)
