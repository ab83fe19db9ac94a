"""Figure 2: downloads overlap compute: a 200-row photodemo chunk from local files vs over HTTP.

    python3 bench/perf_download.py [--quick] [--repeats N] [--latency 0.1]

The photodemo program (examples/photodemo/luminance.py) runs exactly as the wrapper runs it
(``python3 luminance.py ROWS OUT`` in a scratch folder next to ckjob.py) on one chunk whose rows
cycle through the corpus. Modes, interleaved:
  local       rows are file paths
  http        rows are URLs of a local HTTP server (tests/support/httpserver.py, in its own
              process) that delays every response by --latency seconds; default fetch-ahead
  http-seq    the same URLs with PHOTODEMO_WINDOW=0: fetch, then measure, row after row
              (the tutorial's way)
Wall time is the figure here (latency costs no CPU). Target: http <= 1.2 x local.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corpus
from perf_common import ROOT, log, machine, markdown, median, warm, write_result

SERVER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.support.httpserver import FaultyServer
with FaultyServer({folder!r}, latency_s={latency!r}) as srv:
    print(srv.base_url, flush=True)
    sys.stdin.read()
    print("requests", srv.total(), file=sys.stderr)
"""


def rows_file(path: Path, urls: list[str], start: int = 1) -> None:
    header = {"format": "condorkit-rows/1", "start": start, "count": len(urls), "key": "bench",
              "columns": ["url", "year"]}
    lines = [json.dumps(header)] + [json.dumps({"row": start + i, "line": start + i, "url": u,
                                                "year": 2000}) for i, u in enumerate(urls)]
    path.write_text("\n".join(lines) + "\n")


def run_job(scratch: Path, rows: Path, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    out = scratch / "results.json"
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "luminance.py", rows.name, out.name], cwd=scratch,
                          env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"luminance.py failed ({proc.returncode}): {proc.stderr[-2000:]}")
    doc = json.loads(out.read_text())
    if doc["errors"]:
        bad = [r for r in doc["records"] if "error" in r][:3]
        raise RuntimeError(f"{doc['errors']} row(s) failed, e.g. {bad}")
    return wall, doc


def run(quick: bool, repeats: int, latency: float, rows_n: int) -> tuple[str, dict[str, object]]:
    files = corpus.ensure(quick)
    paths = [f.path for f in files]
    folder = paths[0].parent
    picked = [paths[i % len(paths)] for i in range(rows_n)]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(root=str(ROOT), folder=str(folder),
                                             latency=latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory(prefix="perf-download-") as tmp:
            scratch = Path(tmp)
            shutil.copy(ROOT / "examples/photodemo/luminance.py", scratch)
            shutil.copy(ROOT / "wrappers/ckjob.py", scratch)
            rows_file(scratch / "rows-local.jsonl", [str(p) for p in picked])
            rows_file(scratch / "rows-http.jsonl", [base + p.name for p in picked])
            env = dict(os.environ)
            modes = {"local": ("rows-local.jsonl", {}),
                     "http": ("rows-http.jsonl", {}),
                     "http-seq": ("rows-http.jsonl", {"PHOTODEMO_WINDOW": "0"})}
            walls: dict[str, list[float]] = {m: [] for m in modes}
            inner: dict[str, list[float]] = {m: [] for m in modes}
            peaks: dict[str, object] = {}
            log(f"download: {rows_n} rows over {corpus.describe(files)}; latency {latency} s; "
                f"{repeats} interleaved rounds")
            for rep in range(repeats):
                order = list(modes) if rep % 2 == 0 else list(reversed(modes))
                for m in order:
                    rows, extra = modes[m]
                    warm(paths)
                    wall, doc = run_job(scratch, scratch / rows, {**env, **extra})
                    walls[m].append(wall)
                    inner[m].append(float(doc["elapsed_s"]))
                    peaks[m] = doc.get("fetch")
                    log(f"  round {rep + 1}/{repeats} {m}: {wall:.2f} s wall "
                        f"(chunk {doc['elapsed_s']:.2f} s, kernel {doc.get('kernel')})")
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)
    head = ["mode", "process wall s", "chunk s (inside the job)", "x local (process)",
            "x local (chunk)", "fetch stats (last round)"]
    table = []
    for m in modes:
        rp = median([a / b for a, b in zip(walls[m], walls["local"], strict=True)])
        rc = median([a / b for a, b in zip(inner[m], inner["local"], strict=True)])
        table.append([m, f"{median(walls[m]):.2f}", f"{median(inner[m]):.2f}", f"{rp:.3f}",
                      f"{rc:.3f}", json.dumps(peaks[m])])
    text = (f"# Downloads overlap compute\n\n{machine()}\n\nOne {rows_n}-row chunk cycling "
            f"through {corpus.describe(files)}; HTTP server adds {latency * 1000:.0f} ms per "
            f"request. Medians of {repeats} interleaved rounds.\n\n" + markdown(head, table)
            + "\nTarget: http <= 1.2 x local.\n")
    return text, {"rows": rows_n, "latency_s": latency, "wall": walls, "chunk": inner,
                  "fetch": peaks, "table": [head, *table]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpus, 40 rows, 1 round")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args()
    text, data = run(args.quick, args.repeats or (1 if args.quick else 3), args.latency,
                     args.rows or (40 if args.quick else 200))
    path = write_result("download-quick" if args.quick else "download", text, data)
    print(text)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
