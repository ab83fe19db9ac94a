"""Benchmark: aggregation time and peak memory for many result rows.

Generates N rows of photodemo-like results (files of --chunk rows, written with
``ckjob.make_results``/``ckjob.write_results``, 1% error rows), then aggregates them --repeat
times, each in a fresh Python process, and reports the median wall time (and CPU time of the
process and its workers, less sensitive to a busy machine) and the peak RSS of the
aggregating process (``resource.getrusage``), with its RSS just before aggregating (after imports)
and the largest worker process's peak for comparison. ``--workers`` values run interleaved.
Files are read once before each timed pass so the page cache is warm.

    python bench/aggregate_scale.py                 # N = 100,000 and 1,000,000
    python bench/aggregate_scale.py --rows 20000 --keep /tmp/ckbench
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from condorkit.wrappers import ckjob


def generate(folder: Path, rows: int, chunk: int, seed: int = 7) -> None:
    """Write results-START.json files covering rows 1..rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    for start in range(1, rows + 1, chunk):
        count = min(chunk, rows - start + 1)
        records = []
        for row in range(start, start + count):
            year = rnd.randint(1860, 2015)
            url = f"http://photos.invalid/archive/series{row % 7}/img-{row:07d}.jpg"
            if rnd.random() < 0.01:
                records.append({"row": row, "url": url, "year": year,
                                "error": "URLError: timed out"})
            else:
                lum = 0.15 + 0.35 * rnd.random() + (year - 1860) / 700
                records.append({"row": row, "url": url, "year": year,
                                "luminance": round(lum, 6)})
        doc = ckjob.make_results({"start": start, "count": count, "key": "bench"}, records,
                                 time.time(), 0.5, "luminance.py")
        ckjob.write_results(str(folder / f"results-{start}.json"), doc)


def warm(folder: Path) -> None:
    for p in folder.iterdir():
        p.read_bytes()


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from condorkit.report.aggregate import aggregate
r0 = resource.getrusage(resource.RUSAGE_SELF)
before = r0.ru_maxrss
t0 = time.perf_counter()
workers = None if sys.argv[4] == "auto" else int(sys.argv[4])
rep = aggregate([sys.argv[1]], expected_rows=int(sys.argv[2]), out_html=Path(sys.argv[3]),
                workers=workers)
dt = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
rc = resource.getrusage(resource.RUSAGE_CHILDREN)
peak = r1.ru_maxrss
worker_peak = rc.ru_maxrss
cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime + rc.ru_utime + rc.ru_stime
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "rss_before_kib": before, "peak_rss_kib": peak,
                  "worker_peak_rss_kib": worker_peak,
                  "found": rep.found, "errors": rep.errors, "missing": rep.missing_count,
                  "density": rep.density_mode,
                  "html_bytes": Path(sys.argv[3]).stat().st_size}))
"""


def run_once(folder: Path, rows: int, workers: str) -> dict[str, Any]:
    out = folder.parent / f"scatter-{rows}.html"
    warm(folder)
    res = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(rows), str(out),
                          workers], check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(res.stdout)
    return result


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "median_s": statistics.median(r["seconds"] for r in runs),
        "all_s": [round(r["seconds"], 2) for r in runs],
        "cpu_s": statistics.median(r["cpu_seconds"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_kib"] for r in runs) / 1024,
        "rss_before_mib": max(r["rss_before_kib"] for r in runs) / 1024,
        "worker_peak_mib": max(r["worker_peak_rss_kib"] for r in runs) / 1024,
        "found": runs[0]["found"],
        "errors": runs[0]["errors"],
        "missing": runs[0]["missing"],
        "density_mode": runs[0]["density"],
        "html_kib": runs[0]["html_bytes"] / 1024,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--workers", nargs="+", default=["auto", "1"],
                    help="aggregate(workers=...) values to compare, run interleaved "
                         "('auto': one per core)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ck-aggbench-"))
    try:
        for rows in args.rows:
            folder = base / f"results-{rows}"
            last = 1 + ((rows - 1) // args.chunk) * args.chunk
            if not (folder / f"results-{last}.json").exists():
                t0 = time.perf_counter()
                generate(folder, rows, args.chunk)
                print(f"generated {rows:,} rows in {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr)
            files = len(list(folder.iterdir()))
            runs: dict[str, list[dict[str, Any]]] = {w: [] for w in args.workers}
            for _ in range(args.repeat):  # A B A B ...: the machine is noisy
                for w in args.workers:
                    runs[w].append(run_once(folder, rows, w))
            for w in args.workers:
                r = summarize(runs[w])
                print(f"N={rows:>9,} files={files:>5} workers={w:<4} "
                      f"median={r['median_s']:.2f} s (runs {r['all_s']}; CPU {r['cpu_s']:.2f} s) "
                      f"peak RSS={r['peak_rss_mib']:.0f} MiB "
                      f"(after imports {r['rss_before_mib']:.0f} MiB; largest worker "
                      f"{r['worker_peak_mib']:.0f} MiB) found={r['found']:,} "
                      f"errors={r['errors']:,} missing={r['missing']} "
                      f"density={r['density_mode']} html={r['html_kib']:.0f} KiB", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
