"""Running a task graph (or a plain task list) on the local cores, like ``paexec -g``.

Owns the scheduling: a ready heap of task numbers (or, with ``weighted``, of paexec ``-W``
weights, heavier first) and a count of unfinished dependencies per task, so a run costs
O((tasks + edges) log tasks) plus the processes themselves. Ready tasks start as soon as all
their dependencies succeeded, on ``workers`` slots of :mod:`condorkit.local.slots` (a process per
task, or with ``calculator`` one long-running paexec calculator per slot). A failed task's
transitive dependents never run; its result lists all of them (paexec's report line), and each
skipped task is reported once, with the first failure that took it down as its cause.
Ctrl-C kills every running task's process group. Prints nothing.
"""

from __future__ import annotations

import heapq
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from condorkit.errors import UsageError
from condorkit.local.slots import CalculatorSlot, Done, Poller, Protocol, RunnerSlot, Slot
from condorkit.model.graph import (
    FAILURE,
    SKIPPED,
    SUCCESS,
    GraphReport,
    TaskGraph,
    TaskResult,
    check_command,
)

__all__ = ["run_graph"]


def run_graph(graph: TaskGraph, command: Sequence[str], workers: int = 1, stdin: bool = False,
              cwd: Path | None = None, timeout: float | None = None,
              on_result: Callable[[TaskResult], None] | None = None,
              calculator: Protocol | None = None, retries: int = 3,
              weighted: bool = False) -> GraphReport:
    """Run every task on ``workers`` slots as soon as its dependencies succeeded.

    Each task runs ``COMMAND... TASK`` (``stdin``: ``COMMAND...`` with ``TASK`` on stdin) and
    its exit status decides; with ``calculator`` (a :class:`~condorkit.local.slots.Protocol`), one
    ``COMMAND...`` per slot answers every task (``retries``: restarts of a calculator that
    died during one task before the task fails). ``timeout`` seconds per task, then it fails.
    """
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}", "e.g. -j 2")
    if retries < 0:
        raise UsageError(f"retries must be at least 0, got {retries}", "e.g. --retries 3")
    cmd = check_command(command)
    host = socket.gethostname()
    t0 = time.perf_counter()
    n = len(graph.tasks)
    waiting = graph.indegrees()
    skipped = bytearray(n)
    prio = graph.sum_weights() if weighted else None
    heap: list[tuple[int, int]] = [(-prio[i] if prio else 0, i) for i in range(n)
                                   if waiting[i] == 0]
    heapq.heapify(heap)
    results: list[TaskResult] = []
    restarts = 0
    env = dict(os.environ)
    poller = Poller()
    slots: list[Slot] = []
    for k in range(min(workers, n)):
        if calculator is not None:
            proto = Protocol(calculator.eot, calculator.success, calculator.failure,
                             calculator.status and not graph.rows)
            slots.append(CalculatorSlot(k, cmd, poller, cwd, timeout, env, proto, retries))
        else:
            slots.append(RunnerSlot(k, cmd, poller, cwd, timeout, env, stdin))
    idle = list(range(len(slots)))
    running: dict[int, int] = {}  # slot -> task index

    def emit(r: TaskResult) -> None:
        results.append(r)
        if on_result:
            on_result(r)

    def finish(k: int, i: int, done: Done) -> None:
        nonlocal restarts
        del running[k]
        heapq.heappush(idle, k)
        restarts += done.restarts
        name = graph.tasks[i]
        if done.code == 0:
            emit(TaskResult(name, i + 1, SUCCESS, str(k), host, done.code, done.output,
                            done.stderr, done.started, done.duration))
            for c in graph.children_of(i):
                waiting[c] -= 1
                if waiting[c] == 0 and not skipped[c]:
                    heapq.heappush(heap, (-prio[c] if prio else 0, c))
            return
        down = graph.dependents_of(i)
        emit(TaskResult(name, i + 1, FAILURE, str(k), host, done.code, done.output, done.stderr,
                        done.started, done.duration, tuple(graph.tasks[d] for d in down)))
        for d in down:
            if not skipped[d]:
                skipped[d] = 1
                emit(TaskResult(graph.tasks[d], d + 1, SKIPPED, cause=name))

    try:
        while heap or running:
            while heap and idle:
                i = heapq.heappop(heap)[1]
                k = heapq.heappop(idle)
                running[k] = i
                done = slots[k].start(graph.tasks[i])
                if done is not None:
                    finish(k, i, done)
            if not running:
                continue
            deadlines = [s.deadline for s in slots if s.deadline is not None]
            now = time.perf_counter()
            for slot, fd in poller.wait(min(deadlines) - now if deadlines else None):
                if slot.node in running:
                    done = slot.ready(fd)
                    if done is not None:
                        finish(slot.node, running[slot.node], done)
                else:
                    slot.ready(fd)  # an idle calculator's EOF
            now = time.perf_counter()
            for slot in slots:
                if slot.deadline is not None and slot.deadline <= now and slot.node in running:
                    done = slot.expire()
                    if done is not None:
                        finish(slot.node, running[slot.node], done)
    finally:
        for slot in slots:
            slot.close()
    return GraphReport(graph.source, "local", tuple(results), (), time.perf_counter() - t0,
                       workers, graph.rows, restarts)
