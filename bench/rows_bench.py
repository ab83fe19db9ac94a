"""Rows at scale: `condorkit run -j2` over N trivial rows against the program's own time (issue 14).

The job: an N-row manifest (``item:str``, one short word per row), chunk 200 (N/200 chunks), and a
trivial ``ckjob.map_rows`` program (the length of the item). Contenders, interleaved per round:

- ``program``: the program itself over all N rows in ONE process, on one rows file of every
  row written by condorkit (a job with chunk = N): the program's own time on the same input
  format (ckjob checks every row's key, as in every chunk), the floor of any one-core run;
- ``bare``: the same over a minimal rows file without the job's options (ckjob checks no key):
  the baseline before 2026-11-30, kept for comparison;
- ``condorkit``: ``condorkit run -j2`` from a fresh job folder state (``chunks/`` made again,
  ``results/`` empty), automatic granularity, persistent workers: preparing the job (manifest
  parsing, rows files), scheduling, pieces, assembling chunk results, joblog and all.

For ``condorkit`` the peak RSS of the coordinator process alone (``VmHWM`` from /proc, polled;
the workers are separate processes) is recorded; every pass checks that all N rows have valid
results. Targets (issue 14): wall <= 1.5 x the program's own time, coordinator < 150 MB.

    python bench/rows_bench.py                 # 1,000,000 rows, 3 rounds
    python bench/rows_bench.py --rows 200000 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from perf_common import machine, markdown, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROGRAM = """import sys, ckjob
ckjob.map_rows(sys.argv[1], sys.argv[2], lambda row: {"size": len(row["item"])})
"""


def make_job(folder: Path, rows: int) -> None:
    folder.mkdir(parents=True)
    (folder / "count.py").write_text(PROGRAM)
    (folder / "condorkit.toml").write_text(
        'program = "count.py"\ncolumns = ["item:str"]\nchunk = 200\n')
    with open(folder / "manifest.txt", "w", encoding="utf-8") as fh:
        for i in range(1, rows + 1):
            fh.write(f"item{i}\n")


def hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_condorkit(job: Path) -> tuple[float, int]:
    for sub in ("chunks", "results", ".condorkit", "logs"):
        shutil.rmtree(job / sub, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDORKIT_")}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "condorkit", "run", "-C", str(job), "-j",
                                 "2"], stdout=out, stderr=err, env=env)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, hwm_kib(proc.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - t0
        err.seek(0)
        tail = err.read()[-2000:].decode("utf-8", "replace")
    if proc.returncode != 0:
        raise SystemExit(f"condorkit run failed ({proc.returncode}): {tail}")
    done = sum(1 for _ in (job / "results").iterdir())
    if f"{done} chunk" not in tail and "chunks done" not in tail:
        raise SystemExit(f"condorkit run did not finish: {tail}")
    return wall, peak


def one_chunk_rows(job: Path, rows: int) -> Path:
    """The job's rows as ONE rows file, written by condorkit itself (chunk = every row): the
    same format the chunks have, so ckjob checks the key of every row as it does in a chunk."""
    from condorkit.model.config import load_config
    from condorkit.model.job import prepare

    one = job.parent / "one-chunk"
    shutil.rmtree(one, ignore_errors=True)
    one.mkdir()
    for name in ("count.py", "manifest.txt", "condorkit.toml"):
        shutil.copy(job / name, one)
    job_ = prepare(one, load_config(one, {"chunk": rows}, env={}))
    shutil.copy(job_.ckjob, one)
    return one / "chunks" / "rows-1.jsonl"


def bare_rows(job: Path, rows: int) -> Path:
    """All rows in a minimal rows file (no options: ckjob checks no key), the baseline used
    before: the program's per-row work without the key check every chunk gets."""
    from condorkit.wrappers import ckjob

    bare = job.parent / "bare"
    shutil.rmtree(bare, ignore_errors=True)
    bare.mkdir()
    shutil.copy(job / "count.py", bare)
    shutil.copy(REPO / "wrappers" / "ckjob.py", bare)
    with open(bare / "rows.jsonl", "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"format": ckjob.ROWS_FORMAT, "start": 1, "count": rows,
                             "key": "bench"}) + "\n")
        for i in range(1, rows + 1):
            fh.write(f'{{"row": {i}, "item": "item{i}"}}\n')
    return bare / "rows.jsonl"


def run_program(rows_file: Path) -> float:
    """The program over ``rows_file`` in one process (ckjob.py and count.py beside it)."""
    folder = rows_file.parent if (rows_file.parent / "count.py").is_file() else \
        rows_file.parent.parent
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(folder / "count.py"), str(rows_file),
                    str(folder / "out.json")], cwd=folder, check=True,
                   env=dict(os.environ, PYTHONPATH=str(folder)))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="folder for the job folders (default: the "
                    "system's temporary folder; e.g. /dev/shm to leave the disk out)")
    args = ap.parse_args(argv)
    header = machine()
    with tempfile.TemporaryDirectory(prefix="rows-bench-", dir=args.dir) as tmp:
        job = Path(tmp) / "job"
        make_job(job, args.rows)
        one, bare = one_chunk_rows(job, args.rows), bare_rows(job, args.rows)
        prog, plain, ck, rss = [], [], [], []
        for r in range(args.rounds):
            order = ("program", "bare", "condorkit")
            for name in order if r % 2 == 0 else reversed(order):
                if name == "program":
                    prog.append(run_program(one))
                elif name == "bare":
                    plain.append(run_program(bare))
                else:
                    wall, peak = run_condorkit(job)
                    ck.append(wall)
                    rss.append(peak)
            print(f"round {r + 1}: program {prog[-1]:.2f}s (bare rows {plain[-1]:.2f}s), "
                  f"condorkit {ck[-1]:.2f}s (coordinator {rss[-1] / 1024:.0f} MiB)",
                  file=sys.stderr)
    ratio = statistics.median(c / p for c, p in zip(ck, prog, strict=True))
    ratio_bare = statistics.median(c / p for c, p in zip(ck, plain, strict=True))
    table = [[f"{args.rows:,}", "program, one process, one rows file of every row",
              f"{statistics.median(prog):.2f}", "", "1.00"],
             [f"{args.rows:,}", "program, one process, bare rows (no key check)",
              f"{statistics.median(plain):.2f}", "",
              f"{statistics.median(p / q for p, q in zip(plain, prog, strict=True)):.2f}"],
             [f"{args.rows:,}", "condorkit run -j2", f"{statistics.median(ck):.2f}",
              f"{statistics.median(rss) / 1024:.0f}",
              f"{ratio:.2f} ({ratio_bare:.2f} x the bare rows)"]]
    md = (f"{header}; job folders in {args.dir or tempfile.gettempdir()}; {args.rounds} "
          f"interleaved round(s); load average at the end "
          f"{os.getloadavg()[0]:.2f}\n\n"
          + markdown(["rows", "contender", "median wall (s)", "coordinator peak RSS (MiB)",
                      "x the program's own time"], table))
    print(md)
    write_result("rows_bench", md, {"rows": args.rows, "program_s": prog, "bare_s": plain,
                                    "condorkit_s": ck, "coordinator_peak_kib": rss,
                                    "ratio": ratio, "ratio_bare": ratio_bare})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
