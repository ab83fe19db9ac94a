"""Worker slots for task lists and graphs: one process per task, or one paexec calculator.

Owns the processes that run the tasks of :mod:`condorkit.graphrun`, watched without threads
from one ``poll()``:

- :class:`ProcessSlot` (paexec ``-x``): ``COMMAND... TASK`` (or ``TASK`` on stdin) per task,
  started with ``posix_spawn`` in its own process group; stdout and stderr go to in-memory
  files (``memfd``), the exit is seen on a pidfd. Stray processes the task leaves behind are
  killed with its group.
- :class:`CalculatorSlot` (paexec ``-c`` without ``-x``): one long-running command per slot
  reads one task per line on stdin and answers with lines ending in an end-of-task marker
  (:class:`Protocol`: an empty line by default, paexec's magic line with ``-y``; the marker is
  also in ``PAEXEC_EOT``). For a graph the line before the marker is ``success`` or
  ``failure``. A calculator that dies during a task (EOF, broken pipe) is restarted and the
  task retried, up to ``retries`` times (paexec ``-Z``); then the task fails with the reason.

A per-task ``timeout`` kills the task's process group (the calculator, which is restarted for
the next task) and fails the task with exit code 124. Prints nothing.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MAGIC_EOT = "HG>&OSO@#;L8N;!&.U4ZC_9X:0AF,2Y>SRXAD_7U&QZ5S>N^?Y,I=W?@5"  # paexec -y
TIMEOUT_EXIT = 124
CANNOT_RUN_EXIT = 127


@dataclass(frozen=True)
class Protocol:
    """A calculator's answer format: ``eot`` ends an answer; with ``status`` (graphs) the line
    before it is ``success`` or ``failure`` (paexec ``-m s=... f=...`` renames them)."""

    eot: str = ""
    success: str = "success"
    failure: str = "failure"
    status: bool = True


@dataclass(frozen=True)
class Done:
    """How one task ended. ``code`` 0 is success (a calculator's ``failure`` answer is 1)."""

    code: int
    output: str
    stderr: str
    started: float
    duration: float
    restarts: int = 0


def killpg(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Poller:
    """One ``poll()`` over every slot's file descriptors."""

    def __init__(self) -> None:
        self.poll = select.poll()
        self.owner: dict[int, Slot] = {}

    def add(self, fd: int, slot: Slot) -> None:
        self.poll.register(fd, select.POLLIN)
        self.owner[fd] = slot

    def remove(self, fd: int) -> None:
        if self.owner.pop(fd, None) is not None:
            self.poll.unregister(fd)

    def wait(self, timeout_s: float | None) -> list[tuple[Slot, int]]:
        ms = None if timeout_s is None else max(0, int(timeout_s * 1000) + 1)
        return [(self.owner[fd], fd) for fd, _ in self.poll.poll(ms) if fd in self.owner]


class Slot:
    """One worker. :meth:`start` returns a :class:`Done` at once if the task could not start."""

    def __init__(self, node: int, command: Sequence[str], poller: Poller, cwd: Path | None,
                 timeout: float | None, env: dict[str, str]) -> None:
        self.node, self.command, self.poller = node, tuple(command), poller
        self.cwd, self.timeout, self.env = cwd, timeout, env
        self.deadline: float | None = None
        self.started = self.t0 = 0.0

    def _clock(self) -> None:
        self.started, self.t0 = time.time(), time.perf_counter()
        self.deadline = self.t0 + self.timeout if self.timeout else None

    def start(self, task: str) -> Done | None:
        raise NotImplementedError

    def ready(self, fd: int) -> Done | None:
        raise NotImplementedError

    def expire(self) -> Done | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _drain(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0) if size else b""
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    return data


class ProcessSlot(Slot):
    """One process per task (paexec ``-x``)."""

    def __init__(self, node: int, command: Sequence[str], poller: Poller, cwd: Path | None,
                 timeout: float | None, env: dict[str, str], stdin: bool = False) -> None:
        super().__init__(node, command, poller, cwd, timeout, env)
        self.stdin = stdin
        self.out = os.memfd_create(f"condorkit-out-{node}")
        self.err = os.memfd_create(f"condorkit-err-{node}")
        self.inp = os.memfd_create(f"condorkit-in-{node}") if stdin else os.open(os.devnull,
                                                                               os.O_RDONLY)
        self.pid = 0
        self.pidfd = -1
        self.proc: subprocess.Popen[bytes] | None = None
        self.timed_out = False

    def start(self, task: str) -> Done | None:
        argv = list(self.command) if self.stdin else [*self.command, task]
        if self.stdin:
            _drain(self.inp)
            os.pwrite(self.inp, (task + "\n").encode(), 0)
        self.timed_out = False
        self._clock()
        try:
            if self.cwd is None:  # posix_spawn (vfork): ~3x cheaper than Popen; it has no cwd
                spawn = os.posix_spawnp if "/" not in argv[0] else os.posix_spawn
                acts = [(os.POSIX_SPAWN_DUP2, self.inp, 0), (os.POSIX_SPAWN_DUP2, self.out, 1),
                        (os.POSIX_SPAWN_DUP2, self.err, 2)]
                self.pid, self.proc = spawn(argv[0], argv, self.env, file_actions=acts,
                                            setpgroup=0), None
            else:
                self.proc = subprocess.Popen(argv, cwd=self.cwd, stdin=self.inp, stdout=self.out,
                                             stderr=self.err, env=self.env,
                                             start_new_session=True)
                self.pid = self.proc.pid
        except OSError as exc:
            return Done(CANNOT_RUN_EXIT, "", f"condorkit: cannot run {argv[0]}: {exc}\n",
                        self.started, time.perf_counter() - self.t0)
        self.pidfd = os.pidfd_open(self.pid)
        self.poller.add(self.pidfd, self)
        return None

    def _reap(self) -> int:
        self.poller.remove(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = -1
        if self.proc is not None:
            code = self.proc.wait()
        else:
            code = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        killpg(self.pid)  # strays the task left behind
        return code

    def ready(self, fd: int) -> Done | None:
        code = self._reap()
        out = _drain(self.out).decode("utf-8", "replace")
        err = _drain(self.err).decode("utf-8", "replace")
        if self.timed_out:
            code = TIMEOUT_EXIT
            err += f"condorkit: task timed out after {self.timeout}s\n"
        self.deadline = None
        return Done(code, out, err, self.started, time.perf_counter() - self.t0)

    def expire(self) -> Done | None:
        self.timed_out = True
        self.deadline = None
        killpg(self.pid)
        return None  # the pidfd reports the end

    def close(self) -> None:
        if self.pidfd >= 0:
            killpg(self.pid)
            self._reap()
        for fd in (self.out, self.err, self.inp):
            os.close(fd)


class CalculatorSlot(Slot):
    """One long-running calculator (paexec ``-c``), restarted when it dies."""

    def __init__(self, node: int, command: Sequence[str], poller: Poller, cwd: Path | None,
                 timeout: float | None, env: dict[str, str], protocol: Protocol,
                 retries: int = 3, grace: float = 5.0) -> None:
        super().__init__(node, command, poller, cwd, timeout, dict(env, PAEXEC_EOT=protocol.eot))
        self.protocol, self.retries, self.grace = protocol, retries, grace
        self.eot = protocol.eot.encode()
        self.proc: subprocess.Popen[bytes] | None = None
        self.fd = -1
        self.buf = bytearray()
        self.lines: list[bytes] = []
        self.task: str | None = None
        self.tries = 0
        self.restarts = 0  # over the slot's life
        self.notes: list[str] = []

    # -- the process
    def _spawn(self) -> None:
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=self.env, bufsize=0,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf.clear()
        self.poller.add(self.fd, self)

    def _stop(self, kill: bool) -> int:
        """End the calculator (closing its stdin, then killing its group); its exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        self.poller.remove(self.fd)
        self.fd = -1
        if kill:
            killpg(proc.pid)
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            code = proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            killpg(proc.pid)
            code = proc.wait()
        killpg(proc.pid)
        return code

    def _send(self) -> Done | None:
        if self.proc is None:
            try:
                self._spawn()
            except OSError as exc:
                self.task = None
                return Done(CANNOT_RUN_EXIT, "", f"condorkit: cannot run {self.command[0]}: "
                            f"{exc}\n", self.started, time.perf_counter() - self.t0)
        assert self.proc is not None and self.proc.stdin is not None and self.task is not None
        data = (self.task + "\n").encode()
        try:
            while data:
                data = data[os.write(self.proc.stdin.fileno(), data):]
        except (BrokenPipeError, ConnectionResetError):
            return self._died()
        return None

    # -- a task
    def start(self, task: str) -> Done | None:
        self.task, self.tries, self.lines, self.notes = task, 0, [], []
        self._clock()
        return self._send()

    def ready(self, fd: int) -> Done | None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            return self._died()
        if self.task is None:  # output between tasks belongs to no task: dropped
            return None
        self.buf += data
        while True:
            cut = self.buf.find(b"\n")
            if cut < 0:
                return None
            line = bytes(self.buf[:cut])
            del self.buf[:cut + 1]
            if line == self.eot:
                return self._answer()
            self.lines.append(line)

    def _answer(self) -> Done:
        lines = [x.decode("utf-8", "replace") for x in self.lines]
        code, err = 0, ""
        if self.protocol.status:
            last = lines.pop() if lines else None
            if last == self.protocol.failure:
                code = 1
            elif last != self.protocol.success:
                code = 1
                err = (f"condorkit: the calculator's answer did not end with "
                       f"{self.protocol.success!r} or {self.protocol.failure!r} before the "
                       "end-of-task marker\n")
                lines += [last] if last is not None else []
        return self._done(code, lines, err)

    def _done(self, code: int, lines: list[str], err: str) -> Done:
        self.task, self.deadline = None, None
        out = "".join(x + "\n" for x in lines)
        return Done(code, out, "".join(self.notes) + err, self.started,
                    time.perf_counter() - self.t0, self.tries)

    def _died(self) -> Done | None:
        code = self._stop(kill=True)
        self.restarts += 1
        if self.task is None:
            return None  # died between tasks: started again for the next one
        self.tries += 1
        why = (f"condorkit: calculator {self.node} exited (status {code}) during task "
               f"{self.task!r}")
        if self.tries > self.retries:
            lines = [x.decode("utf-8", "replace") for x in self.lines]
            return self._done(code or 1, lines, f"{why}; gave up after {self.tries} "
                              "attempt(s)\n")
        self.notes.append(f"{why}; restarted, task retried\n")
        self.lines = []
        return self._send()

    def expire(self) -> Done | None:
        self._stop(kill=True)
        lines = [x.decode("utf-8", "replace") for x in self.lines]
        return self._done(TIMEOUT_EXIT, lines, f"condorkit: task timed out after {self.timeout}s"
                          "; its calculator was killed (restarted for the next task)\n")

    def close(self) -> None:
        self._stop(kill=self.task is not None)
