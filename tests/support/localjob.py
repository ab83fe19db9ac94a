"""Small job folders for local-backend tests: a tiny Python program with fault switches.

The program squares the ``n`` column of each row (manifest lines ``itemI I``) through the real
wrapper. Environment switches (all optional):

- ``CKTEST_STATE``: folder for per-piece attempt counters (``attempt-START-N``) and pid files
  (``pid-START-N`` holding ``PID PGID``); the attempt number drives the switches below;
- ``CKTEST_FAIL_P`` / ``CKTEST_SEED``: reject a piece (exit 3) with probability p, decided by
  ``random.Random(f"{seed}:{start}:{attempt}")`` (see :func:`rejected`);
- ``CKTEST_FAIL_STARTS``: comma-separated piece starts that always exit 3;
- ``CKTEST_KILL``: ``all`` or piece starts whose FIRST attempt writes half a results file and then
  SIGKILLs its own process group (wrapper included) mid-chunk;
- ``CKTEST_HANG``: ``all`` or piece starts whose first attempt sleeps 300 s;
- ``CKTEST_IGNORE_TERM``: the program ignores SIGTERM;
- ``CKTEST_SLEEP``: seconds per row.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

PROGRAM = r'''
import os, random, signal, sys, time
import ckjob

def attempt_no(state, start):
    n = 0
    while True:
        n += 1
        try:
            os.close(os.open(os.path.join(state, "attempt-%d-%d" % (start, n)),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return n
        except FileExistsError:
            continue

def listed(name, start):
    v = os.environ.get(name, "")
    return v == "all" or str(start) in v.split(",")

def main():
    rows_path, out = sys.argv[1], sys.argv[2]
    header, rows = ckjob.read_rows(rows_path)
    start = header["start"]
    state = os.environ.get("CKTEST_STATE")
    n = 1
    if state:
        n = attempt_no(state, start)
        with open(os.path.join(state, "pid-%d-%d.tmp" % (start, n)), "w") as fh:
            fh.write("%d %d\n" % (os.getpid(), os.getpgrp()))
        os.rename(os.path.join(state, "pid-%d-%d.tmp" % (start, n)),
                  os.path.join(state, "pid-%d-%d" % (start, n)))
    if os.environ.get("CKTEST_IGNORE_TERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    p = float(os.environ.get("CKTEST_FAIL_P", "0"))
    seed = os.environ.get("CKTEST_SEED", "0")
    if p and random.Random("%s:%d:%d" % (seed, start, n)).random() < p:
        sys.stderr.write("rejected piece %d (attempt %d)\n" % (start, n))
        return 3
    if listed("CKTEST_FAIL_STARTS", start):
        sys.stderr.write("piece %d always fails\n" % start)
        return 3
    if n == 1 and listed("CKTEST_KILL", start):
        with open(out, "w") as fh:
            fh.write('{"format": "condorkit-results/1", "start": %d, "rec' % start)
        os.killpg(os.getpgrp(), signal.SIGKILL)
    if n == 1 and listed("CKTEST_HANG", start):
        time.sleep(300)
    pause = float(os.environ.get("CKTEST_SLEEP", "0"))

    def square(row):
        time.sleep(pause)
        return {"value": row["n"] ** 2}

    ckjob.map_rows(rows_path, out, square, program="square.py")
    return 0

sys.exit(main())
'''


def make_job(folder: Path, rows: int, chunk: int, extra_toml: str = "") -> Path:
    """A job folder: ``square.py``, ``manifest.txt`` (``itemI I``) and ``condorkit.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "square.py").write_text(PROGRAM)
    (folder / "manifest.txt").write_text("".join(f"item{i} {i}\n" for i in range(1, rows + 1)))
    (folder / "condorkit.toml").write_text(
        'program = "square.py"\ncolumns = ["name:str", "n:int"]\n'
        f"chunk = {chunk}\n{extra_toml}")
    return folder


def rejected(seed: str, start: int, attempt: int, p: float) -> bool:
    """What the program decides for this piece attempt under ``CKTEST_FAIL_P``."""
    return random.Random(f"{seed}:{start}:{attempt}").random() < p


def result_rows(job_dir: Path) -> list[int]:
    """Every row number in every ``results/results-*.json`` (duplicates kept)."""
    rows: list[int] = []
    for path in sorted((job_dir / "results").glob("results-*.json")):
        doc = json.loads(path.read_text())
        rows.extend(r["row"] for r in doc["records"])
    return sorted(rows)


def _tsv(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def joblog(path: Path) -> list[dict[str, Any]]:
    """GNU parallel's columns joined with condorkit's own (``NAME-condorkit.tsv``) by Seq."""
    from condorkit.local.joblog import extra_path

    extra = {e["Seq"]: e for e in _tsv(extra_path(path))}
    return [dict(e, **extra[e["Seq"]]) for e in _tsv(path)]
