"""Commands that work on this machine: mksubmit, dry-run, run, aggregate, demo, bundle."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import Any

from condorkit.cli.common import (
    Progress,
    add_job_options,
    add_target_minutes,
    chunk_of,
    config_of,
    emit_json,
    err,
    job_dir_of,
    out,
    prepare_job,
    show_causes,
)
from condorkit.errors import ResultsError, RunFailed, UsageError

# ----------------------------------------------------------------------------- commands


def cmd_mksubmit(args: argparse.Namespace) -> int:
    from condorkit.condor.render import render_submit
    from condorkit.condor.submit import check_job_folder

    job = prepare_job(args, chunk=chunk_of(args), max_rows=args.max)
    text = render_submit(job)
    try:
        check_job_folder(job)
    except UsageError as exc:  # the file is still printed: condor_submit is the user's call
        err(f"mksubmit: warning: {exc.message}")
        err(f"  hint: {exc.hint}")
    out(text)
    err(f"mksubmit: {job.rows} rows in {len(job.chunks)} chunk(s) of up to {job.config.chunk}; "
        f"rows files in {job.dir / 'chunks'}")
    return 0


def cmd_dry_run(args: argparse.Namespace) -> int:
    from condorkit.condor.dryrun import dry_run

    job = prepare_job(args, chunk=args.chunk, max_rows=args.max)
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
    from condorkit.local.workers import default_workers, prestart

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j needs at least 1 worker, got {args.jobs}", "e.g. -j 2")
    cfg = config_of(args, chunk=args.chunk, max_rows=args.max)
    # the workers import the program's modules while the manifest is read
    early = [] if args.no_persistent else prestart(
        job_dir_of(args), cfg, args.jobs or cfg.workers or default_workers(),
        standby=getattr(args, "standby", None))
    try:
        return _run(args, cfg, early)
    finally:
        for w in early:
            w.close()


def _run(args: argparse.Namespace, cfg: Any, early: list[Any]) -> int:
    from condorkit.errors import Interrupted
    from condorkit.local.run import RunProgress, RunReport, default_workers, run
    from condorkit.model.job import prepare

    job = prepare(job_dir_of(args), cfg)
    progress = Progress(job.rows, "run", None if not args.json else False)

    def on_progress(p: RunProgress) -> None:
        progress.total = max(p.rows_total, 1)
        note = f"{p.chunks_done}/{p.chunks_total} chunks, {p.running} running"
        progress.update(p.rows_done, note + (f", {p.chunks_failed} FAILED"
                                             if p.chunks_failed else ""))

    err(f"run: {job.rows} rows in {len(job.chunks)} chunk(s) on "
        f"{args.jobs or job.config.workers or default_workers()} worker(s)")

    def show(report: RunReport) -> None:
        progress.close()
        if args.json:
            emit_json(report)
            return
        err(f"run: {report.done}/{len(report.chunks)} chunks done ({report.skipped} already "
            f"valid), {len(report.failed)} failed, {report.retried} retried, "
            f"{report.speculated} speculated; {report.rows_run} rows in {report.pieces} "
            f"piece(s), {report.rows_per_s:.1f} rows/s, wall {report.wall_s:.2f}s")
        show_causes(report.causes)
        err(f"run: joblog {report.joblog}")

    def on_term(signum: int, _frame: Any) -> None:
        raise Interrupted("stopped by SIGTERM before any chunk started", "run it again")

    old = signal.signal(signal.SIGTERM, on_term)  # run() installs its own while it runs
    try:
        report = run(job, workers=args.jobs or 0, retries=args.retries,
                     dispatch=args.dispatch, granularity=args.granularity,
                     speculate_after=None if args.no_speculate else args.speculate_after,
                     backoff=args.backoff, joblog=Path(args.joblog) if args.joblog else None,
                     seed=args.seed, on_progress=on_progress, lock_wait=args.lock_wait,
                     persistent=not args.no_persistent, time_limit=args.time_limit,
                     prestarted=early)
    except Interrupted as exc:
        if getattr(exc, "report", None) is not None:
            show(exc.report)  # type: ignore[attr-defined]
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
    show(report)
    if report.failed:
        raise RunFailed(f"{len(report.failed)} chunk(s) failed",
                        "fix the cause shown above and run again; finished chunks are kept")
    return 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    from condorkit.report.jobreport import aggregate_job, job_results

    cfg = config_of(args, chart_x=args.chart_x, chart_y=args.chart_y,
                    chart_title=args.chart_title)
    paths = [Path(p) for p in args.results] or job_results(job_dir_of(args), cfg)
    report = aggregate_job(job_dir_of(args), cfg, Path(args.output), paths=paths,
                           check_manifest=not args.no_manifest,
                           manifest_required=bool(args.manifest), chunk_given=bool(args.chunk),
                           allow_missing=args.allow_missing,
                           on_note=lambda note: err(f"aggregate: note: {note}"))
    if args.json:
        emit_json(report)
    d = report.to_dict()
    err(f"aggregate: {len(paths)} file(s); rows expected {d.get('expected')}, "
        f"found {d.get('found')}, errors {d.get('errors')}, duplicates {d.get('duplicates')}, "
        f"missing {d.get('missing') or 'none'}")
    for path, problem in d.get("invalid_files", []):
        err(f"  INVALID {path}: {problem}")
    if report.x_field:
        err(f"aggregate: chart of {report.y_field} against {report.x_field}: "
            f"{report.points} point(s)" + (f"; {report.chart_note}" if report.chart_note else ""))
    elif report.chart_note:
        err(f"aggregate: {report.chart_note}; the page lists the results in a table")
    err(f"aggregate: wrote {args.output}")
    if d.get("missing") and not args.allow_missing:
        raise ResultsError(f"rows missing from the results: {d.get('missing')}",
                           "run the missing chunks again (`condorkit run` resumes), "
                           "or pass --allow-missing")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from condorkit.demo import setup_photodemo
    except ModuleNotFoundError as exc:
        if exc.name != "PIL":
            raise
        raise UsageError("condorkit demo needs Pillow to make its photos",
                         "pip install 'condorkit[demo]' (or pip install pillow)") from None

    made = setup_photodemo(Path(args.folder), n_images=args.images, seed=args.seed,
                           chunk=args.chunk)
    if args.json:
        emit_json(made)
    else:
        err(f"demo: photodemo job folder {made.folder} with {made.n_images} photo-like JPEGs; "
            f"next: cd {made.folder} && condorkit run && condorkit aggregate -o scatter.html")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from condorkit.model.bundle import build_bundle
    from condorkit.model.wheelset import DEFAULT_PYTHONS, build_wheels

    job_dir = job_dir_of(args)
    req: Path | None = Path(args.requirements or job_dir / "requirements.txt")
    if args.no_requirements:
        req = None
    out_dir = Path(args.output) if args.output else job_dir
    if not args.json:
        err(f"bundle: {'reusing or ' if not args.force else ''}building the environment for "
            f"{req or 'no requirements'} in {out_dir} (a cold build downloads packages)")
    ship = args.ship_python or args.python is not None or args.no_requirements
    if ship:
        res = build_bundle(req, out_dir, python=args.python, force=args.force)
    else:
        pythons = tuple(v.strip() for v in args.pythons.split(",") if v.strip()
                        ) if args.pythons else DEFAULT_PYTHONS
        res = build_wheels(req, out_dir, pythons=pythons, force=args.force)
    if args.json:
        emit_json(res)
        return 0
    how = "reused (unchanged)" if res.reused else f"built in {res.build_s:.1f}s"
    what = (f"python {res.python}" if ship else
            f"packages for CPython {res.python.replace('cp3', '3.')} (the worker's python3)")
    err(f"bundle: {res.path} {how}: {res.size_bytes / 1e6:.1f} MB, {res.files} files, "
        f"{what} on {res.arch}, needs glibc >= {res.glibc}")
    err(f"  packages: {' '.join(res.packages) or '(none)'}")
    for w in res.warnings:
        err(f"  warning: {w}")
    err(f'  use it: bundle = "{res.name}" in condorkit.toml (or bundle = "auto"), '
        f"or --bundle {res.name}")
    return 0




def add_local_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("mksubmit", parents=[common], help="print the submit file for a job")
    s.add_argument("chunk", type=int, nargs="?", help="rows per job (default from config, 200)")
    s.add_argument("max", type=int, nargs="?", help="cap on the number of rows")
    add_target_minutes(s)
    add_job_options(s)
    s.set_defaults(func=cmd_mksubmit)

    s = sub.add_parser("dry-run", parents=[common], help="run one chunk locally as a worker would")
    s.add_argument("index", type=int, nargs="?", default=0, help="chunk index (default 0)")
    s.add_argument("--chunk", type=int, help="rows per chunk")
    s.add_argument("--max", type=int, help="cap on the number of rows")
    add_job_options(s)
    s.set_defaults(func=cmd_dry_run)

    s = sub.add_parser("run", parents=[common], help="run every chunk on the local cores")
    s.add_argument("-j", "--jobs", type=int, help="parallel workers (default: all cores)")
    s.add_argument("--chunk", type=int, help="rows per chunk")
    s.add_argument("--max", type=int, help="cap on the number of rows")
    s.add_argument("--retries", type=int, help="extra attempts for a failed piece "
                   "(default: local_retries, 2)")
    s.add_argument("--backoff", type=float, default=1.0, metavar="S",
                   help="seconds before the first retry, doubling each time (default 1)")
    s.add_argument("--dispatch", choices=("balanced", "random"), default="balanced",
                   help="balanced: idle workers take from one queue; random: chunks "
                   "pre-assigned to workers at random (for comparison)")
    s.add_argument("--granularity", choices=("auto", "chunk"), default="auto",
                   help="auto: split a chunk to balance the tail or join tiny chunks; "
                   "chunk: run exactly the job's chunks")
    s.add_argument("--speculate-after", type=float, default=10.0, metavar="S",
                   help="an idle worker copies a piece that has run this long and twice its "
                   "expected time (default 10)")
    s.add_argument("--no-speculate", action="store_true", help="never start speculative copies")
    s.add_argument("--joblog", metavar="PATH", help="one line per attempt (default "
                   "LOGDIR/joblog.tsv, appended)")
    s.add_argument("--seed", type=int, help="seed for --dispatch random")
    s.add_argument("--no-persistent", action="store_true",
                   help="start the wrapper for every piece instead of persistent workers")
    s.add_argument("--time-limit", type=float, metavar="S",
                   help="kill a piece after S seconds of wall clock (then retried, then "
                   "recorded failed with that reason)")
    s.add_argument("--lock-wait", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for another run of this job to end (the "
                   "joblog's commands do, for `parallel --retry-failed`)")
    add_job_options(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("aggregate", parents=[common], help="results-*.json -> scatter.html")
    s.add_argument("results", nargs="*", help="results files (default: JOB/results/*.json)")
    s.add_argument("-o", "--output", default="scatter.html", help="HTML file to write")
    s.add_argument("--manifest", help="manifest giving the expected rows (default from config)")
    s.add_argument("--no-manifest", action="store_true", help="do not check coverage")
    s.add_argument("--allow-missing", action="store_true", help="exit 0 even if rows are missing")
    s.add_argument("--chunk", type=int, help="rows per chunk the results were made with "
                   "(default: read from results-1.json)")
    s.add_argument("--x", dest="chart_x", metavar="FIELD", help="field on the x axis (default: "
                   "chart_x, else the results' first numeric field)")
    s.add_argument("--y", dest="chart_y", metavar="FIELD", help="field on the y axis (default: "
                   "chart_y, else the results' second numeric field)")
    s.add_argument("--title", dest="chart_title", help="the page's title (default: chart_title)")
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("demo", parents=[common], help="create a photodemo job folder with images")
    s.add_argument("folder", help="folder to create")
    s.add_argument("--images", type=int, default=120, help="number of generated photos")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chunk", type=int, default=20, help="rows per chunk in its condorkit.toml")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("bundle", parents=[common], help="pack the job's packages (manylinux "
                       "wheels for several CPython versions; or an interpreter with "
                       "--ship-python) into one tarball for the workers")
    s.add_argument("-r", "--requirements", metavar="FILE",
                   help="pip requirements file (default: JOB/requirements.txt)")
    s.add_argument("--no-requirements", action="store_true",
                   help="ship only the interpreter and its standard library (implies "
                   "--ship-python)")
    s.add_argument("--pythons", metavar="3.X,...",
                   help="CPython versions to pack wheels for (default: every version "
                   "condorkit supports, 3.9 and newer)")
    s.add_argument("--ship-python", action="store_true",
                   help="ship an interpreter too (for workers without python3 >= 3.9); "
                   "needs a glibc as new as this machine's")
    s.add_argument("-o", "--output", metavar="DIR", help="folder for the tarball (default: JOB)")
    s.add_argument("--python", help="with --ship-python: the base interpreter to ship "
                   "(default: the one running condorkit)")
    s.add_argument("--force", action="store_true", help="rebuild even if an identical bundle "
                   "exists (e.g. to pick up newer versions of unpinned packages)")
    s.set_defaults(func=cmd_bundle)
