"""The photodemo end to end on the HTCondor test pool: 5,576 rows, chunk 200 (28 jobs).

The tutorial's manifest (/work/shared/data/photodemo-manifest.txt) points at a host that is not
reachable here, so a local HTTP server answers the SAME paths (the manifest's host is replaced by
127.0.0.1:PORT) with photo-like JPEGs (condorkit.demo, 1.2-3.1 MP, the corpus of
bench/bundle_bench.py): each path gets one of the 200 images, chosen by a hash of the path.

Contenders (built by bench/bundle_bench.py into bench/corpus/bundles/), run interleaved (A B C,
then C B A), each from `condorkit submit` to `condorkit wait` done:

  before          the interpreter bundle with the fast kernel (106.7 MB), unpacked by every job
                  (node cache off: the wrapper of main did that)
  after-nocache   the wheel-set bundle (pillow), unpacked by every job
  after           the wheel-set bundle with the node cache: unpacked once on the node, then reused
                  (the cache is emptied before each run, so the run pays one cold unpack)

Per job, from its stderr and results: setup (wrapper start to program start: sha256, unpack or
cache lookup, interpreter check), overhead (the wrapper's wall time minus the program's measuring
loop: setup, interpreter start, imports, writing the results), compute (the program's own
measuring time). HTCondor's transfer of the inputs happens before the wrapper starts and is in
the pool wall time only. Needs root, the pool
(`scripts/condor-pool up`) and the bundles (`python bench/bundle_bench.py --quick` builds them).

    python bench/photodemo_pool.py              # 2 rounds (~10 min)
    python bench/photodemo_pool.py --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from perf_common import BENCH, ROOT, log, machine, markdown, write_result

MANIFEST = Path("/work/shared/data/photodemo-manifest.txt")
POOL = Path(os.environ.get("CONDORKIT_POOL_DIR", "/var/lib/condorkit-pool"))
WORK = POOL / "shared" / "bench-photodemo"
HOST_LINE = re.compile(r"condorkit-wrapper: host=(\S+) .* started=([0-9.]+) setup=([0-9.]+)s")
WALL_LINE = re.compile(r"condorkit-wrapper: done: wall=([0-9.]+)s")
BUNDLE_LINE = re.compile(r"members \((\d+) MB\) (.+?) in ([0-9.]+) s")


def serve(images: list[Path]) -> ThreadingHTTPServer:
    blobs = [p.read_bytes() for p in images]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = blobs[zlib.crc32(self.path.encode()) % len(blobs)]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def ck(*args: str, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "condorkit", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)


def pool_exec(*args: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "condor-pool"), "exec", *args], check=False,
                   capture_output=True, timeout=120)


def job_folder(name: str, bundle: Path, port: int, cache: bool) -> Path:
    d = WORK / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    for sub in ("results", "logs"):
        (d / sub).mkdir()
        os.chmod(d / sub, 0o1777)
    shutil.copy(ROOT / "examples" / "photodemo" / "luminance.py", d / "luminance.py")
    text = MANIFEST.read_text().replace("http://stash.osgconnect.net/",
                                        f"http://127.0.0.1:{port}/")
    (d / "manifest.txt").write_text(text)
    shutil.copyfile(bundle, d / bundle.name)
    (d / "condorkit.toml").write_text(
        'program = "luminance.py"\nchunk = 200\nrequest_cpus = 1\nrequest_memory = "512MB"\n'
        f'request_disk = "1GB"\nmax_retries = 1\nbundle = "{bundle.name}"\n')
    if not cache:  # the packaged template plus an environment line
        tpl = (ROOT / "templates" / "submit.sub.j2").read_text()
        tpl = tpl.replace("universe                = vanilla",
                          'universe                = vanilla\n'
                          'environment             = "CONDORKIT_BUNDLE_CACHE=off"')
        (d / "templates").mkdir()
        (d / "templates" / "submit.sub.j2").write_text(tpl)
    return d


def one_run(name: str, bundle: Path, port: int, cache: bool, sha: str) -> dict[str, object]:
    d = job_folder(name, bundle, port, cache)
    pool_exec("rm", "-rf", f"/var/tmp/condorkit-bundles-2000/{sha}")
    t0 = time.monotonic()
    sub = ck("submit", cwd=d)
    if sub.returncode != 0:
        raise SystemExit(f"submit failed: {sub.stderr}")
    waited = ck("wait", "--timeout", "1500", cwd=d)
    wall = time.monotonic() - t0
    if waited.returncode != 0:
        raise SystemExit(f"wait failed ({name}): {waited.stderr[-2000:]}")
    agg = ck("aggregate", "--json", "-o", str(d / "scatter.html"), cwd=d)
    report = json.loads(agg.stdout)
    jobs = []
    for res in sorted((d / "results").glob("results-*.json")):
        doc = json.loads(res.read_text())
        start = res.stem.split("-")[1]
        err = (d / "logs" / f"chunk-{start}.err").read_text()
        h, b, w = HOST_LINE.search(err), BUNDLE_LINE.search(err), WALL_LINE.search(err)
        if not (h and b and w):
            raise SystemExit(f"no wrapper lines in chunk {start}:\n{err}")
        jobs.append({"start": int(start), "setup": float(h.group(3)), "wall": float(w.group(1)),
                     # everything in the job but the program's measuring loop: wrapper, bundle,
                     # interpreter start and imports, writing the results
                     "first_row": float(w.group(1)) - float(doc["elapsed_s"]),
                     "compute": float(doc["elapsed_s"]), "how": b.group(2),
                     "unpack": float(b.group(3)), "kernel": doc.get("kernel"),
                     "errors": doc["errors"]})
    shutil.rmtree(d / "manifest.txt", ignore_errors=True)
    return {"name": name, "wall": wall, "found": report["found"], "errors": report["errors"],
            "missing": report["missing_count"], "jobs": jobs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    from condorkit.model.bundlecheck import bundle_check

    if "CONDOR_CONFIG" not in os.environ:
        os.environ["CONDOR_CONFIG"] = str(POOL / "client" / "condor_config")
    bundles = {"before": next((BENCH / "corpus" / "bundles" / "before").glob("ckenv-*.tar.gz")),
               "after": next((BENCH / "corpus" / "bundles" / "after").glob("ckwheels-*.tar.gz"))}
    images = sorted((BENCH / "corpus" / "bundle-200").glob("*.jpg"))
    if len(images) < 200:
        raise SystemExit("run bench/bundle_bench.py first (it makes the corpus and the bundles)")
    server = serve(images)
    port = server.server_address[1]
    contenders = [("before", bundles["before"], False), ("after-nocache", bundles["after"], False),
                  ("after", bundles["after"], True)]
    runs: dict[str, list[dict[str, object]]] = {c[0]: [] for c in contenders}
    try:
        for r in range(args.rounds):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for name, bundle, cache in order:
                run = one_run(name, bundle, port, cache, bundle_check(bundle).sha256)
                runs[name].append(run)
                jobs = run["jobs"]
                assert isinstance(jobs, list)
                log(f"round {r + 1} {name}: wall {run['wall']:.1f} s, rows {run['found']}, "
                    f"errors {run['errors']}, median setup "
                    f"{statistics.median(j['setup'] for j in jobs):.2f} s, compute "
                    f"{statistics.median(j['compute'] for j in jobs):.2f} s")
    finally:
        server.shutdown()
    head = ["contender", "bundle MB", "pool wall s (median)", "rows found", "row errors",
            "setup s: median (max)", "overhead s: median (max)", "compute s: median",
            "overhead / compute: median (mean)"]
    rows = []
    for name, bundle, _ in contenders:
        rs = runs[name]
        jobs = [j for run in rs for j in run["jobs"]]  # type: ignore[union-attr]
        shares = [j["first_row"] / j["compute"] for j in jobs]
        rows.append([name, f"{bundle.stat().st_size / 1e6:.1f}",
                     f"{statistics.median(float(run['wall']) for run in rs):.1f}",
                     "/".join(str(run["found"]) for run in rs),
                     "/".join(str(run["errors"]) for run in rs),
                     f"{statistics.median(j['setup'] for j in jobs):.2f} "
                     f"({max(j['setup'] for j in jobs):.2f})",
                     f"{statistics.median(j['first_row'] for j in jobs):.2f} "
                     f"({max(j['first_row'] for j in jobs):.2f})",
                     f"{statistics.median(j['compute'] for j in jobs):.2f}",
                     f"{statistics.median(shares):.1%} ({statistics.mean(shares):.1%})"])
    text = (f"# photodemo_pool: {args.rounds} round(s), 5,576 rows, chunk 200\n\n{machine()}\n\n"
            + markdown(head, rows) + "\n")
    print(text)
    write_result("photodemo_pool", text, runs)


if __name__ == "__main__":
    main()
