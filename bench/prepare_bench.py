"""Preparing a job of N rows: ``condorkit.model.job.prepare`` alone (issue 14).

The job of ``rows_bench.py`` (``item:str``, one short word per row, chunk 200: N/200 rows files),
or with ``--photo`` the photodemo's columns (``url:url year:int``). Contenders, interleaved per
round (A B C ..., then ... C B A), each in the same process:

- ``reference``: the two-pass preparation it replaced, kept here as a yardstick: a validating
  scan, then a second pass that parses every line again and encodes every row twice with
  ``json`` (once without ``line`` for the key), writing each rows file (temporary file + rename);
- ``prepare``: ``prepare(write=True)`` with no ``chunks/`` yet (a fresh job);
- ``prepare-again``: the same once more: every rows file is already in place (compared, kept);
- ``keys-only``: ``prepare(write=False)`` (``aggregate``/``status``: keys, no files);
- ``files-only``: the file-system floor: the same number of files with the same bytes written to
  a folder and renamed into another (what any preparation must do), nothing else.

The shared test machine's file creation cost varies a lot with the other users' disk activity,
so ``files-only`` is measured in the same rounds, and each contender's CPU time (user +
system) is shown beside its wall time. Where the job folder lives matters: creating a file costs
the kernel ~0.05 ms in a quiet folder of this machine's disk but up to ~0.8 ms (CPU, in the
inode allocator) under a crowded ``/tmp`` of the same disk, so the folders go to ``bench/work``
unless ``--dir`` says otherwise. Every round checks that ``prepare`` wrote
exactly the reference's bytes and keys.

    python bench/prepare_bench.py                  # 1,000,000 rows, 3 rounds
    python bench/prepare_bench.py --rows 200000 --rounds 1 --photo
    python bench/prepare_bench.py --dir /tmp       # job folders in /tmp
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from condorkit.wrappers import ckjob  # noqa: E402
from perf_common import BENCH, cpu_now, log, machine, markdown, write_result  # noqa: E402
from rows_bench import make_job  # noqa: E402

from condorkit.model.config import load_config  # noqa: E402
from condorkit.model.job import _options_hash, prepare  # noqa: E402
from condorkit.model.layout import rows_name  # noqa: E402
from condorkit.model.manifest import Tally, iter_rows  # noqa: E402

_ROW_JSON = json.JSONEncoder(ensure_ascii=True, sort_keys=True).encode


def make_photo_job(folder: Path, rows: int) -> None:
    make_job(folder, 0)
    (folder / "condorkit.toml").write_text(
        'program = "count.py"\ncolumns = ["url:url", "year:int"]\nchunk = 200\n')
    with open(folder / "manifest.txt", "w", encoding="utf-8") as fh:
        for i in range(1, rows + 1):
            fh.write(f"http://images.example/p/{i:07d}.jpg {1880 + i % 140}\n")


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def reference(job: Path) -> list[str]:
    """The replaced preparation: scan, then split with two json encodings per row."""
    config = load_config(job)
    cols = config.column_spec()
    manifest = job / config.manifest
    opts = _options_hash(config, job / config.program, (), None)
    tally = Tally(manifest)
    for r in iter_rows(manifest, cols):
        tally.add(r)
    tally.info(cols)
    (job / "chunks").mkdir(exist_ok=True)
    keys: list[str] = []
    lines: list[bytes] = []
    h = hashlib.sha256(opts.encode())

    def flush(start: int) -> None:
        keys.append(h.hexdigest())
        header = {"format": ckjob.ROWS_FORMAT, "start": start, "count": len(lines),
                  "key": keys[-1], "options": opts, "columns": list(cols.names)}
        _write_if_changed(job / "chunks" / rows_name(start),
                          json.dumps(header, sort_keys=True).encode() + b"\n" + b"".join(lines))

    start = 1
    for r in iter_rows(manifest, cols):
        rec: dict[str, object] = dict(zip(cols.names, r.values, strict=True))
        rec["row"] = r.row
        h.update(_ROW_JSON(rec).encode())
        rec["line"] = r.line
        lines.append(_ROW_JSON(rec).encode() + b"\n")
        if len(lines) == config.chunk:
            flush(start)
            start, lines, h = r.row + 1, [], hashlib.sha256(opts.encode())
    if lines:
        flush(start)
    return keys


def files_only(tmp: Path) -> None:
    """Write every rows file (``FILES``) into a fresh folder, and rename each into another."""
    stage, dest = tmp / "stage", tmp / "dest"
    for d in (stage, dest):
        shutil.rmtree(d, ignore_errors=True)
    stage.mkdir()
    dest.mkdir()
    for name, data in FILES.items():
        fd = os.open(stage / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(stage / name, dest / name)


FILES: dict[str, bytes] = {}


CPU: dict[str, list[float]] = {}


def timed(fn: Callable[[], object], name: str) -> float:
    """Wall seconds of ``fn()``; its CPU seconds (user + system) go to ``CPU[name]``."""
    c0, t0 = cpu_now(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    CPU.setdefault(name, []).append(cpu_now() - c0)
    return wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--photo", action="store_true", help="url:url year:int rows")
    ap.add_argument("--dir", type=Path, default=BENCH / "work",
                    help="where the job folders go (default bench/work)")
    args = ap.parse_args(argv)
    header = machine()
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prepare-bench-", dir=args.dir) as tmp_name:
        tmp = Path(tmp_name)
        new, old = tmp / "new", tmp / "old"
        (make_photo_job if args.photo else make_job)(new, args.rows)
        shutil.copytree(new, old)
        config = load_config(new)

        def fresh_prepare() -> None:
            shutil.rmtree(new / "chunks", ignore_errors=True)
            os.sync()  # the deletion's disk work is not charged to the next contender
            times["prepare"].append(timed(lambda: prepare(new, config), "prepare"))

        def fresh_reference() -> None:
            shutil.rmtree(old / "chunks", ignore_errors=True)
            os.sync()
            times["reference"].append(timed(lambda: keys.__setitem__("reference", reference(old)),
                                            "reference"))

        def files() -> None:
            os.sync()
            times["files-only"].append(timed(lambda: files_only(tmp), "files-only"))

        times: dict[str, list[float]] = {k: [] for k in (
            "reference", "prepare", "prepare-again", "keys-only", "files-only")}
        keys: dict[str, list[str]] = {}
        steps: list[tuple[str, Callable[[], None]]] = [
            ("reference", fresh_reference),
            ("prepare", fresh_prepare),
            ("prepare-again", lambda: times["prepare-again"].append(
                timed(lambda: prepare(new, config), "prepare-again"))),
            ("keys-only", lambda: times["keys-only"].append(
                timed(lambda: keys.__setitem__("keys-only",
                                               list(prepare(new, config, write=False).keys)),
                      "keys-only"))),
            ("files-only", files),
        ]
        prepare(new, config)  # untimed: warms the caches, gives files-only its bytes
        FILES.update({p.name: p.read_bytes() for p in (new / "chunks").iterdir()})
        for r in range(args.rounds):
            for _, step in (steps if r % 2 == 0 else list(reversed(steps))):
                step()
            got = {p.name: p.read_bytes() for p in (new / "chunks").iterdir()}
            want = {p.name: p.read_bytes() for p in (old / "chunks").iterdir()}
            if (got != want or got != FILES or keys["keys-only"] != keys["reference"]
                    or list(prepare(new, config, write=False).keys) != keys["reference"]):
                raise SystemExit("prepare's rows files or keys differ from the reference")
            log(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    table = [[k, f"{med[k]:.2f}", ", ".join(f"{x:.2f}" for x in times[k]),
              f"{med['reference'] / med[k]:.1f}x", f"{cpu[k]:.2f}"] for k in times]
    kind = "url:url year:int" if args.photo else "item:str"
    load = "?"
    with contextlib.suppress(OSError):
        load = f"{os.getloadavg()[0]:.2f}"
    md = (f"{header}; {args.rows:,} rows ({kind}), chunk 200 ({-(-args.rows // 200):,} rows "
          f"files), {args.rounds} interleaved round(s); load average at the end {load}\n\n"
          + markdown(["contender", "median wall (s)", "passes (s)", "reference / contender",
                      "median CPU (s)"], table))
    print(md)
    write_result("prepare_bench" + ("_photo" if args.photo else ""), md,
                 {"rows": args.rows, "columns": kind, "seconds": times, "cpu_seconds": CPU})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
