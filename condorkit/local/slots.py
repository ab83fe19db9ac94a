"""Worker slots for task lists and graphs: one process per task, or one paexec calculator.

Owns the processes that run the tasks of :mod:`condorkit.local.graph`, watched without threads
from one ``poll()``:

- :class:`RunnerSlot` (paexec ``-x``): ``COMMAND... TASK`` (or ``TASK`` on stdin) per task.
  As paexec does, one small shell per slot reads the task lines and forks the command, so the
  coordinator only moves lines; the task's stdout and stderr go to in-memory files (``memfd``).
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
        self.pass_fds: tuple[int, ...] = ()

    # -- the process
    def _spawn(self) -> None:
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=self.env, bufsize=0,
                                     start_new_session=True, pass_fds=self.pass_fds)
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
            self.lines.append(line)
            if self._complete(line):
                return self._answer()

    def _complete(self, line: bytes) -> bool:
        if line != self.eot:
            return False
        self.lines.pop()
        return True

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


# a per-task runner (what paexec -x does too): one small shell per slot reads task lines, runs
# the command once per task with its output in the slot's in-memory files, and answers the
# exit status; the shell forks, so the coordinator only moves lines
# (dash takes only one-digit descriptors in `>&N`: the memfds are reopened as /dev/fd/N)
_RUNNER = ('o=/dev/fd/$1; e=/dev/fd/$2; i=$3; shift 3\n'
           'while IFS= read -r t; do\n'
           '  if [ "$i" = 1 ]; then "$@" >"$o" 2>"$e" <<CONDORKIT_EOF\n$t\nCONDORKIT_EOF\n'
           '  else "$@" "$t" >"$o" 2>"$e" </dev/null; fi\n'
           '  echo "$?"\n'
           'done\n')


class RunnerSlot(CalculatorSlot):
    """A process per task (paexec ``-x``): ``COMMAND... TASK``, or ``TASK`` on stdin.

    The task's stdout and stderr go to in-memory files (``memfd``) and its exit status decides
    (a task killed by signal N exits 128+N, as in a shell). A task that times out is killed with
    its runner, which is started again for the next task; processes a task leaves behind are
    killed when the run ends.
    """

    def __init__(self, node: int, command: Sequence[str], poller: Poller, cwd: Path | None,
                 timeout: float | None, env: dict[str, str], stdin: bool = False) -> None:
        self.out = os.memfd_create(f"condorkit-out-{node}")
        self.err = os.memfd_create(f"condorkit-err-{node}")
        runner = ("/bin/sh", "-c", _RUNNER, "condorkit-runner", str(self.out), str(self.err),
                  "1" if stdin else "0", *command)
        super().__init__(node, runner, poller, cwd, timeout, env, Protocol(status=False),
                         retries=0)
        self.pass_fds = (self.out, self.err)
        self.what = command[0]

    def start(self, task: str) -> Done | None:
        _drain(self.out)
        _drain(self.err)
        return super().start(task)

    def _complete(self, line: bytes) -> bool:
        return True  # the runner answers one status line per task

    def _answer(self) -> Done:
        status = self.lines[-1].decode() if self.lines else ""
        code = int(status) if status.isdigit() else 1
        return self._result(code, "")

    def _result(self, code: int, note: str) -> Done:
        self.task, self.deadline = None, None
        out = _drain(self.out).decode("utf-8", "replace")
        err = _drain(self.err).decode("utf-8", "replace")
        return Done(code, out, err + note, self.started, time.perf_counter() - self.t0)

    def _died(self) -> Done | None:
        code = self._stop(kill=True)
        if self.task is None:
            return None
        return self._result(code or 1, f"condorkit: the runner of {self.what} exited (status "
                            f"{code}) during this task\n")

    def expire(self) -> Done | None:
        self._stop(kill=True)
        return self._result(TIMEOUT_EXIT, f"condorkit: task timed out after {self.timeout}s\n")

    def close(self) -> None:
        super().close()
        for fd in (self.out, self.err):
            os.close(fd)
