"""Pool scale benchmark: N chunks (default 10,000) in ONE ``Schedd.submit`` with late
materialization, then `condorkit status` on that cluster.

Builds a job folder of N one-row chunks (a trivial standard-library program) under the test
pool's shared directory, and measures, --repeat times, interleaved:

- ``condorkit submit`` with ``max_materialize``/``max_idle`` (the schedd keeps only that many
  jobs materialized; the rest stay in the cluster's factory);
- ``condorkit status`` right after, and again while the jobs run (each a fresh CLI process: one
  queue query and one history query for the whole cluster, never one query per job);
- the floor: the same CLI process doing ``condorkit --help`` (interpreter + imports);

then removes the cluster. Needs a running pool: the multi-node one by default
(``scripts/condor-pool multi up``; its schedd requires a project name, set here).
Prints medians; ``--json`` prints every figure.

    python bench/pool_scale_bench.py                       # 10,000 chunks, 3 repeats
    python bench/pool_scale_bench.py --chunks 2000 --repeat 1
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

REPO = Path(__file__).resolve().parents[1]
POOLS = {"multi": Path("/var/lib/condorkit-pool-multi"), "single": Path("/var/lib/condorkit-pool")}
PROGRAM = "import sys, ckjob\nckjob.map_rows(sys.argv[1], sys.argv[2], lambda r: {'n': 1})\n"


def make_job(parent: Path, chunks: int, max_materialize: int, max_idle: int) -> Path:
    d = Path(tempfile.mkdtemp(prefix="scale-", dir=parent))
    os.chmod(d, 0o1777)
    for sub in ("results", "logs"):
        (d / sub).mkdir(mode=0o1777)
        os.chmod(d / sub, 0o1777)
    (d / "prog.py").write_text(PROGRAM)
    (d / "manifest.txt").write_text("".join(f"item{i}\n" for i in range(chunks)))
    (d / "condorkit.toml").write_text(
        'program = "prog.py"\ncolumns = ["item:str"]\nchunk = 1\nrequest_memory = "32MB"\n'
        f'request_disk = "1MB"\nmax_retries = 0\nproject_name = "condorkit-bench"\n'
        f"max_materialize = {max_materialize}\nmax_idle = {max_idle}\n")
    return d


def ck(d: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "condorkit", *args], cwd=d, capture_output=True,
                       text=True, timeout=1800, check=False)
    return time.perf_counter() - t0, p


def remove(cluster: int) -> None:
    import htcondor2

    ad = htcondor2.Collector().query(htcondor2.AdTypes.Schedd)[0]
    htcondor2.Schedd(ad).act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}",
                             reason=("benchmark done", 0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-materialize", type=int, default=200)
    ap.add_argument("--max-idle", type=int, default=100)
    ap.add_argument("--pool", choices=sorted(POOLS), default="multi")
    ap.add_argument("--run-s", type=float, default=5.0,
                    help="let the jobs run this long before the second status")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = POOLS[args.pool]
    os.environ["CONDOR_CONFIG"] = str(base / "client" / "condor_config")
    parent = base / "shared" / "bench"
    parent.mkdir(mode=0o1777, exist_ok=True)
    os.chmod(parent, 0o1777)
    figures: dict[str, list[float]] = {"prepare": [], "submit": [], "status": [],
                                       "status_running": [], "floor": []}
    notes = []
    for n in range(args.repeat):
        floor, _ = ck(REPO, "--help")
        d = make_job(parent, args.chunks, args.max_materialize, args.max_idle)
        t_prep, p = ck(d, "mksubmit")  # chunking + rows files, so submit measures the submit
        assert p.returncode == 0, p.stderr
        t_sub, p = ck(d, "submit", "--json")
        assert p.returncode == 0, p.stderr
        cluster = json.loads(p.stdout)["record"]["cluster"]
        try:
            t_st, p = ck(d, "status", "--json")
            assert p.returncode == 0, p.stderr
            first = json.loads(p.stdout)["counts"]
            time.sleep(args.run_s)
            t_run, p = ck(d, "status", "--json")
            assert p.returncode == 0, p.stderr
            later = json.loads(p.stdout)["counts"]
        finally:
            remove(cluster)
            shutil.rmtree(d, ignore_errors=True)
        for k, v in (("prepare", t_prep), ("submit", t_sub), ("status", t_st),
                     ("status_running", t_run), ("floor", floor)):
            figures[k].append(v)
        notes.append({"cluster": cluster, "status_counts": first, "later_counts": later})
        print(f"pass {n + 1}: submit {t_sub:.2f}s, status {t_st:.2f}s / {t_run:.2f}s "
              f"(floor {floor:.2f}s); {later}", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in figures.items()}
    if args.json:
        print(json.dumps({"args": vars(args), "figures": figures, "medians": med,
                          "notes": notes}, indent=1))
        return 0
    print(f"{args.chunks} chunks, max_materialize {args.max_materialize}, max_idle "
          f"{args.max_idle}, {args.pool} pool, median of {args.repeat}:")
    print(f"  mksubmit (chunking, rows files)   {med['prepare']:7.2f} s")
    print(f"  condorkit submit (one submit)     {med['submit']:7.2f} s")
    print(f"  condorkit status, after submit    {med['status']:7.2f} s "
          f"({med['status'] / med['floor']:.1f}x the CLI floor {med['floor']:.2f} s)")
    print(f"  condorkit status, jobs running    {med['status_running']:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
