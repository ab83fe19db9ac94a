"""Scale benchmark: `mksubmit` (chunking + rows files + rendering) and `aggregate` at N rows.

For each N (default 100,000 and 1,000,000) it builds a photodemo job folder with an N-row manifest
in the tutorial's ``URL year`` format, and N result rows in ``results/results-START.json`` files
of --chunk rows (written with ``ckjob``, 1 % error rows). Then, --repeat times, interleaved
(N1 mksubmit, N1 aggregate, N2 mksubmit, ...), it runs

- ``condorkit mksubmit -C JOB CHUNK`` (the rows files are deleted first, so every pass writes
  all of them), stdout to a file;
- ``condorkit aggregate -C JOB -o scatter.html`` (reads the manifest for the expected count);

each as a child of a fresh measuring process that reports the wall time and the child's peak RSS
(``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``, so every figure is one command's own). The
"floor" is the same measurement for a Python that only imports condorkit's modules. Inputs are
read once right before each timed pass (the machine's page cache is evicted when idle).
Prints a table of medians; ``--json`` prints every figure.

    python bench/scale_bench.py
    python bench/scale_bench.py --rows 20000 --repeat 1 --keep /tmp/ckscale
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from condorkit.wrappers import ckjob

REPO = Path(__file__).resolve().parents[1]
PROGRAM = REPO / "examples" / "photodemo" / "luminance.py"
FLOOR = ("import condorkit.cli, condorkit.model.job, condorkit.condor.render, "
         "condorkit.report.aggregate, condorkit.model.manifest")


def make_job(folder: Path, rows: int, chunk: int, seed: int = 7) -> None:
    """The job folder: luminance.py, an N-row manifest, and N result rows."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROGRAM, folder / "luminance.py")
    rnd = random.Random(seed)
    years = [rnd.randint(1860, 2015) for _ in range(rows)]
    urls = [f"http://archive.invalid/photos/series{i % 7}/img-{i:07d}.jpg"
            for i in range(1, rows + 1)]
    with open(folder / "manifest.txt", "w", encoding="utf-8") as fh:
        for u, y in zip(urls, years, strict=True):
            fh.write(f"{u} {y}\n")
    results = folder / "results"
    results.mkdir(exist_ok=True)
    for start in range(1, rows + 1, chunk):
        count = min(chunk, rows - start + 1)
        records: list[dict[str, object]] = []
        for row in range(start, start + count):
            rec: dict[str, object] = {"row": row, "url": urls[row - 1], "year": years[row - 1]}
            if rnd.random() < 0.01:
                rec["error"] = "fetch: timed out after 3 attempt(s)"
            else:
                rec["luminance"] = round(0.15 + 0.35 * rnd.random()
                                         + (years[row - 1] - 1860) / 700, 6)
            records.append(rec)
        doc = ckjob.make_results({"start": start, "count": count, "key": "bench"}, records,
                                 time.time(), 1.0, "photodemo/luminance.py")
        ckjob.write_results(str(results / f"results-{start}.json"), doc)


def warm(folder: Path) -> None:
    """Read the inputs once so the timed pass does not measure the disk."""
    (folder / "manifest.txt").read_bytes()
    for p in (folder / "results").iterdir():
        p.read_bytes()


MEASURE = r"""
import json, resource, subprocess, sys, time
out = open(sys.argv[1], "wb")
t0 = time.perf_counter()
proc = subprocess.run(sys.argv[2:], stdout=out, stderr=subprocess.PIPE)
wall = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": wall, "peak_rss_kib": peak, "exit": proc.returncode,
                  "stderr": proc.stderr.decode("utf-8", "replace")[-2000:]}))
"""


def measure(argv: list[str], stdout: Path) -> dict[str, object]:
    """Run ``argv`` as the only child of a fresh process; its wall time and peak RSS."""
    res = subprocess.run([sys.executable, "-c", MEASURE, str(stdout), *argv],
                         capture_output=True, text=True, check=True)
    fig = json.loads(res.stdout)
    if fig["exit"] != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {fig['exit']}):\n{fig['stderr']}")
    return fig


def one_pass(folder: Path, chunk: int) -> dict[str, dict[str, object]]:
    cli = [sys.executable, "-m", "condorkit"]
    shutil.rmtree(folder / "chunks", ignore_errors=True)
    warm(folder)
    mk = measure([*cli, "mksubmit", "-C", str(folder), str(chunk)], folder / "submit.sub")
    sub = (folder / "submit.sub").read_text(encoding="utf-8")
    mk["submit_bytes"] = len(sub)
    mk["rows_files"] = sum(1 for _ in (folder / "chunks").iterdir())
    warm(folder)
    html = folder / "scatter.html"
    ag = measure([*cli, "aggregate", "-C", str(folder), "-o", str(html), "--json"],
                 folder / "aggregate.json")
    report = json.loads((folder / "aggregate.json").read_text())
    ag.update(found=report["found"], errors=report["errors"], missing=report["missing_count"],
              density=report["density_mode"], html_bytes=html.stat().st_size)
    return {"mksubmit": mk, "aggregate": ag}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="build the job folders here and keep them")
    ap.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = ap.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="ck-scale-"))
    try:
        folders = {}
        for n in args.rows:
            folders[n] = base / f"job-{n}"
            if not (folders[n] / "results").is_dir():
                print(f"generating {n:,} rows in {folders[n]} ...", file=sys.stderr)
                make_job(folders[n], n, args.chunk)
        runs: dict[int, list[dict[str, dict[str, object]]]] = {n: [] for n in args.rows}
        floors = []
        for rep in range(args.repeat):
            floors.append(measure([sys.executable, "-c", FLOOR], base / "floor.out"))
            for n in args.rows:
                runs[n].append(one_pass(folders[n], args.chunk))
                print(f"pass {rep + 1}/{args.repeat} at {n:,} rows done", file=sys.stderr)
        floor_kib = statistics.median(int(f["peak_rss_kib"]) for f in floors)  # type: ignore[call-overload]
        summary = {"floor_rss_kib": floor_kib, "chunk": args.chunk, "repeat": args.repeat,
                   "rows": {}}
        print(f"\nfloor (python + condorkit imports): peak RSS {floor_kib / 1024:.1f} MiB")
        print(f"{'rows':>10} {'command':<10} {'median s':>9} {'min s':>7} {'max s':>7} "
              f"{'peak RSS MiB':>13} {'above floor':>12}  notes")
        for n in args.rows:
            summary["rows"][n] = {}
            for what in ("mksubmit", "aggregate"):
                figs = [r[what] for r in runs[n]]
                secs = [float(f["seconds"]) for f in figs]  # type: ignore[arg-type]
                rss = statistics.median(int(f["peak_rss_kib"]) for f in figs)  # type: ignore[call-overload]
                last = figs[-1]
                note = (f"{last['rows_files']} rows files, submit file {last['submit_bytes']:,} B"
                        if what == "mksubmit" else
                        f"found {last['found']:,}, errors {last['errors']:,}, "
                        f"density {last['density']}, page {last['html_bytes']:,} B")
                print(f"{n:>10,} {what:<10} {statistics.median(secs):>9.2f} {min(secs):>7.2f} "
                      f"{max(secs):>7.2f} {rss / 1024:>13.1f} {(rss - floor_kib) / 1024:>12.1f}"
                      f"  {note}")
                summary["rows"][n][what] = {"median_s": statistics.median(secs),
                                            "seconds": secs, "peak_rss_kib": rss,
                                            "above_floor_kib": rss - floor_kib, "last": last}
        if len(args.rows) >= 2:
            lo, hi = min(args.rows), max(args.rows)
            for what in ("mksubmit", "aggregate"):
                d = (summary["rows"][hi][what]["peak_rss_kib"]
                     - summary["rows"][lo][what]["peak_rss_kib"]) * 1024 / (hi - lo)
                print(f"{what}: peak RSS grows {d:.1f} bytes per extra row "
                      f"({lo:,} -> {hi:,} rows)")
        if args.json:
            print(json.dumps(summary, indent=2, default=str))
        print(f"(peak RSS of this measuring process: "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB)",
              file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
