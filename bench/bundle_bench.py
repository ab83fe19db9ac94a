"""What a bundle costs each job: size, unpack, interpreter start, against the chunk's compute.

For the photodemo at chunk 200 (issue 13): the time from job start to the program's first row
(transfer + checksum + unpack + interpreter start + imports) must stay under 10 % of the chunk's
compute, with a tarball of at most 30 MB. Candidates (built once into bench/corpus/bundles/):

  before        `condorkit bundle --ship-python` of the old photodemo requirements (pillow, numpy,
                simplejpeg, opencv-python-headless): interpreter + fast kernel
  py-pillow     `--ship-python` with pillow only (the old docs' figure)
  wheels-fast   wheel set for one CPython (the worker's 3.11) with the fast kernel's packages
  wheels-full   wheel sets for CPython 3.9-3.14, pillow, nothing left out
  after         wheel sets for CPython 3.9-3.14 of examples/photodemo/requirements.txt (pillow,
                minus AVIF, fonts, colour management, Tk): what `condorkit bundle` makes now

Each round, for each candidate (interleaved, order reversed every other round), through the REAL
wrapper (wrappers/wrapper.sh) with the photodemo's luminance.py and the worker's python3 being
/usr/bin/python3 (the system's, like a worker's):
  transfer  copy of the tarball into a fresh scratch folder (what HTCondor's local transfer does)
  cold      wrapper on a 1-row chunk, no node cache: sha256 + decompress + check + extract +
            interpreter start + the program's imports + one tiny row ("to first row")
  warm      the same with the tree already in the node cache (every later job on a node)
  compute   the program's own measuring time of a 200-row chunk of photo-like JPEGs (1.2-3.1 MP,
            condorkit.demo; files read locally, fetch-ahead on) with the kernel the bundle gives
Figures are medians over the rounds; "share" = (transfer + cold or warm) / compute.

    python bench/bundle_bench.py              # 3 rounds (~6 min, builds ~2 min the first time)
    python bench/bundle_bench.py --quick      # 1 round, 40-row chunk: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perf_common import BENCH, ROOT, log, machine, markdown, write_result

from condorkit.demo import write_corpus
from condorkit.model.bundle import build_bundle, read_manifest
from condorkit.model.bundlecheck import bundle_check
from condorkit.model.wheelset import build_wheels

OUT = BENCH / "corpus" / "bundles"
WORKER_PYTHON = "/usr/bin/python3"
SIZES = ((1280, 960), (1600, 1200), (960, 1280), (2048, 1536))
FAST = "pillow>=10\nnumpy>=1.24\nsimplejpeg>=1.7\nopencv-python-headless>=4.8\n"
LINE = re.compile(r"members \((\d+) MB\) (.+?) in ([0-9.]+) s \(sha256 ok\); python (\S+) "
                  r"started in ([0-9.]+) s")


def build(name: str) -> Path:
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    req = folder / "requirements.txt"
    photodemo = (ROOT / "examples" / "photodemo" / "requirements.txt").read_text()
    text = {"before": FAST, "py-pillow": "pillow>=10\n", "wheels-fast": FAST,
            "wheels-full": "pillow>=10\n", "after": photodemo}[name]
    req.write_text(text)
    if name in ("before", "py-pillow"):
        res = build_bundle(req, folder)
    elif name == "wheels-fast":
        res = build_wheels(req, folder, pythons=("3.11",))
    else:
        res = build_wheels(req, folder)
    log(f"{name}: {res.path.name} {res.size_bytes / 1e6:.1f} MB "
        f"({'reused' if res.reused else f'built in {res.build_s:.0f} s'})")
    return res.path


def unpacked_mb(tarball: Path) -> tuple[float, int]:
    c = bundle_check(tarball)
    return c.bytes / 1e6, c.members


def scratch_for(base: Path, bundle: Path, rows_file: Path) -> tuple[Path, float]:
    scratch = Path(tempfile.mkdtemp(prefix="s-", dir=base))
    for name in ("wrapper.sh", "ckjob.py"):
        shutil.copy(ROOT / "wrappers" / name, scratch / name)
    shutil.copy(ROOT / "examples" / "photodemo" / "luminance.py", scratch / "luminance.py")
    shutil.copy(rows_file, scratch / "rows-1.jsonl")
    t0 = time.perf_counter()
    shutil.copyfile(bundle, scratch / bundle.name)
    return scratch, time.perf_counter() - t0


def run_wrapper(scratch: Path, bundle: Path, cache: str) -> tuple[float, str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "CONDORKIT_BUNDLE_CACHE": cache,
           "CONDORKIT_PYTHON": WORKER_PYTHON, "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "wrapper.sh", "-b", bundle.name, "-k",
                           bundle_check(bundle).arg, "luminance.py", "rows-1.jsonl",
                           "results-1.json"], cwd=scratch, env=env, capture_output=True,
                          text=True, timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"wrapper failed for {bundle.name}:\n{proc.stderr}")
    return wall, proc.stderr


def rows_file(path: Path, files: list, n: int) -> Path:
    header = {"format": "condorkit-rows/1", "start": 1, "count": n, "key": "bench",
              "columns": ["url", "year"]}
    lines = [json.dumps(header)] + [
        json.dumps({"row": i + 1, "line": i + 1, "url": str(files[i % len(files)].path),
                    "year": files[i % len(files)].year}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=0)
    args = ap.parse_args()
    # the repository root holds an html/ folder that shadows the standard library's html
    # (which virtualenv imports when a bundle is built): condorkit is installed, drop the root
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    rounds = args.rounds or (1 if args.quick else 3)
    chunk = 40 if args.quick else 200
    names = ["before", "py-pillow", "wheels-fast", "wheels-full", "after"]
    bundles = {n: build(n) for n in names}
    corpus = BENCH / "corpus" / "bundle-200"
    files = write_corpus(corpus, 200, sizes=SIZES, seed=13)
    tiny = write_corpus(BENCH / "corpus" / "bundle-tiny", 1, sizes=((64, 48),), seed=1)
    work = Path(tempfile.mkdtemp(prefix="ck-bundle-bench-"))
    one = rows_file(work / "rows-one.jsonl", tiny, 1)
    full = rows_file(work / "rows-full.jsonl", files, chunk)
    caches = {n: work / f"cache-{n}" for n in names}
    for n in names:  # populate each node cache once (not timed)
        s, _ = scratch_for(work, bundles[n], one)
        run_wrapper(s, bundles[n], str(caches[n]))
        shutil.rmtree(s)
    data: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    info: dict[str, dict[str, str]] = {n: {} for n in names}

    def add(n: str, key: str, v: float) -> None:
        data[n].setdefault(key, []).append(v)

    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            b = bundles[n]
            for f in files:  # warm the page cache for the chunk's images (bench NOTES)
                f.path.read_bytes()
            s, copy_s = scratch_for(work, b, one)
            wall, err = run_wrapper(s, b, "off")
            m = LINE.search(err)
            assert m, err
            add(n, "transfer", copy_s)
            add(n, "cold", wall)
            add(n, "unpack", float(m.group(3)))
            add(n, "start", float(m.group(5)))
            info[n]["python"] = m.group(4)
            shutil.rmtree(s)
            s, _ = scratch_for(work, b, one)
            wall, err = run_wrapper(s, b, str(caches[n]))
            add(n, "warm", wall)
            shutil.rmtree(s)
            s, _ = scratch_for(work, b, full)
            run_wrapper(s, b, str(caches[n]))
            doc = json.loads((s / "results-1.json").read_text())
            add(n, "compute", float(doc["elapsed_s"]))
            add(n, "cpu", float(doc["cpu_s"]))
            info[n]["kernel"] = doc["kernel"]
            shutil.rmtree(s)
            log(f"round {r + 1}/{rounds} {n}: transfer {copy_s:.3f} s, "
                f"cold {data[n]['cold'][-1]:.2f} s, warm {data[n]['warm'][-1]:.2f} s, "
                f"compute {data[n]['compute'][-1]:.2f} s "
                f"({doc['kernel']})")
    shutil.rmtree(work, ignore_errors=True)

    def med(n: str, k: str) -> float:
        return statistics.median(data[n][k])

    head = ["bundle", "kind", "MB", "unpacked MB", "members", "glibc", "kernel",
            "transfer s", "unpack s", "py start s", "to first row: cold s", "warm s",
            f"compute ({chunk} rows) s", "share cold", "share warm"]
    rows = []
    for n in names:
        m = read_manifest(bundles[n])
        mb, members = unpacked_mb(bundles[n])
        comp = med(n, "compute")
        kind = "wheels " + m.get("sets", "") if "sets" in m else "python " + m.get("python", "")
        rows.append([n, kind, f"{bundles[n].stat().st_size / 1e6:.1f}", f"{mb:.0f}",
                     str(members), m.get("glibc", ""), info[n]["kernel"],
                     f"{med(n, 'transfer'):.3f}", f"{med(n, 'unpack'):.2f}",
                     f"{med(n, 'start'):.2f}", f"{med(n, 'cold'):.2f}", f"{med(n, 'warm'):.2f}",
                     f"{comp:.2f}",
                     f"{(med(n, 'transfer') + med(n, 'cold')) / comp:.1%}",
                     f"{(med(n, 'transfer') + med(n, 'warm')) / comp:.1%}"])
    text = (f"# bundle_bench: {rounds} round(s), chunk {chunk}, worker python "
            f"{WORKER_PYTHON}\n\n{machine()}\n\n" + markdown(head, rows) + "\n")
    print(text)
    write_result("bundle", text, {"rounds": rounds, "chunk": chunk, "data": data, "info": info})


if __name__ == "__main__":
    main()
