"""Benchmark: aggregation time and peak memory for many result rows.

Generates N rows of photodemo-like results (files of --chunk rows, written with
``ckjob.make_results``/``ckjob.write_results``, 1% error rows), then aggregates them --repeat
times, each in a fresh Python process, and reports the median wall time and the peak RSS of the
aggregating process (``resource.getrusage``), with its RSS just before aggregating (after imports)
for comparison. Files are read once before each timed pass so the page cache is warm.

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
from condorkit.aggregate import aggregate
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
rep = aggregate([sys.argv[1]], expected_rows=int(sys.argv[2]), out_html=Path(sys.argv[3]))
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "rss_before_kib": before, "peak_rss_kib": peak,
                  "found": rep.found, "errors": rep.errors, "missing": rep.missing_count,
                  "density": rep.density_mode,
                  "html_bytes": Path(sys.argv[3]).stat().st_size}))
"""


def measure(folder: Path, rows: int, repeat: int) -> dict[str, object]:
    runs = []
    out = folder.parent / f"scatter-{rows}.html"
    for _ in range(repeat):
        warm(folder)
        res = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(rows), str(out)],
                             check=True, capture_output=True, text=True)
        runs.append(json.loads(res.stdout))
    return {
        "rows": rows,
        "files": len(list(folder.iterdir())),
        "median_s": statistics.median(r["seconds"] for r in runs),
        "all_s": [round(r["seconds"], 3) for r in runs],
        "peak_rss_mib": max(r["peak_rss_kib"] for r in runs) / 1024,
        "rss_before_mib": max(r["rss_before_kib"] for r in runs) / 1024,
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
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ck-aggbench-"))
    try:
        for rows in args.rows:
            folder = base / f"results-{rows}"
            if not (folder / f"results-{1 + ((rows - 1) // args.chunk) * args.chunk}.json"
                    ).exists():
                t0 = time.perf_counter()
                generate(folder, rows, args.chunk)
                gen = time.perf_counter() - t0
                print(f"generated {rows:,} rows in {gen:.1f} s", file=sys.stderr)
            r = measure(folder, rows, args.repeat)
            print(f"N={rows:>9,}  files={r['files']:>5}  median={r['median_s']:.2f} s "
                  f"(runs {r['all_s']})  peak RSS={r['peak_rss_mib']:.0f} MiB "
                  f"(before aggregating {r['rss_before_mib']:.0f} MiB)  found={r['found']:,} "
                  f"errors={r['errors']:,} missing={r['missing']} "
                  f"density={r['density_mode']} html={r['html_kib']:.0f} KiB")
            sys.stdout.flush()
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
