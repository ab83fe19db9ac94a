"""Shared plumbing of the perf_* benchmarks: paths, CPU clocks, interleaved runs, tables.

Measurement rules (see /work/shared/bench/NOTES.md): contenders run interleaved (A B C, then
C B A, ...), the page cache is warmed right before every timed pass, every figure is a median of
the repeats, and a ratio is the median of the per-round ratios (both sides measured in the same
round). The per-core rate is images per CPU-second of this process and its waited-for children
(user + system), which a busy neighbour disturbs far less than wall time; wall rates are shown
too.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
for _p in (ROOT, ROOT / "wrappers"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


def load_program(folder: str, name: str) -> object:
    """Import a job program (examples/FOLDER/NAME.py) as a module."""
    path = ROOT / "examples" / folder
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return __import__(name)


def cpu_now() -> float:
    """CPU seconds used so far by this process (all threads) and its waited-for children."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def warm(paths: Sequence[Path]) -> int:
    """Read every file once (the VM evicts idle page cache); returns the bytes read."""
    total = 0
    for p in paths:
        with open(p, "rb") as fh:
            while block := fh.read(1 << 20):
                total += len(block)
    return total


@dataclass
class Contender:
    """One way of doing the work: ``run(path)`` for each input of a pass."""

    name: str
    run: Callable[[Path], object]
    note: str = ""
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)


def interleaved(contenders: Sequence[Contender], inputs: Sequence[Path], repeats: int,
                warm_paths: Sequence[Path] | None = None, log: Callable[[str], None] | None = None
                ) -> None:
    """Run every contender over ``inputs`` ``repeats`` times, interleaved, timing each pass."""
    for rep in range(repeats):
        order = list(contenders) if rep % 2 == 0 else list(reversed(contenders))
        for c in order:
            warm(warm_paths if warm_paths is not None else inputs)
            c0, w0 = cpu_now(), time.perf_counter()
            for p in inputs:
                c.run(p)
            c.cpu.append(cpu_now() - c0)
            c.wall.append(time.perf_counter() - w0)
            if log:
                log(f"  round {rep + 1}/{repeats} {c.name}: {len(inputs) / c.cpu[-1]:.2f} "
                    f"img/CPU-s, {len(inputs) / c.wall[-1]:.2f} img/s wall")


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def rate_rows(contenders: Sequence[Contender], n: int, anchors: Sequence[str]
              ) -> tuple[list[str], list[list[str]]]:
    """Table rows: name, median img/s/core (CPU), median img/s wall, ratio vs each anchor."""
    by = {c.name: c for c in contenders}
    head = ["contender", "img/s/core (CPU)", "img/s (wall)"] + [f"x {a}" for a in anchors]
    rows = []
    for c in contenders:
        row = [c.name + (f" ({c.note})" if c.note else ""), f"{n / median(c.cpu):.2f}",
               f"{n / median(c.wall):.2f}"]
        for a in anchors:
            ratios = [ac / cc for ac, cc in zip(by[a].cpu, c.cpu, strict=True)]
            row.append(f"{median(ratios):.3f}")
        rows.append(row)
    return head, rows


def markdown(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """One line describing where and when the figures were taken."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        rev = "?"
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}, commit {rev}, load average at start {load:.2f}")


def write_result(name: str, text: str, data: object) -> Path:
    """Write ``bench/results/NAME.md`` and ``NAME.json``; returns the markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    md = RESULTS / f"{name}.md"
    md.write_text(text, encoding="utf-8")
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n",
                                          encoding="utf-8")
    return md


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
