"""The command line: the only module that writes to the terminal.

Owns argument parsing, rendering library results (tables, ``--json``, progress on stderr) and the
single error boundary that maps :class:`~condorkit.errors.CondorkitError` to exit codes. stdout
carries data only (``mksubmit`` prints nothing but the submit file); logs go to stderr; tracebacks
appear only with ``-v``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .errors import CondorkitError, ResultsError, RunFailed, UsageError

# ----------------------------------------------------------------------------- output helpers


def err(msg: str) -> None:
    """A log line on stderr."""
    print(msg, file=sys.stderr, flush=True)


def out(text: str) -> None:
    """Data on stdout."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def emit_json(obj: Any) -> None:
    out(json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


class Progress:
    """A one-line progress bar with ETA on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str, enabled: bool | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.t0 = time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / frac - elapsed:5.0f}s" if frac > 0 else "    ?"
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {done}/{self.total} ETA {eta} {note}"[:160])
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


# ----------------------------------------------------------------------------- job loading


def _job_dir(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "job_dir", None) or ".").resolve()


def _config(args: argparse.Namespace, **cli: Any) -> Any:
    from .config import load_config

    opts = {k: getattr(args, k, None) for k in (
        "manifest", "program", "chunk", "max_rows", "bundle", "request_cpus", "request_memory",
        "request_disk", "requirements", "max_retries", "log_dir", "template",
        "job_lease_duration", "workers")}
    if getattr(args, "input_files", None):
        opts["input_files"] = tuple(args.input_files)
    opts.update(cli)
    return load_config(_job_dir(args), opts)


def _prepare(args: argparse.Namespace, write: bool = True, **cli: Any) -> Any:
    from .job import prepare

    return prepare(_job_dir(args), _config(args, **cli), write=write)


def _add_job_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("job options (override condorkit.toml and CONDORKIT_* variables)")
    g.add_argument("--manifest", help="manifest file (default manifest.txt)")
    g.add_argument("--program", help="the program run on each chunk (default luminance.py)")
    g.add_argument("--input", dest="input_files", action="append", metavar="FILE",
                   help="extra input file transferred with every chunk (repeatable)")
    g.add_argument("--bundle", help="environment bundle tarball (see `condorkit bundle`)")
    g.add_argument("--request-cpus", type=int)
    g.add_argument("--request-memory")
    g.add_argument("--request-disk")
    g.add_argument("--requirements", help="ClassAd requirements expression")
    g.add_argument("--max-retries", type=int, help="HTCondor max_retries per chunk")
    g.add_argument("--job-lease-duration", type=int, help="seconds before a lost job requeues")
    g.add_argument("--log-dir", help="folder for HTCondor logs (default logs)")
    g.add_argument("--template", help="submit template name (default submit.sub.j2)")


# ----------------------------------------------------------------------------- commands


def cmd_mksubmit(args: argparse.Namespace) -> int:
    from .render import render_submit

    job = _prepare(args, chunk=args.chunk, max_rows=args.max)
    text = render_submit(job)
    out(text)
    err(f"mksubmit: {job.rows} rows in {len(job.chunks)} chunk(s) of up to {job.config.chunk}; "
        f"rows files in {job.dir / 'chunks'}")
    return 0


def cmd_dry_run(args: argparse.Namespace) -> int:
    from .local import dry_run

    job = _prepare(args, chunk=args.chunk, max_rows=args.max)
    res = dry_run(job, args.index)
    if args.json:
        emit_json(res)
    else:
        status = "ok" if res.ok else "FAILED"
        err(f"dry-run chunk {res.index} (rows {res.start}-{res.start + res.count - 1}): {status} "
            f"in {res.duration:.2f}s, exit code {res.exit_code}")
        err(f"  scratch folder: {res.scratch}")
        for name in res.outputs:
            err(f"  result: {res.scratch / name}")
        for name in res.missing_outputs:
            err(f"  MISSING output: {name}")
        if not res.ok:
            err("  stderr tail:\n" + res.stderr_tail)
    if not res.ok:
        raise RunFailed(f"dry-run of chunk {res.index} failed (exit code {res.exit_code})",
                        f"read the program's stderr in {res.scratch / '_condor_stderr'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .local import run

    job = _prepare(args, chunk=args.chunk, max_rows=args.max)
    progress = Progress(len(job.chunks), "run", None if not args.json else False)
    counter = {"n": 0}

    def on_done(outcome: Any) -> None:
        counter["n"] += 1
        progress.update(counter["n"], f"{outcome.status} {outcome.start}")

    err(f"run: {job.rows} rows in {len(job.chunks)} chunk(s) on "
        f"{args.jobs or job.config.workers or os.cpu_count()} worker(s)")
    report = run(job, workers=args.jobs or 0, on_done=on_done)
    progress.close()
    if args.json:
        emit_json(report)
    else:
        n_skip = sum(1 for c in report.chunks if c.status == "skipped")
        err(f"run: {report.done}/{len(report.chunks)} chunks done ({n_skip} already valid), "
            f"{len(report.failed)} failed, {report.rows_per_s:.1f} rows/s, "
            f"wall {report.wall_s:.2f}s")
        for c in report.failed:
            err(f"  chunk {c.start} ({c.count} rows) failed after {c.attempts} attempt(s): "
                f"{c.reason}")
    if report.failed:
        raise RunFailed(f"{len(report.failed)} chunk(s) failed",
                        "fix the cause shown above and run again; finished chunks are kept")
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from .aggregate import aggregate
    from .manifest import scan

    expected = None
    paths = [Path(p) for p in args.results]
    if not paths:
        job_dir = _job_dir(args)
        cfg = _config(args)
        paths = sorted((job_dir / cfg.results_dir).glob("results-*.json"))
    if not args.no_manifest:
        cfg = _config(args)
        mpath = Path(cfg.manifest)
        mpath = mpath if mpath.is_absolute() else _job_dir(args) / mpath
        if mpath.is_file():
            expected = scan(mpath, cfg.column_spec(), allow_empty=True).rows
            if cfg.max_rows:
                expected = min(expected, cfg.max_rows)
        elif args.manifest:
            raise UsageError(f"manifest {mpath} not found", "pass --manifest or --no-manifest")
    report = aggregate(paths, expected_rows=expected, out_html=Path(args.output),
                       allow_missing=args.allow_missing)
    if args.json:
        emit_json(report)
    d = report.to_dict()
    err(f"aggregate: {len(paths)} file(s); rows expected {d.get('expected')}, "
        f"found {d.get('found')}, errors {d.get('errors')}, duplicates {d.get('duplicates')}, "
        f"missing {d.get('missing') or 'none'}")
    for path, problem in d.get("invalid_files", []):
        err(f"  INVALID {path}: {problem}")
    err(f"aggregate: wrote {args.output}")
    if d.get("missing") and not args.allow_missing:
        raise ResultsError(f"rows missing from the results: {d.get('missing')}",
                           "run the missing chunks again (`condorkit run` resumes), "
                           "or pass --allow-missing")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import setup_photodemo

    made = setup_photodemo(Path(args.folder), n_images=args.images, seed=args.seed,
                           chunk=args.chunk)
    if args.json:
        emit_json(made)
    else:
        err(f"demo: photodemo job folder {made.folder} with {made.n_images} photo-like JPEGs; "
            f"next: cd {made.folder} && condorkit run && condorkit aggregate -o scatter.html")
    return 0


# ----------------------------------------------------------------------------- parser

Command = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="condorkit", description=(
        "Run one program over every row of a manifest: on all local cores (condorkit run) or on "
        "an HTCondor pool (condorkit mksubmit / submit)."))
    p.add_argument("--version", action="version", version=f"condorkit {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-C", "--job-dir", help="job folder (default: current folder)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("mksubmit", parents=[common], help="print the submit file for a job")
    s.add_argument("chunk", type=int, nargs="?", help="rows per job (default from config, 200)")
    s.add_argument("max", type=int, nargs="?", help="cap on the number of rows")
    _add_job_options(s)
    s.set_defaults(func=cmd_mksubmit)

    s = sub.add_parser("dry-run", parents=[common], help="run one chunk locally as a worker would")
    s.add_argument("index", type=int, nargs="?", default=0, help="chunk index (default 0)")
    s.add_argument("--chunk", type=int, help="rows per chunk")
    s.add_argument("--max", type=int, help="cap on the number of rows")
    _add_job_options(s)
    s.set_defaults(func=cmd_dry_run)

    s = sub.add_parser("run", parents=[common], help="run every chunk on the local cores")
    s.add_argument("-j", "--jobs", type=int, help="parallel workers (default: all cores)")
    s.add_argument("--chunk", type=int, help="rows per chunk")
    s.add_argument("--max", type=int, help="cap on the number of rows")
    _add_job_options(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("aggregate", parents=[common], help="results-*.json -> scatter.html")
    s.add_argument("results", nargs="*", help="results files (default: JOB/results/*.json)")
    s.add_argument("-o", "--output", default="scatter.html", help="HTML file to write")
    s.add_argument("--manifest", help="manifest giving the expected rows (default from config)")
    s.add_argument("--no-manifest", action="store_true", help="do not check coverage")
    s.add_argument("--allow-missing", action="store_true", help="exit 0 even if rows are missing")
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("demo", parents=[common], help="create a photodemo job folder with images")
    s.add_argument("folder", help="folder to create")
    s.add_argument("--images", type=int, default=120, help="number of generated photos")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chunk", type=int, default=20, help="rows per chunk in its condorkit.toml")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI boundary: parse, dispatch, map errors to exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CondorkitError as exc:
        if args.verbose:
            traceback.print_exc()
        err(f"condorkit {args.command}: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        err(f"condorkit {args.command}: interrupted")
        return 130
    except BrokenPipeError:
        return 141


def mksubmit_main(argv: Sequence[str] | None = None) -> int:
    """The tutorial-compatible ``mksubmit CHUNK [MAX]`` command."""
    return main(["mksubmit", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
