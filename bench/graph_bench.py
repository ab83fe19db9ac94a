"""`condorkit graph` against paexec on task lists and graphs of 1k-10k tasks (issue 14).

Contenders, each on 2 workers, with equivalent commands, interleaved (A B, then B A, ...):

- ``condorkit`` : ``condorkit graph -j 2 FILE -- /bin/true`` (a process per task)
- ``paexec``    : ``paexec -x -g -n +2 -c /bin/true < FILE`` (paexec's shell starts one per task)
- ``condorkit-calc`` / ``paexec-calc``: one persistent calculator per worker (``awk -W
  interactive`` answering ``success`` and an empty end-of-task line), ``condorkit graph -c``
  and ``paexec -g -c``.

Inputs: ``seq N`` (N independent trivial tasks, N = 1k, 2k, 5k, 10k: the per-task cost must stay
constant), a generated 10,000-task package-like graph (:func:`package_graph`: preferential
attachment, so a few "toolchain" tasks have thousands of dependents and most have a handful,
~2.3 dependencies per task like a real pkgsrc tree, some repeated lines), and the real
/work/shared/data/paexec-packages.txt graph. Every pass checks that every task succeeded.
Wall times from outside (interpreter start-up included); medians over the rounds; the ratio is
the median of per-round ratios. Results: bench/results/graph_bench.{md,json}.

    python bench/graph_bench.py            # 3 rounds
    python bench/graph_bench.py --quick    # 1 round, 1k and 2k only
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import machine, markdown, write_result  # noqa: E402

SHARED_GRAPH = Path("/work/shared/data/paexec-packages.txt")
CALC = ["awk", "-W", "interactive", '{print "success"; print ""}']


def package_graph(n: int, seed: int = 14) -> str:
    """A package-like DAG of ``n`` tasks: each new task depends on 0-8 earlier ones (mean ~2.3),
    chosen by preferential attachment (popular build tools are depended on by thousands)."""
    rng = random.Random(seed)
    lines: list[str] = []
    pool: list[int] = []  # a task appears once per dependent it has, plus once
    for t in range(n):
        k = min(t, rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4, 5)))
        deps = {rng.choice(pool) for _ in range(k)} if pool else set()
        if not deps:
            lines.append(f"pkg{t}")
        for d in sorted(deps):
            lines.append(f"pkg{d} pkg{t}")
            pool.append(d)
            if rng.random() < 0.01:
                lines.append(f"pkg{d} pkg{t}")  # repeated, as real inputs have
        pool.append(t)
    return "\n".join(lines) + "\n"


def condorkit_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "condorkit"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "condorkit"]


def contenders(graph: Path, calc: bool) -> dict[str, tuple[list[str], Path | None]]:
    ck = condorkit_cmd()
    out = {"condorkit": ([*ck, "graph", "-j", "2", str(graph), "--", "/bin/true"], None),
           "paexec": (["paexec", "-x", "-g", "-n", "+2", "-c", "/bin/true"], graph)}
    if calc:
        out["condorkit-calc"] = ([*ck, "graph", "-c", "-j", "2", str(graph), "--", *CALC], None)
        out["paexec-calc"] = (["paexec", "-g", "-n", "+2", "-c",
                               "awk -W interactive '{print \"success\"; print \"\"}'"], graph)
    return out


def one(argv: list[str], stdin: Path | None, tasks: int) -> float:
    t0 = time.perf_counter()
    with open(stdin or os.devnull, "rb") as f:
        proc = subprocess.run(argv, stdin=f, capture_output=True, timeout=1800, check=False)
    wall = time.perf_counter() - t0
    ok = proc.stdout.count(b"success\n")
    if ok != tasks:
        raise SystemExit(f"{argv[0]}: {ok} of {tasks} tasks succeeded (exit {proc.returncode}): "
                         f"{proc.stderr[-500:]!r}")
    return wall


def count_tasks(text: str) -> int:
    names: set[str] = set()
    for line in text.splitlines():
        names.update(line.split())
    return len(names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=0, help="default 3 (--quick: 1)")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    for tool in ("paexec", "awk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install paexec)")
    rounds = args.rounds or (1 if args.quick else 3)
    header = machine()
    sizes = (1000, 2000) if args.quick else (1000, 2000, 5000, 10000)
    with tempfile.TemporaryDirectory(prefix="graph-bench-") as tmp:
        inputs: list[tuple[str, Path, bool]] = []
        for n in sizes:
            p = Path(tmp) / f"seq{n}"
            p.write_text("".join(f"{i}\n" for i in range(1, n + 1)))
            inputs.append((f"{n:,} independent", p, n in (2000, 10000)))
        if not args.quick:
            p = Path(tmp) / "pkg10k"
            p.write_text(package_graph(10000))
            inputs.append(("10,000-task package-like graph", p, True))
        if SHARED_GRAPH.is_file():
            inputs.append(("paexec-packages.txt", SHARED_GRAPH, True))
        table, data = [], []
        for label, path, calc in inputs:
            text = path.read_text()
            tasks = count_tasks(text)
            edges = sum(1 for x in text.splitlines() if len(x.split()) == 2)
            cs = contenders(path, calc)
            times: dict[str, list[float]] = {k: [] for k in cs}
            for r in range(rounds):
                order = list(cs) if r % 2 == 0 else list(reversed(cs))
                for name in order:
                    times[name].append(one(cs[name][0], cs[name][1], tasks))
            print(f"{label}: " + ", ".join(f"{k} {statistics.median(v):.2f}s"
                                           for k, v in times.items()), file=sys.stderr)
            for name, ts in times.items():
                peer = "paexec-calc" if name.endswith("calc") else "paexec"
                ratio = statistics.median(a / b for a, b in zip(ts, times[peer], strict=True))
                med = statistics.median(ts)
                table.append([label, f"{tasks:,} / {edges:,}", name, f"{med:.2f}",
                              f"{1000 * med / tasks:.3f}", f"{ratio:.2f}"])
                data.append({"input": label, "tasks": tasks, "edges": edges, "contender": name,
                             "times_s": ts, "median_s": med, "ms_per_task": 1000 * med / tasks,
                             "x_paexec": ratio})
    md = (f"{header}; {rounds} interleaved round(s); load average at the end "
          f"{os.getloadavg()[0]:.2f}\n\n"
          + markdown(["input", "tasks / edges", "contender", "median wall (s)", "ms per task",
                      "x paexec (same mode)"], table))
    print(md)
    write_result("graph_bench", md, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
