"""Task graphs in paexec's ``-g`` format, and running them on the local cores.

Owns the graph format, its checks, task results and the paexec-style output; the local runner
is :mod:`condorkit.local.graph`, the pool side :mod:`condorkit.condor.dag`.

Format (paexec ``-g``): one line per task or dependency; ``A B`` means B depends on A (A must
succeed before B starts), a lone ``A`` is a task with no dependencies. Fields are separated by
white space; blank lines and lines starting with ``#`` are ignored (a condorkit extension). A task
number is its 1-based rank of first appearance in the file (as ``paexec -l`` numbers them).
A cycle, a duplicate edge and a line with more than two fields are :class:`GraphError` s naming
the file line.

Running (like ``paexec -x -g``): each task runs ``COMMAND... TASK`` (the task name as the last
argument) or, with ``stdin=True``, ``COMMAND...`` with ``TASK\\n`` on its standard input; the exit
status decides success. Ready tasks start in task-number order on N workers as soon as all their
dependencies succeeded. A failed task's transitive dependents never run: they are "skipped", and
the failed task's result lists them (depth-first, children in file order, as paexec's slides show).

Output (:func:`format_result`), per finished task, exactly paexec's ``-g`` lines: the command's
stdout, then ``success`` or ``failure``; after ``failure`` one line with the failed task followed by
the dependents it took down. ``-l`` prefixes the task number, ``-r`` the node (a local worker
number 0..N-1, or a pool slot) before it; :func:`reorder` is paexec_reorder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from condorkit.errors import GraphError, UsageError
from condorkit.model.fileio import read_regular
from condorkit.model.states import TaskStatus

MAX_GRAPH_BYTES = 256 << 20  # a graph file is read whole; larger ones are refused
SUCCESS = TaskStatus.SUCCESS
FAILURE = TaskStatus.FAILURE
SKIPPED = TaskStatus.SKIPPED


@dataclass(frozen=True)
class TaskGraph:
    """A parsed, acyclic task graph. ``tasks`` are in task-number order (number = index + 1)."""

    source: str
    tasks: tuple[str, ...]
    edges: tuple[tuple[str, str, int], ...]  # (before, after, line)
    _children: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)
    _parents: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        kids: dict[str, list[str]] = {t: [] for t in self.tasks}
        pars: dict[str, list[str]] = {t: [] for t in self.tasks}
        for a, b, _ in self.edges:
            kids[a].append(b)
            pars[b].append(a)
        self._children.update({k: tuple(v) for k, v in kids.items()})
        self._parents.update({k: tuple(v) for k, v in pars.items()})

    def number(self, task: str) -> int:
        return self.tasks.index(task) + 1

    def children(self, task: str) -> tuple[str, ...]:
        return self._children[task]

    def parents(self, task: str) -> tuple[str, ...]:
        return self._parents[task]

    def dependents(self, task: str, exclude: Iterable[str] = ()) -> tuple[str, ...]:
        """Transitive dependents, depth-first preorder, children in file order."""
        seen = set(exclude) | {task}
        out: list[str] = []
        stack = list(reversed(self._children[task]))
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            out.append(t)
            stack.extend(reversed(self._children[t]))
        return tuple(out)


def parse_graph(text: str, source: str = "<graph>") -> TaskGraph:
    """Parse paexec ``-g`` text. Raises :class:`GraphError` naming ``source:LINE``."""
    order: dict[str, None] = {}
    edges: list[tuple[str, str, int]] = []
    first: dict[tuple[str, str], int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        bad = next((c for c in line if ord(c) < 32 and c != "\t"), None)
        if bad is not None:
            raise GraphError(f"{source}:{lineno}: control character {bad!r} in {raw!r}",
                             "task names are printable words")
        fields = line.split()
        if len(fields) > 2:
            hint = ("paexec's `weight:` lines are not supported; remove them"
                    if fields[0] == "weight:" else
                    "write one task (`A`) or one dependency (`A B`: B depends on A) per line")
            raise GraphError(f"{source}:{lineno}: unknown line {line!r}: expected `TASK` or "
                             f"`TASK DEPENDENT`, got {len(fields)} fields", hint)
        for f in fields:
            order.setdefault(f, None)
        if len(fields) == 2:
            a, b = fields
            if a == b:
                raise GraphError(f"{source}:{lineno}: cycle: {a} -> {a} (a task depending on "
                                 "itself)", "remove the line")
            if (a, b) in first:
                raise GraphError(f"{source}:{lineno}: duplicate edge {a} -> {b} (first on line "
                                 f"{first[(a, b)]})", "remove one of the two lines")
            first[(a, b)] = lineno
            edges.append((a, b, lineno))
    if not order:
        raise GraphError(f"{source}: no tasks", "write one task or dependency per line")
    graph = TaskGraph(source, tuple(order), tuple(edges))
    _check_acyclic(graph, first)
    return graph


def _check_acyclic(graph: TaskGraph, lines: dict[tuple[str, str], int]) -> None:
    indeg = {t: len(graph.parents(t)) for t in graph.tasks}
    queue = [t for t in graph.tasks if indeg[t] == 0]
    while queue:
        t = queue.pop()
        for c in graph.children(t):
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    left = {t for t, d in indeg.items() if d > 0}
    if not left:
        return
    # every remaining task has a remaining parent: walk parents until a task repeats
    path: list[str] = []
    pos: dict[str, int] = {}
    t = min(left, key=graph.number)
    while t not in pos:
        pos[t] = len(path)
        path.append(t)
        t = next(p for p in graph.parents(t) if p in left)
    cycle = list(reversed(path[pos[t]:]))
    first = cycle.index(min(cycle, key=graph.number))
    cycle = cycle[first:] + cycle[:first]
    cycle.append(cycle[0])
    steps = list(zip(cycle, cycle[1:], strict=False))
    where = ", ".join(str(lines[s]) for s in steps)
    raise GraphError(f"{graph.source}: cycle: {' -> '.join(cycle)} (lines {where})",
                     "remove one of these dependencies")


def read_graph(path: str | Path) -> TaskGraph:
    p = Path(path)
    data = b""
    try:
        data = read_regular(p, MAX_GRAPH_BYTES)  # never a FIFO or a device
        text = data.decode("utf-8")
    except FileNotFoundError as exc:
        raise GraphError(f"graph file {p} does not exist", "check the path") from exc
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise GraphError(f"{p}:{line}: not UTF-8 text", "save the file as UTF-8") from exc
    except OSError as exc:
        raise GraphError(f"cannot read graph file {p}: {exc.strerror or exc}",
                         "check the path") from None
    return parse_graph(text, str(p))


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TaskResult:
    """The end state of one task. ``took_down``: for a failure, the dependents it skipped."""

    name: str
    number: int
    status: TaskStatus
    node: str = ""
    host: str = ""
    exit_code: int | None = None
    output: str = ""
    stderr: str = ""
    started: float = 0.0
    duration: float = 0.0
    took_down: tuple[str, ...] = ()
    cause: str = ""  # for a skipped task: the failed task that took it down


@dataclass(frozen=True)
class GraphReport:
    """A finished (or, from the pool, partly finished) graph run; results in completion order."""

    source: str
    backend: str  # "local" or "pool"
    results: tuple[TaskResult, ...]
    pending: tuple[str, ...] = ()
    wall_s: float = 0.0
    workers: int = 0

    def _with(self, status: str) -> tuple[str, ...]:
        return tuple(r.name for r in self.results if r.status == status)

    @property
    def succeeded(self) -> tuple[str, ...]:
        return self._with(SUCCESS)

    @property
    def failed(self) -> tuple[str, ...]:
        return self._with(FAILURE)

    @property
    def skipped(self) -> tuple[str, ...]:
        return self._with(SKIPPED)

    @property
    def ok(self) -> bool:
        return not self.pending and all(r.status == SUCCESS for r in self.results)

    def outcome(self) -> dict[str, str]:
        """Task name -> status, the backend-independent result of a run."""
        return {r.name: r.status for r in self.results}


def _tag(result: TaskResult, number: bool, node: bool) -> str:
    parts = ([result.node or "?"] if node else []) + ([str(result.number)] if number else [])
    return " ".join(parts) + " " if parts else ""


def format_result(result: TaskResult, number: bool = False, node: bool = False,
                  eot: bool = False) -> list[str]:
    """paexec's ``-g`` output lines for one finished task (nothing for a skipped one)."""
    if result.status == SKIPPED:
        return []
    lines = result.output.splitlines()
    lines.append(result.status)
    if result.status == FAILURE:
        lines.append(" ".join((result.name, *result.took_down)))
    if eot:
        lines.append("")
    tag = _tag(result, number, node)
    return [tag + line if line or not tag else tag.rstrip() for line in lines]


def format_report(report: GraphReport, number: bool = False, node: bool = False,
                  eot: bool = False, ordered: bool = False) -> list[str]:
    """Every finished task's lines, in completion order or (``ordered``) in task order."""
    results = sorted(report.results, key=lambda r: r.number) if ordered else report.results
    return [line for r in results for line in format_result(r, number, node, eot)]


def reorder(lines: Iterable[str], node: bool = False, keep_number: bool = False,
            keep_node: bool = False) -> list[str]:
    """paexec_reorder: group tagged lines (``[NODE ]NUMBER text``) by task, in task order.

    Lines of one task keep their relative order. Tags are dropped unless kept. Raises
    :class:`UsageError` on a line without the expected tags.
    """
    groups: dict[int, list[str]] = {}
    for i, line in enumerate(lines, start=1):
        parts = line.split(" ", 2 if node else 1)
        want = 2 if node else 1
        if len(parts) < want or not parts[want - 1].isdigit():
            raise UsageError(f"line {i} of the tagged output has no task number: {line!r}",
                             "reorder output made with -l (and -r if --node is given)")
        text = parts[want] if len(parts) > want else ""
        tags = [parts[0]] if node and keep_node else []
        tags += [parts[want - 1]] if keep_number else []
        out = " ".join([*tags, text]) if text or not tags else " ".join(tags)
        groups.setdefault(int(parts[want - 1]), []).append(out)
    return [line for n in sorted(groups) for line in groups[n]]


def check_command(command: Sequence[str]) -> tuple[str, ...]:
    """The command as given, after checking its program exists (a clear error up front)."""
    if not command:
        raise UsageError("no command given", "write the command after the graph file: "
                         "condorkit graph GRAPH -- CMD [ARGS...]")
    prog = command[0]
    if "/" in prog:
        if not (Path(prog).is_file() and os.access(prog, os.X_OK)):
            raise UsageError(f"command {prog} is not an executable file",
                             f"check the path, or chmod +x {prog}")
    elif shutil.which(prog) is None:
        raise UsageError(f"command {prog!r} is not on PATH", "give its path")
    return tuple(command)
