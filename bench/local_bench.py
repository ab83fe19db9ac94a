"""Benchmark: `condorkit run -j2` against GNU parallel, paexec, xargs -P2 and a sequential run.

Corpus: N photo-like JPEGs of 2-4 megapixels (``condorkit.demo.write_corpus``; mostly RGB, with
grayscale, progressive and EXIF-rotated variants), generated once into ``bench/corpus/nN/``.
Every contender computes the photodemo luminance of every image on 2 workers (except the
sequential ones) and is timed from the outside, start-up included:

- ``limit``: the kernel (``luminance()`` of examples/photodemo/luminance.py) in one plain
  in-process loop on one core; the physical limit is 2 x its rate (timed inside the loop);
- ``ideal``: no engine at all: two such loops started together on two cores, the images split
  between them by their times in the latest ``limit`` pass (longest first, each to the less
  loaded loop), timed inside from the common start to the later end. What two busy cores really
  give (they share caches and memory bandwidth, and a VM's host), so ``% of ideal`` is the
  share any engine can still win; ``ideal+start`` is the same pass timed from the outside, the
  two interpreters' start and imports included: the floor for an engine that starts Python;
- ``sequential``: the photodemo program itself over all rows in one process;
- ``condorkit-cN``: ``condorkit run -j2`` on a job whose chunk size is N (scratch folders,
  validation, joblog and all; a fresh job folder state each pass), in persistent workers (one
  Python per worker with the program's imports loaded, each piece forked in its scratch
  folder); ``-chunk`` runs exactly the job's chunks (``--granularity chunk``), ``-random`` uses
  ``--dispatch random``, ``-fresh`` starts the wrapper for every piece (``--no-persistent``),
  ``-noahead`` reads each image only when its row is due (``PHOTODEMO_WINDOW=0``: no kernel
  read-ahead of the next rows' files, which matters with ``--cache cold``);
- ``parallel``: GNU parallel -j2 running a tutorial-style one-image-per-process script;
- ``xargs``: xargs -P2 -L1 with the same script, each writing its own output file;
- ``paexec``: paexec -n +2 with a persistent Python calculator (one process per worker).

Passes are interleaved (round 1: A B C ..., round 2: ... C B A, ...) and the corpus is read once
right before each pass so the page cache is warm. The machine is shared: before each pass the
benchmark waits (up to --max-wait s) until other processes use < 8% of the CPUs, and a pass during
which other processes used more than --noise CPU seconds per wall second (from /proc/stat minus
this benchmark's own rusage) is discarded and re-run. Every pass's output is checked (one value per
image, equal to the in-process kernel). The table (median wall time, rows/s, % of the limit,
speed x GNU parallel, wall time x paexec) goes to stdout and to
bench/results/local-bench-TIMESTAMP.{md,json}. The sources are byte-compiled first, as an
installed package is (pip compiles at install; PYTHONDONTWRITEBYTECODE=1 would otherwise make
every start compile them anew).

    python bench/local_bench.py             # 1,000 images, 3 rounds (about 25 minutes)
    python bench/local_bench.py --quick     # 100 images, 1 round: a sanity check
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PHOTODEMO = REPO / "examples" / "photodemo"
SIZES = ((2048, 1536), (1536, 2048), (2400, 1600), (1800, 1200))
VARIANTS = ("rgb", "rgb", "gray", "rgb", "progressive", "rgb", "exif-rotated", "rgb")

TUTORIAL = r'''#!/usr/bin/env python3
"""Tutorial style: the luminance of ONE image per process. Usage: tut.py IMAGE YEAR [OUT]"""
import math, sys
from PIL import Image, ImageStat

def luminance(path):
    with Image.open(path) as im:
        if im.mode == "L":
            return ImageStat.Stat(im).rms[0] / 256
        if im.mode != "RGB":
            im = im.convert("RGB")
        r, g, b = ImageStat.Stat(im).rms
        return math.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 256

line = "%s %s %r\n" % (sys.argv[1], sys.argv[2], luminance(sys.argv[1]))
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as fh:
        fh.write(line)
else:
    sys.stdout.write(line)
'''

CALCULATOR = r'''#!/usr/bin/env python3
"""paexec calculator: one task per line (IMAGE YEAR), answer line + empty end-of-task line."""
import sys
sys.path[:0] = [%(photodemo)r, %(wrappers)r]
from luminance import luminance
while True:
    task = sys.stdin.readline()
    if not task:
        break
    path, year = task.split()
    sys.stdout.write("%%s %%s %%r\n\n" %% (path, year, luminance(path)))
    sys.stdout.flush()
'''

LOOP = r'''
import json, sys, time
sys.path[:0] = [%(photodemo)r, %(wrappers)r]
from luminance import fast_kernel, luminance
fast_kernel()  # its imports happen before the clock starts
paths = [line.split()[0] for line in open(%(manifest)r)]
values, times = {}, {}
t0 = time.perf_counter()
for p in paths:
    t = time.perf_counter()
    values[p] = luminance(p)
    times[p] = time.perf_counter() - t
print(json.dumps({"loop_s": time.perf_counter() - t0, "values": values, "times": times}))
'''

# one of the two halves of the ideal run: imports first, then "ready", then the loop on "go"
HALF = r'''
import json, sys, time
sys.path[:0] = [%(photodemo)r, %(wrappers)r]
from luminance import fast_kernel, luminance
fast_kernel()
paths = json.loads(open(sys.argv[1]).read())
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.readline()
t0 = time.perf_counter()
values = {p: luminance(p) for p in paths}
print(json.dumps({"loop_s": time.perf_counter() - t0, "values": values}))
'''


# ----------------------------------------------------------------------------- corpus


def _write_part(args: tuple[str, int, int]) -> list[tuple[str, int]]:
    from condorkit.demo import write_corpus

    folder, n, seed = args
    files = write_corpus(folder, n, sizes=SIZES, seed=seed, variants=VARIANTS)
    return [(str(f.path), f.year) for f in files]


def corpus(n: int) -> Path:
    """bench/corpus/nN/ with the images (two halves, made in parallel) and manifest.txt."""
    folder = BENCH / "corpus" / f"n{n}"
    manifest = folder / "manifest.txt"
    if manifest.is_file() and len(manifest.read_text().splitlines()) == n:
        return manifest
    shutil.rmtree(folder, ignore_errors=True)
    halves = [(str(folder / "a"), n - n // 2, 11), (str(folder / "b"), n // 2, 12)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        parts = list(pool.map(_write_part, halves))
    lines = [f"{p} {y}\n" for part in parts for p, y in part]
    manifest.write_text("".join(lines))
    print(f"corpus: {n} images in {time.perf_counter() - t0:.0f}s -> {folder}", file=sys.stderr)
    return manifest


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot (/proc/stat; steal counts as busy)."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = f
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def own_cpu() -> float:
    """CPU seconds used by this process and its waited-for children (and theirs)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def become_subreaper() -> None:
    """Orphaned descendants (paexec does not wait for its calculators) are re-parented to this
    process, so reaping them counts their CPU time in RUSAGE_CHILDREN."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def wait_quiet(max_wait: float, busy_limit: float = 0.08) -> float:
    """Wait until other processes use less than ``busy_limit`` of the CPUs over 2 s."""
    t0 = time.monotonic()
    while True:
        b0, t0_ = cpu_jiffies()
        time.sleep(2)
        b1, t1 = cpu_jiffies()
        frac = (b1 - b0) / max(t1 - t0_, 1)
        if frac < busy_limit or time.monotonic() - t0 > max_wait:
            return frac
        time.sleep(3)


def warm(manifest: Path) -> None:
    for line in manifest.read_text().splitlines():
        Path(line.split()[0]).read_bytes()


def evict(manifest: Path) -> None:
    """Drop the images (only them) from the page cache, as after a reboot or a large copy: the
    user's pictures on disk, not in memory (their clean pages go; no root needed)."""
    os.sync()
    for line in manifest.read_text().splitlines():
        fd = os.open(line.split()[0], os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------- contenders


def python_env() -> dict[str, str]:
    """The interpreter running this benchmark (and condorkit) first on PATH, for every contender.

    Not its resolved base interpreter: in a venv only the venv's own ``bin/python3`` sees the
    venv's packages (the issue-11 blind spot). Not a pyenv shim either (~0.2 s per start)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDORKIT_")}
    env["PATH"] = os.path.dirname(os.path.abspath(sys.executable)) + ":" + env["PATH"]
    return env


def parse_lines(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[0]] = float(parts[2])
    return out


class Bench:
    def __init__(self, manifest: Path, work: Path) -> None:
        self.manifest = manifest
        self.n = len(manifest.read_text().splitlines())
        self.work = work
        self.env = python_env()
        self.py = os.path.abspath(sys.executable)
        work.mkdir(parents=True, exist_ok=True)
        (work / "tut.py").write_text(TUTORIAL)
        (work / "calc.py").write_text(CALCULATOR % {"photodemo": str(PHOTODEMO),
                                                     "wrappers": str(REPO / "wrappers")})
        (work / "tasks.txt").write_text(self.manifest.read_text())
        from condorkit.model.config import load_config
        from condorkit.model.job import prepare

        self.seq_job = self.job("seq", self.n)  # one chunk of every row, made once
        prepare(self.seq_job, load_config(self.seq_job, {}, env={}))
        shutil.copy(REPO / "wrappers" / "ckjob.py", self.seq_job)
        self.reference: dict[str, float] = {}
        self.loop_s: list[float] = []

    def sh(self, cmd: list[str] | str, env: dict[str, str] | None = None,
           **kw: Any) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(cmd, env=env or self.env, text=True, capture_output=True,
                             shell=isinstance(cmd, str), **kw)
        if res.returncode != 0:
            raise RuntimeError(f"{cmd} failed ({res.returncode}): {res.stderr[-2000:]}")
        return res

    # each contender: run once, return {image: value}
    def limit(self) -> dict[str, float]:
        code = LOOP % {"photodemo": str(PHOTODEMO), "wrappers": str(REPO / "wrappers"),
                       "manifest": str(self.manifest)}
        doc = json.loads(self.sh([self.py, "-c", code]).stdout)
        self.last_loop = float(doc["loop_s"])
        self.image_s = {k: float(v) for k, v in doc["times"].items()}
        return {k: float(v) for k, v in doc["values"].items()}

    def ideal(self) -> dict[str, float]:
        loads, halves = [0.0, 0.0], [[], []]  # type: ignore[var-annotated]
        for path, sec in sorted(self.image_s.items(), key=lambda kv: -kv[1]):
            k = loads.index(min(loads))
            loads[k] += sec
            halves[k].append(path)
        code = HALF % {"photodemo": str(PHOTODEMO), "wrappers": str(REPO / "wrappers")}
        procs = []
        t0 = time.perf_counter()
        for k, half in enumerate(halves):
            f = self.work / f"half{k}.json"
            f.write_text(json.dumps(half))
            procs.append(subprocess.Popen([self.py, "-c", code, str(f)], env=self.env,
                                          text=True, stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE))
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        docs = [json.loads(p.communicate()[0]) for p in procs]
        self.last_ideal = max(float(d["loop_s"]) for d in docs)
        self.last_ideal_started = time.perf_counter() - t0
        return {k: float(v) for d in docs for k, v in d["values"].items()}

    def sequential(self) -> dict[str, float]:
        job = self.seq_job
        (job / "out.json").unlink(missing_ok=True)
        self.sh([self.py, str(job / "luminance.py"), str(job / "chunks" / "rows-1.jsonl"),
                 str(job / "out.json")], cwd=job)
        return self.records([job / "out.json"])

    def job(self, name: str, chunk: int) -> Path:
        job = self.work / name
        shutil.rmtree(job, ignore_errors=True)
        job.mkdir()
        shutil.copy(PHOTODEMO / "luminance.py", job)
        shutil.copy(self.manifest, job / "manifest.txt")
        (job / "condorkit.toml").write_text(
            f'program = "luminance.py"\ncolumns = ["url:url", "year:int"]\nchunk = {chunk}\n')
        return job

    def records(self, paths: list[Path]) -> dict[str, float]:
        out = {}
        for p in paths:
            for r in json.loads(p.read_text())["records"]:
                out[r["url"]] = r["luminance"]
        return out

    def condorkit(self, chunk: int, *extra: str,
                  env: dict[str, str] | None = None) -> Callable[[], dict[str, float]]:
        def go() -> dict[str, float]:
            job = self.job("ck", chunk)
            res = self.sh([self.py, "-m", "condorkit", "run", "-C", str(job), "-j", "2",
                           "--json", *extra], env={**self.env, **(env or {})})
            report = json.loads(res.stdout)
            self.last_report = report
            return self.records(sorted((job / "results").glob("results-*.json")))
        return go

    def parallel(self) -> dict[str, float]:
        res = self.sh(["parallel", "-j2", "--colsep", " ", self.py, str(self.work / "tut.py"),
                       "{1}", "{2}", "::::", str(self.work / "tasks.txt")])
        return parse_lines(res.stdout)

    def xargs(self) -> dict[str, float]:
        outdir = self.work / "xargs-out"
        shutil.rmtree(outdir, ignore_errors=True)
        outdir.mkdir()
        tasks = self.work / "xargs-tasks.txt"
        tasks.write_text("".join(f"{line.strip()} {outdir}/{i}.txt\n" for i, line in
                                 enumerate(self.manifest.read_text().splitlines())))
        self.sh(f"xargs -P2 -L1 {self.py} {self.work / 'tut.py'} < {tasks}")
        return parse_lines("".join(p.read_text() for p in outdir.iterdir()))

    def paexec(self) -> dict[str, float]:
        res = self.sh(f"paexec -n +2 -c '{self.py} {self.work / 'calc.py'}' "
                      f"< {self.work / 'tasks.txt'}")
        return parse_lines(res.stdout)


def check(name: str, got: dict[str, float], reference: dict[str, float]) -> None:
    if set(got) != set(reference):
        raise RuntimeError(f"{name}: {len(got)} values for {len(reference)} images")
    bad = [k for k in got if not math.isclose(got[k], reference[k], rel_tol=1e-9, abs_tol=1e-12)]
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} values differ from the kernel, e.g. {bad[0]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100 images, 1 round")
    ap.add_argument("--only", nargs="*", help="contender names (default: all)")
    ap.add_argument("--out", type=Path, default=BENCH / "results")
    ap.add_argument("--noise", type=float, default=0.05, help="discard a pass when other "
                    "processes used more than this many CPU seconds per second of it")
    ap.add_argument("--retries", type=int, default=3, help="re-runs of a noisy pass")
    ap.add_argument("--cache", choices=("warm", "cold"), default="warm",
                    help="the images in the page cache before each pass (warm: read just "
                    "before it), or not (cold: dropped, as pictures on disk are); the limit "
                    "and ideal passes always run warm")
    ap.add_argument("--chunk", type=int, action="append", default=[], metavar="ROWS",
                    help="also run condorkit-cROWS (e.g. --chunk 200: the tutorial's "
                    "mksubmit 200; repeatable)")
    ap.add_argument("--max-wait", type=float, default=300,
                    help="seconds to wait for a quiet machine before each pass")
    args = ap.parse_args()
    if args.quick:
        args.images, args.rounds = 100, 1
    for tool in ("parallel", "paexec", "xargs"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install parallel paexec)")
    become_subreaper()
    # bytecode as an installed package has it (pip compiles at install): without it every
    # start of condorkit, the wrappers and the photodemo program compiles their sources anew
    # (a harness with PYTHONDONTWRITEBYTECODE=1 never writes it)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "condorkit"),
                    str(REPO / "wrappers"), str(PHOTODEMO)], check=True)
    manifest = corpus(args.images)
    n = args.images
    b = Bench(manifest, BENCH / "work")
    many, five = max(1, n // 20), math.ceil(n / 5)
    contenders: dict[str, Callable[[], dict[str, float]]] = {
        "limit": b.limit,
        "ideal": b.ideal,
        "sequential": b.sequential,
        f"condorkit-c{many}": b.condorkit(many),
        f"condorkit-c{five}": b.condorkit(five),
        f"condorkit-c{five}-chunk": b.condorkit(five, "--granularity", "chunk"),
        f"condorkit-c{many}-random": b.condorkit(many, "--dispatch", "random", "--seed", "1"),
        f"condorkit-c{many}-fresh": b.condorkit(many, "--no-persistent"),
        f"condorkit-c{many}-noahead": b.condorkit(many, env={"PHOTODEMO_WINDOW": "0"}),
        "parallel": b.parallel,
        "xargs": b.xargs,
        "paexec": b.paexec,
    }
    asked = [f"condorkit-c{rows}" for rows in args.chunk]
    for rows in args.chunk:
        if rows < 1:
            sys.exit(f"--chunk needs at least 1 row, got {rows}")
        contenders.setdefault(f"condorkit-c{rows}", b.condorkit(rows))
    if args.only is not None:  # a --chunk contender was asked for by name: it stays
        contenders = {k: v for k, v in contenders.items()
                      if k in args.only or k in ("limit", "ideal") or k in asked}
    walls: dict[str, list[float]] = {k: [] for k in contenders}
    reports: dict[str, list[dict[str, Any]]] = {}
    names = list(contenders)
    walls["ideal+start"] = []  # filled by the ideal passes
    hz = os.sysconf("SC_CLK_TCK")
    discarded: dict[str, int] = {k: 0 for k in [*contenders, "ideal+start"]}
    for rnd in range(args.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        for name in order:
            for _ in range(args.retries + 1):
                wait_quiet(args.max_wait)
                if args.cache == "cold" and name not in ("limit", "ideal"):
                    evict(manifest)
                else:
                    warm(manifest)
                b0, c0 = cpu_jiffies()[0], own_cpu()
                t0 = time.perf_counter()
                got = contenders[name]()
                wall = time.perf_counter() - t0
                if name == "ideal":  # timed inside: the two loops, not their starts
                    wall = b.last_ideal
                reap_orphans()
                foreign = (cpu_jiffies()[0] - b0) / hz - (own_cpu() - c0)
                if foreign <= args.noise * wall:
                    break
                discarded[name] += 1
                print(f"round {rnd + 1}: {name:<24} {wall:7.2f}s discarded: other processes "
                      f"used {foreign:.1f} CPU s", file=sys.stderr, flush=True)
            if name == "limit":
                b.loop_s.append(b.last_loop)
                b.reference = b.reference or got
            check(name, got, b.reference or got)
            walls[name].append(wall)
            if name == "ideal":
                walls["ideal+start"].append(b.last_ideal_started)
            if name.startswith("condorkit"):
                rep = b.last_report
                reports.setdefault(name, []).append(
                    {k: rep[k] for k in ("pieces", "attempts", "retried", "speculated",
                                         "wall_s")})
            print(f"round {rnd + 1}: {name:<24} {wall:7.2f}s", file=sys.stderr, flush=True)
    rate1 = n / statistics.median(b.loop_s)
    limit_rate = 2 * rate1
    par = n / statistics.median(walls["parallel"]) if "parallel" in walls else None
    pax = statistics.median(walls["paexec"]) if "paexec" in walls else None
    rows = []
    after = names.index("ideal") + 1
    for name in [*names[:after], "ideal+start", *names[after:]]:
        if name == "limit":
            continue
        med = statistics.median(walls[name])
        rate = n / med
        # paired: each round's pass against the same round's limit and paexec passes (they
        # ran minutes apart at most), so a machine that drifts faster or slower between rounds
        # does not move the ratio
        pct_paired = statistics.median(100 * (n / w) / (2 * n / loop)
                                       for w, loop in zip(walls[name], b.loop_s, strict=True))
        ideal_paired = statistics.median(i / w for w, i in zip(walls[name], walls["ideal"],
                                                               strict=True))
        pax_paired = (statistics.median(w / p for w, p in zip(walls[name], walls["paexec"],
                                                                  strict=True))
                      if pax else None)
        rows.append({"contender": name, "median_wall_s": round(med, 2),
                     "rows_per_s": round(rate, 2),
                     "pct_of_limit": round(100 * rate / limit_rate, 1),
                     "pct_of_limit_paired": round(pct_paired, 1),
                     "pct_of_ideal_paired": round(100 * ideal_paired, 1),
                     "x_parallel": round(rate / par, 2) if par else None,
                     "x_paexec_time": round(med / pax, 3) if pax else None,
                     "x_paexec_paired": round(pax_paired, 3) if pax_paired else None,
                     "walls": [round(w, 2) for w in walls[name]],
                     "discarded": discarded[name],
                     "runs": reports.get(name)})
    stamp = time.strftime("%Y%m%d-%H%M%S")
    head = (f"{n} JPEGs of 2-4 MP, {args.cache} page cache, {args.rounds} interleaved "
            f"round(s); kernel in one in-process "
            f"loop: {rate1:.2f} images/s on one core (median of {len(b.loop_s)}), physical limit "
            f"2 x {rate1:.2f} = {limit_rate:.2f} images/s")
    md = [head, "", "| contender | median wall (s) | rows/s | % of limit | % of limit (paired) "
          "| % of ideal (paired) | x GNU parallel (speed) | x paexec (time) | x paexec (paired) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['contender']} | {r['median_wall_s']:.2f} | {r['rows_per_s']:.2f} | "
                  f"{r['pct_of_limit']:.1f} | {r['pct_of_limit_paired']:.1f} | "
                  f"{r['pct_of_ideal_paired']:.1f} | "
                  f"{r['x_parallel'] if r['x_parallel'] else '-'} | "
                  f"{r['x_paexec_time'] if r['x_paexec_time'] else '-'} | "
                  f"{r['x_paexec_paired'] if r['x_paexec_paired'] else '-'} |")
    md.append("")
    md.append("Paired: the median over rounds of each pass against the same round's limit or "
              "paexec pass (robust to a machine that drifts between rounds).")
    noisy = {k: v for k, v in discarded.items() if v}
    md.append("")
    md.append("Passes discarded because other processes used > "
              f"{100 * args.noise:.0f}% of a core during them (re-run): "
              + (", ".join(f"{k} {v}" for k, v in noisy.items()) or "none") + ".")
    text = "\n".join(md) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"local-bench-{stamp}.md").write_text(text)
    (args.out / f"local-bench-{stamp}.json").write_text(json.dumps(
        {"images": n, "rounds": args.rounds, "loop_s": b.loop_s, "rate1": rate1,
         "limit_rate": limit_rate, "cache": args.cache, "rows": rows,
         "command": " ".join(sys.argv)}, indent=2))
    print(text)
    print(f"written: {args.out / f'local-bench-{stamp}.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
