"""Running a task graph on the local cores (like ``paexec -x -g``).

Owns the local graph runner; the graph format, its results and output live in
:mod:`condorkit.model.graph`. Each task runs ``COMMAND... TASK`` (or, with ``stdin=True``,
``COMMAND...`` with ``TASK\\n`` on its standard input); ready tasks start in task-number order on N
workers as soon as all their dependencies succeeded; a failed task's dependents are skipped.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from condorkit.errors import UsageError
from condorkit.model.graph import (
    FAILURE,
    SKIPPED,
    SUCCESS,
    GraphReport,
    TaskGraph,
    TaskResult,
    check_command,
)


def _run_task(command: tuple[str, ...], task: str, stdin: bool, cwd: Path | None,
              timeout: float | None) -> tuple[int, str, str, float, float]:
    argv = list(command) if stdin else [*command, task]
    started = time.time()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, input=(task + "\n").encode() if stdin else None,
                              stdin=None if stdin else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, check=False)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, out = 124, exc.stdout or b""
        err = (exc.stderr or b"") + f"condorkit: task timed out after {timeout}s\n".encode()
    except OSError as exc:
        code, out, err = 127, b"", f"condorkit: cannot run {argv[0]}: {exc}\n".encode()
    return (code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), started,
            time.perf_counter() - t0)


def run_graph(graph: TaskGraph, command: Sequence[str], workers: int = 1, stdin: bool = False,
              cwd: Path | None = None, timeout: float | None = None,
              on_result: Callable[[TaskResult], None] | None = None) -> GraphReport:
    """Run every task on ``workers`` local processes as soon as its dependencies succeeded."""
    if workers < 1:
        raise UsageError(f"workers must be at least 1, got {workers}", "e.g. -j 2")
    cmd = check_command(command)
    host = socket.gethostname()
    t0 = time.perf_counter()
    waiting = {t: len(graph.parents(t)) for t in graph.tasks}
    ready = [t for t in graph.tasks if waiting[t] == 0]
    done: set[str] = set()
    results: list[TaskResult] = []
    free = list(range(workers))
    running: dict[Future[tuple[int, str, str, float, float]], tuple[str, int]] = {}

    def emit(r: TaskResult) -> None:
        results.append(r)
        if on_result:
            on_result(r)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        while ready or running:
            ready.sort(key=graph.number, reverse=True)
            while ready and free:
                task, slot = ready.pop(), free.pop(0)
                running[pool.submit(_run_task, cmd, task, stdin, cwd, timeout)] = (task, slot)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: graph.number(running[f][0])):
                task, slot = running.pop(fut)
                free.append(slot)
                free.sort()
                code, out, err, started, dur = fut.result()
                done.add(task)
                if code == 0:
                    emit(TaskResult(task, graph.number(task), SUCCESS, str(slot), host, code,
                                    out, err, started, dur))
                    for c in graph.children(task):
                        waiting[c] -= 1
                        if waiting[c] == 0:
                            ready.append(c)
                    continue
                down = graph.dependents(task, exclude=done)
                done.update(down)
                emit(TaskResult(task, graph.number(task), FAILURE, str(slot), host, code, out,
                                err, started, dur, down))
                for d in down:
                    emit(TaskResult(d, graph.number(d), SKIPPED, cause=task))
    return GraphReport(graph.source, "local", tuple(results), (), time.perf_counter() - t0,
                       workers)
