"""Task graphs in paexec's ``-g`` format (and paexec's plain task lists), and their output.

Owns the graph format, its checks, the task results and the paexec-style output lines. Running a
graph on the local cores is :mod:`condorkit.local.graph`, the pool side :mod:`condorkit.condor.dag`.

Format (paexec ``-g``): one line per task or dependency; ``A B`` means B depends on A (A must
succeed before B starts), a lone ``A`` is a task with no dependencies, ``weight: A N`` gives A
the weight N (default 1; used by ``-W``, heavier first). Fields are separated by white space;
blank lines and lines starting with ``#`` are ignored (a condorkit extension). A task number is
its 1-based rank of first appearance in the file (as ``paexec -l`` numbers them). A dependency
may repeat (paexec's own inputs do; it counts once). A cycle and a line with more than two
fields are :class:`GraphError` s naming the file line. :func:`parse_rows` reads paexec's other
input, one independent task per line (the whole line is the task; tasks may repeat).

Failure semantics (paexec's): a failed task's transitive dependents never run ("skipped"), and
its report line lists the failed task followed by *all* its transitive dependents, even those
another failure already took down (so two failures sharing dependents both list them).

Output (:func:`format_result`), per finished task, exactly paexec's lines: the command's stdout,
then (graphs only) ``success`` or ``failure``; after ``failure`` one line with the failed task
followed by its dependents. ``-l`` prefixes the task number, ``-r`` the node (a local worker
number 0..N-1, or a pool slot) before it; :func:`reorder` is paexec_reorder.

Complexity: parsing, the cycle check and scheduling are O(tasks + edges); each failure line is
O(tasks + edges) (its length is up to the number of tasks); ``-W`` weights are O(tasks^2 / 64)
words of memory and time (a bit set of dependents per task).
"""

from __future__ import annotations

import os
import re
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
WEIGHT = "weight:"


@dataclass(frozen=True)
class TaskGraph:
    """A parsed, acyclic task graph. ``tasks`` are in task-number order (number = index + 1).

    ``edges`` holds each dependency once, with the line of its first appearance. ``weights``
    (one per task) is empty when the file gave none. ``rows``: a plain task list (paexec
    without ``-g``), whose task names may repeat and whose output has no status lines.
    """

    source: str
    tasks: tuple[str, ...]
    edges: tuple[tuple[str, str, int], ...]  # (before, after, line)
    weights: tuple[int, ...] = ()
    rows: bool = False
    _index: dict[str, int] = field(init=False, compare=False, repr=False)
    _kids: tuple[tuple[int, ...], ...] = field(init=False, compare=False, repr=False)
    _pars: tuple[tuple[int, ...], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, int] = {}
        for i, t in enumerate(self.tasks):
            index.setdefault(t, i)
        kids: list[list[int]] = [[] for _ in self.tasks]
        pars: list[list[int]] = [[] for _ in self.tasks]
        for a, b, _ in self.edges:
            ia, ib = index[a], index[b]
            kids[ia].append(ib)
            pars[ib].append(ia)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_kids", tuple(tuple(k) for k in kids))
        object.__setattr__(self, "_pars", tuple(tuple(p) for p in pars))

    # -- by name (the first task of that name)
    def number(self, task: str) -> int:
        return self._index[task] + 1

    def children(self, task: str) -> tuple[str, ...]:
        return tuple(self.tasks[k] for k in self._kids[self._index[task]])

    def parents(self, task: str) -> tuple[str, ...]:
        return tuple(self.tasks[p] for p in self._pars[self._index[task]])

    def dependents(self, task: str, exclude: Iterable[str] = ()) -> tuple[str, ...]:
        """Transitive dependents, depth-first preorder, children in file order."""
        skip = {self._index[t] for t in exclude}
        return tuple(self.tasks[i] for i in self.dependents_of(self._index[task], skip))

    # -- by index (0-based), for the runner
    def children_of(self, i: int) -> tuple[int, ...]:
        return self._kids[i]

    def indegrees(self) -> list[int]:
        return [len(p) for p in self._pars]

    def dependents_of(self, i: int, exclude: set[int] | frozenset[int] = frozenset()
                      ) -> list[int]:
        """Indices of the transitive dependents of task ``i``: O(tasks + edges)."""
        seen = set(exclude)
        seen.add(i)
        out: list[int] = []
        stack = list(reversed(self._kids[i]))
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            out.append(t)
            stack.extend(reversed(self._kids[t]))
        return out

    def sum_weights(self) -> list[int]:
        """paexec ``-W``: each task's weight plus the weights of all its transitive dependents."""
        w = list(self.weights) or [1] * len(self.tasks)
        below: list[int] = [0] * len(self.tasks)  # bit set of transitive dependents
        for i in reversed(topological_order(self)):
            bits = 0
            for k in self._kids[i]:
                bits |= below[k] | (1 << k)
            below[i] = bits
        if all(x == 1 for x in w):
            return [1 + b.bit_count() for b in below]
        out = []
        for i, bits in enumerate(below):
            total, k = w[i], 0
            while bits:
                if bits & 1:
                    total += w[k]
                bits >>= 1
                k += 1
            out.append(total)
        return out


def topological_order(graph: TaskGraph) -> list[int]:
    """Task indices, every task after its dependencies (Kahn's algorithm, O(tasks + edges))."""
    indeg = graph.indegrees()
    stack = [i for i in range(len(graph.tasks) - 1, -1, -1) if indeg[i] == 0]
    order: list[int] = []
    while stack:
        i = stack.pop()
        order.append(i)
        for k in graph.children_of(i):
            indeg[k] -= 1
            if indeg[k] == 0:
                stack.append(k)
    return order


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f]")


def _check_line(raw: str, source: str, lineno: int) -> None:
    bad = _CONTROL.search(raw)
    if bad is not None:
        raise GraphError(f"{source}:{lineno}: control character {bad.group()!r} in {raw!r}",
                         "task names are printable words")


def parse_graph(text: str, source: str = "<graph>") -> TaskGraph:
    """Parse paexec ``-g`` text. Raises :class:`GraphError` naming ``source:LINE``."""
    order: dict[str, None] = {}
    edges: list[tuple[str, str, int]] = []
    first: dict[tuple[str, str], int] = {}
    weights: dict[str, int] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        _check_line(raw, source, lineno)
        fields = line.split()
        if fields[0] == WEIGHT:
            if len(fields) != 3 or not fields[2].isdigit():
                raise GraphError(f"{source}:{lineno}: bad weight line {line!r}",
                                 "write `weight: TASK N` with a whole number N")
            order.setdefault(fields[1], None)
            weights[fields[1]] = int(fields[2])
            continue
        if len(fields) > 2:
            raise GraphError(f"{source}:{lineno}: unknown line {line!r}: expected `TASK` or "
                             f"`TASK DEPENDENT`, got {len(fields)} fields",
                             "write one task (`A`) or one dependency (`A B`: B depends on A) "
                             "per line")
        for f in fields:
            order.setdefault(f, None)
        if len(fields) == 2:
            a, b = fields
            if a == b:
                raise GraphError(f"{source}:{lineno}: cycle: {a} -> {a} (a task depending on "
                                 "itself)", "remove the line")
            if (a, b) not in first:  # paexec accepts repeated dependencies; they count once
                first[(a, b)] = lineno
                edges.append((a, b, lineno))
    if not order:
        raise GraphError(f"{source}: no tasks", "write one task or dependency per line")
    w = tuple(weights.get(t, 1) for t in order) if weights else ()
    graph = TaskGraph(source, tuple(order), tuple(edges), w)
    _check_acyclic(graph, first)
    return graph


def parse_rows(text: str, source: str = "<tasks>") -> TaskGraph:
    """paexec's plain input: every non-blank line (stripped) is one independent task."""
    tasks = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            _check_line(raw, source, lineno)
            tasks.append(raw.strip())
    if not tasks:
        raise GraphError(f"{source}: no tasks", "write one task per line")
    return TaskGraph(source, tuple(tasks), (), rows=True)


def _check_acyclic(graph: TaskGraph, lines: dict[tuple[str, str], int]) -> None:
    order = topological_order(graph)
    if len(order) == len(graph.tasks):
        return
    placed = set(order)
    left = {i for i in range(len(graph.tasks)) if i not in placed}
    # every remaining task has a remaining parent: walk parents until a task repeats
    path: list[int] = []
    pos: dict[int, int] = {}
    t = min(left)
    while t not in pos:
        pos[t] = len(path)
        path.append(t)
        t = next(p for p in graph._pars[t] if p in left)
    cycle = list(reversed(path[pos[t]:]))
    first = cycle.index(min(cycle))
    cycle = cycle[first:] + cycle[:first]
    cycle.append(cycle[0])
    names = [graph.tasks[i] for i in cycle]
    steps = list(zip(names, names[1:], strict=False))
    where = ", ".join(str(lines[s]) for s in steps)
    raise GraphError(f"{graph.source}: cycle: {' -> '.join(names)} (lines {where})",
                     "remove one of these dependencies")


def _read_text(path: str | Path) -> tuple[Path, str]:
    p = Path(path)
    data = b""
    try:
        data = read_regular(p, MAX_GRAPH_BYTES)  # never a FIFO or a device
        return p, data.decode("utf-8")
    except FileNotFoundError as exc:
        raise GraphError(f"graph file {p} does not exist", "check the path") from exc
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise GraphError(f"{p}:{line}: not UTF-8 text", "save the file as UTF-8") from exc
    except OSError as exc:
        raise GraphError(f"cannot read graph file {p}: {exc.strerror or exc}",
                         "check the path") from None


def read_graph(path: str | Path) -> TaskGraph:
    p, text = _read_text(path)
    return parse_graph(text, str(p))


def read_rows(path: str | Path) -> TaskGraph:
    p, text = _read_text(path)
    return parse_rows(text, str(p))


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TaskResult:
    """The end state of one task. ``took_down``: for a failure, the dependents it skipped."""

    name: str
    number: int
    status: str  # SUCCESS, FAILURE or SKIPPED
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
    rows: bool = False  # a plain task list: output without status lines
    restarts: int = 0  # calculators restarted after dying (calculator mode)

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
                  eot: bool = False, rows: bool = False) -> list[str]:
    """paexec's output lines for one finished task (nothing for a skipped one); ``rows``: a
    plain task list's (the output only, no ``success``/``failure`` lines)."""
    if result.status == SKIPPED:
        return []
    lines = result.output.splitlines()
    if not rows:
        lines.append(result.status)
    if result.status == FAILURE and not rows:
        lines.append(" ".join((result.name, *result.took_down)))
    if eot:
        lines.append("")
    tag = _tag(result, number, node)
    return [tag + line if line or not tag else tag.rstrip() for line in lines]


def format_report(report: GraphReport, number: bool = False, node: bool = False,
                  eot: bool = False, ordered: bool = False) -> list[str]:
    """Every finished task's lines, in completion order or (``ordered``) in task order."""
    results = sorted(report.results, key=lambda r: r.number) if ordered else report.results
    return [line for r in results
            for line in format_result(r, number, node, eot, report.rows)]


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


# ----------------------------------------------------------------------------- commands


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
