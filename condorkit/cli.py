"""The command line: the only module that writes to the terminal.

Owns argument parsing, rendering library results (tables, ``--json``, progress on stderr) and the
single error boundary that maps :class:`~condorkit.errors.CondorkitError` to exit codes. stdout
carries data only (``mksubmit`` prints nothing but the submit file); logs go to stderr; tracebacks
appear only with ``-v``.
"""

from __future__ import annotations

import argparse
import json
import signal
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
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
             for r in cells]
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
        "job_lease_duration", "workers", *POOL_OPTIONS)}
    if getattr(args, "input_files", None):
        opts["input_files"] = tuple(args.input_files)
    if getattr(args, "submit_cmd", None):
        from .submitcmds import parse_pairs

        opts["submit"] = parse_pairs(args.submit_cmd)
    opts.update(cli)
    return load_config(_job_dir(args), opts)


def _prepare(args: argparse.Namespace, write: bool = True, **cli: Any) -> Any:
    from .job import prepare

    return prepare(_job_dir(args), _config(args, **cli), write=write)


POOL_OPTIONS = ("project_name", "request_gpus", "batch_name", "accounting_group", "max_idle",
                "max_materialize", "memory_retry")


def _add_pool_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pool options (override condorkit.toml; see README, real pools)")
    g.add_argument("--project-name", help="+ProjectName of every job (the OSPool requires one)")
    g.add_argument("--request-gpus", type=int)
    g.add_argument("--batch-name", help="batch name shown by condor_q")
    g.add_argument("--accounting-group", help="accounting group (e.g. group_physics.alice)")
    g.add_argument("--max-idle", type=int, help="late materialization: idle jobs at most")
    g.add_argument("--max-materialize", type=int,
                   help="late materialization: jobs in the queue at most")
    g.add_argument("--memory-retry", metavar="SIZE", help="release a job held for exceeding its "
                   "memory with twice its peak use, up to SIZE (e.g. 8GB)")
    g.add_argument("--submit-cmd", action="append", metavar="KEY=VALUE",
                   help="any other submit command or +Attribute (repeatable; adds to the "
                   "[submit] table of condorkit.toml)")


def _graph_commands(args: argparse.Namespace) -> Any:
    """The extra submit commands of `graph --dag` (pool options on its command line only)."""
    from .config import JobConfig
    from .submitcmds import check_commands, parse_pairs, submit_commands

    opts = {k: getattr(args, k) for k in POOL_OPTIONS if getattr(args, k, None) is not None}
    if opts.pop("memory_retry", None):
        raise UsageError("--memory-retry is not available for graph --dag",
                         "use --submit-cmd periodic_release=... for task nodes")
    if args.submit_cmd:
        opts["submit"] = parse_pairs(args.submit_cmd)
    cfg = JobConfig(sources={k: "command line" for k in opts}, **opts)
    cmds = tuple(c for c in submit_commands(cfg) if c.key not in ("max_idle", "max_materialize"))
    check_commands(cmds)
    return cmds


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
    _add_pool_options(p)


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
    from .errors import Interrupted
    from .local import RunProgress, RunReport, default_workers, run

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j needs at least 1 worker, got {args.jobs}", "e.g. -j 2")
    job = _prepare(args, chunk=args.chunk, max_rows=args.max)
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
        for c in report.failed:
            err(f"  chunk {c.start} ({c.count} rows) failed: {c.reason}")
        err(f"run: joblog {report.joblog}")

    def on_term(signum: int, _frame: Any) -> None:
        raise Interrupted("stopped by SIGTERM before any chunk started", "run it again")

    old = signal.signal(signal.SIGTERM, on_term)  # run() installs its own while it runs
    try:
        report = run(job, workers=args.jobs or 0, retries=args.retries,
                     dispatch=args.dispatch, granularity=args.granularity,
                     speculate_after=None if args.no_speculate else args.speculate_after,
                     backoff=args.backoff, joblog=Path(args.joblog) if args.joblog else None,
                     seed=args.seed, on_progress=on_progress)
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


def _run_chunk_size(paths: Sequence[Path]) -> int | None:
    """The chunk size the results were made with: the row count of the file for row 1."""
    from .results import load_results

    first = [p for p in paths if p.name == "results-1.json"]
    if not first:
        return None
    rf = load_results(first[0])
    return rf.count if rf.valid and rf.start == 1 and rf.count else None


def cmd_aggregate(args: argparse.Namespace) -> int:
    from .aggregate import aggregate
    from .errors import ConfigError
    from .job import prepare
    from .manifest import scan

    expected = None
    keys = None
    paths = [Path(p) for p in args.results]
    job_dir = _job_dir(args)
    if not paths:
        paths = sorted((job_dir / _config(args).results_dir).glob("results-*.json"))
    if not args.no_manifest:
        cfg = _config(args)
        mpath = Path(cfg.manifest)
        mpath = mpath if mpath.is_absolute() else job_dir / mpath
        if mpath.is_file():
            try:  # the current job's chunk keys: results made for other rows are stale
                size = None if args.chunk else _run_chunk_size(paths)
                if size and size != cfg.chunk:
                    cfg = cfg.with_overrides(chunk=size)  # as the results were cut
                job = prepare(job_dir, cfg, write=False)
                expected = job.rows
                keys = {c.start: (c.count, k) for c, k in zip(job.chunks, job.keys, strict=True)}
            except ConfigError as exc:
                err(f"aggregate: note: results are not checked against the current job "
                    f"({exc.message})")
                expected = scan(mpath, cfg.column_spec(), allow_empty=True).rows
                if cfg.max_rows:
                    expected = min(expected, cfg.max_rows)
        elif args.manifest:
            raise UsageError(f"manifest {mpath} not found", "pass --manifest or --no-manifest")
    report = aggregate(paths, expected_rows=expected, out_html=Path(args.output),
                       allow_missing=args.allow_missing, expected_keys=keys)
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


def cmd_bundle(args: argparse.Namespace) -> int:
    from .bundle import build_bundle

    job_dir = _job_dir(args)
    req: Path | None = Path(args.requirements or job_dir / "requirements.txt")
    if args.no_requirements:
        req = None
    out_dir = Path(args.output) if args.output else job_dir
    if not args.json:
        err(f"bundle: {'reusing or ' if not args.force else ''}building the environment for "
            f"{req or 'no requirements'} in {out_dir} (a cold build downloads packages)")
    res = build_bundle(req, out_dir, python=args.python, force=args.force)
    if args.json:
        emit_json(res)
        return 0
    how = "reused (unchanged)" if res.reused else f"built in {res.build_s:.1f}s"
    err(f"bundle: {res.path} {how}: {res.size_bytes / 1e6:.1f} MB, {res.files} files, "
        f"python {res.python} for {res.arch}, needs glibc >= {res.glibc}")
    err(f"  packages: {' '.join(res.packages) or '(none)'}")
    for w in res.warnings:
        err(f"  warning: {w}")
    err(f'  use it: bundle = "{res.name}" in condorkit.toml (or bundle = "auto"), '
        f"or --bundle {res.name}")
    return 0


# ----------------------------------------------------------------------------- pool commands


def _run_record(args: argparse.Namespace) -> Any:
    """The run to look at: the current one, or ``--cluster N`` (a cluster submitted with
    ``condor_submit`` from this folder is adopted: its run record is written from its job ads)."""
    from .submit import adopt_run, load_run, runs_dir

    cluster = getattr(args, "cluster", None)
    if cluster is not None and not (runs_dir(_job_dir(args)) / f"{cluster}.json").is_file():
        return adopt_run(_job_dir(args), _config(args), cluster)
    return load_run(_job_dir(args), cluster)


def _report_submit(rep: Any, skipped: int, verb: str, as_json: bool) -> None:
    r = rep.record
    if as_json:
        emit_json({"record": r.to_dict(), "record_path": rep.record_path,
                   "warnings": list(rep.warnings), "skipped_valid": skipped})
    err(f"{verb}: cluster {r.cluster} on schedd {r.schedd.name}: {len(r.chunks)} job(s) for "
        f"{r.rows} rows" + (f" ({skipped} chunk(s) already valid, skipped)" if skipped else "")
        + (", inputs spooled" if r.spool else ""))
    for w in rep.warnings:
        err(f"  warning: {w}")
    err(f"  run record: {rep.record_path}; next: condorkit status / condorkit wait")


def _refuse_queued(job: Any, todo: Sequence[Any], schedd: str | None) -> None:
    """Never run a chunk twice at once: refuse while a queued job still works on it."""
    from .monitor import queued_chunks

    queued = queued_chunks(job.dir, schedd)
    clash = [f"{c.start} ({queued[c.start]})" for c in todo if c.start in queued]
    if clash:
        raise UsageError(f"{len(clash)} chunk(s) still have a job in the queue: "
                         f"{', '.join(clash[:5])}{' ...' if len(clash) > 5 else ''}",
                         "wait for them (condorkit wait), or remove them (condor_rm CLUSTER); "
                         "condorkit resubmit --missing removes held jobs of the last run")


def cmd_submit(args: argparse.Namespace) -> int:
    from .submit import chunks_to_run, submit_run

    job = _prepare(args, chunk=args.chunk, max_rows=args.max)
    todo, valid = chunks_to_run(job, missing_only=not args.all)
    if not todo:
        err(f"submit: all {len(job.chunks)} chunk(s) already have valid results; nothing to "
            "submit (--all submits them again)")
        return 0
    _refuse_queued(job, todo, args.schedd)
    rep = submit_run(job, todo, spool=args.spool, schedd_name=args.schedd)
    _report_submit(rep, len(valid), "submit", args.json)
    return 0


def cmd_resubmit(args: argparse.Namespace) -> int:
    from .monitor import status
    from .submit import chunks_to_run, remove, submit_run

    prev = _run_record(args)
    st = status(prev)
    busy = [c for c in st.chunks if c.state in ("idle", "running", "completed")]
    if busy:
        raise UsageError(f"run {prev.cluster} still has {len(busy)} job(s) queued, running or "
                         "waiting for retrieval", "let it finish first: condorkit wait")
    job = _prepare(args, chunk=args.chunk or prev.chunk_size, max_rows=args.max or prev.max_rows)
    todo, valid = chunks_to_run(job, missing_only=True)
    held = [c.proc for c in st.chunks if c.state == "held"]
    if held:
        remove(prev, held, "condorkit resubmit: replaced by a new run of its chunk")
        err(f"resubmit: removed {len(held)} held job(s) of run {prev.cluster}")
    if not todo:
        err(f"resubmit: all {len(job.chunks)} chunk(s) have valid results; nothing to submit")
        return 0
    _refuse_queued(job, todo, args.schedd)
    rep = submit_run(job, todo, spool=args.spool, schedd_name=args.schedd, parent=prev.cluster)
    _report_submit(rep, len(valid), "resubmit", args.json)
    return 0


def _render_status(st: Any) -> None:
    c = st.counts
    pct = 100.0 * st.rows_done / st.rows if st.rows else 100.0
    err(f"run {st.cluster} on {st.schedd} ({st.job_dir}): {len(st.chunks)} chunk(s), "
        f"{st.rows_done}/{st.rows} rows done ({pct:.0f}%)")
    err("  " + "  ".join(f"{k} {v}" for k, v in c.items() if v or k != "completed"))
    for b in st.bad:
        err(f"  chunk {b.start} (rows {b.start}-{b.start + b.count - 1}, job "
            f"{st.cluster}.{b.proc}) {b.state.upper()} after {b.attempts} attempt(s): {b.reason}")
    for note in st.notes:
        err(f"  note: {note}")


def cmd_status(args: argparse.Namespace) -> int:
    from .monitor import status

    st = status(_run_record(args))
    if args.json:
        emit_json(st)
    else:
        _render_status(st)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from .monitor import wait

    rec = _run_record(args)
    progress = Progress(rec.rows, f"wait {rec.cluster}", False if args.json else None)

    def on_update(st: Any) -> None:
        c = st.counts
        progress.update(st.rows_done, f"idle {c['idle']} run {c['running']} held {c['held']} "
                                      f"failed {c['failed']}")

    st = wait(rec, timeout=args.timeout, interval=args.interval, on_update=on_update)
    progress.close()
    if args.json:
        emit_json(st)
    else:
        _render_status(st)
    if not st.finished:
        raise RunFailed(f"run {rec.cluster} not finished after {args.timeout:g}s: "
                        f"{st.counts['idle']} idle, {st.counts['running']} running",
                        "wait again (condorkit wait); the jobs keep running")
    if not st.ok:
        bad = ", ".join(f"{b.start} ({b.state})" for b in st.bad)
        raise RunFailed(f"run {rec.cluster}: {len(st.bad)} chunk(s) without valid results: {bad}",
                        "fix the cause shown above, then: condorkit resubmit --missing")
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from .monitor import RunWatcher, fetch_outputs

    rec = _run_record(args)
    if not rec.spool:
        err(f"retrieve: run {rec.cluster} was not spooled; its outputs arrive by themselves")
        return 0
    w = RunWatcher(rec)
    st = fetch_outputs(w, w.status())
    if args.json:
        emit_json(st)
    else:
        _render_status(st)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .monitor import history

    h = history(_run_record(args))
    if args.json:
        emit_json(h)
        return 0
    rows = [(f"{h.cluster}.{j.proc}", j.start, j.count, j.status,
             "-" if j.exit_code is None else j.exit_code, j.host or "-",
             "-" if j.run_time_s is None else f"{j.run_time_s:.0f}s", j.attempts, j.reason)
            for j in h.jobs]
    out(table(rows, ("job", "start", "rows", "status", "exit", "host", "run time", "attempts",
                     "reason")))
    err(f"history: {len(h.jobs)} finished job(s) of run {h.cluster}")
    return 0


def cmd_where(args: argparse.Namespace) -> int:
    from .monitor import where

    w = where(_run_record(args))
    if args.json:
        emit_json(w)
        return 0
    top = max([h.chunks for h in w.hosts] + [1])
    for h in w.hosts:
        out(f"{h.host:<30} {h.chunks:>6} {'#' * max(1, round(40 * h.chunks / top))}"
            f"  (done {h.done}, running {h.running}, failed {h.failed}, attempts {h.attempts})\n")
    if w.unplaced:
        out(f"{'(not started)':<30} {w.unplaced:>6}\n")
    return 0


def _add_pool_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The HTCondor commands: submit, resubmit, status, wait, retrieve, history, where."""
    run_common = argparse.ArgumentParser(add_help=False)
    run_common.add_argument("--cluster", type=int,
                            help="which run of this job folder (default: the last submitted); "
                                 "a cluster from `condor_submit` is adopted")

    for name, func, what in (("submit", cmd_submit, "submit every chunk without valid results "
                              "to the HTCondor pool"),
                             ("resubmit", cmd_resubmit, "submit again the chunks of the last run "
                              "that have no valid results")):
        s = sub.add_parser(name, parents=[common, run_common] if name == "resubmit" else [common],
                           help=what)
        if name == "resubmit":
            s.add_argument("--missing", action="store_true", required=True,
                           help="the chunks without valid results (the only mode)")
        else:
            s.add_argument("--all", action="store_true",
                           help="also chunks that already have valid results")
        s.add_argument("--spool", action="store_true",
                       help="spool the inputs to the schedd (it need not see the job folder); "
                            "`condorkit wait` retrieves the outputs")
        s.add_argument("--schedd", help="schedd name (default: the pool's only one)")
        s.add_argument("--chunk", type=int, help="rows per chunk")
        s.add_argument("--max", type=int, help="cap on the number of rows")
        _add_job_options(s)
        s.set_defaults(func=func)

    s = sub.add_parser("status", parents=[common, run_common],
                       help="per-state counts of the last run and why chunks failed")
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("wait", parents=[common, run_common],
                       help="wait for the last run; exit 0 only if every chunk has valid results")
    s.add_argument("--timeout", type=float, help="give up after this many seconds")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between checks")
    s.set_defaults(func=cmd_wait)
    s = sub.add_parser("retrieve", parents=[common, run_common],
                       help="fetch the outputs of finished jobs of a spooled run now")
    s.set_defaults(func=cmd_retrieve)
    s = sub.add_parser("history", parents=[common, run_common],
                       help="finished jobs of the last run: exit code, host, run time")
    s.set_defaults(func=cmd_history)
    s = sub.add_parser("where", parents=[common, run_common],
                       help="histogram of the execute hosts of the last run")
    s.set_defaults(func=cmd_where)


# ----------------------------------------------------------------------------- DAGMan and graphs


def _show_dag_status(st: Any, as_json: bool) -> None:
    if as_json:
        emit_json(st)
        return
    out(table([(n.name, n.status, n.retries, n.details) for n in st.nodes],
              ("node", "status", "retries", "details")))
    counts = ", ".join(f"{k} {v}" for k, v in st.counts.items() if v)
    err(f"dag: {st.dag_status}{' (final)' if st.done else ''}; nodes: {counts}")


def _submit_and_wait(args: argparse.Namespace, dag: Path, commands: Any = ()) -> Any:
    from .dagman import submit_dag, wait_dag
    from .submitcmds import dagman_appends

    sub = submit_dag(dag, append=dagman_appends(commands))
    err(f"dag: submitted {dag.name} as DAGMan cluster {sub.cluster}"
        + (" (rescue DAG: only unfinished nodes run)" if sub.rescue else ""))
    if not args.wait:
        return None
    run = wait_dag(sub, timeout=args.timeout)
    err(f"dag: DAGMan exited with status {run.exit_status} after {run.wall_s:.1f}s "
        f"(DAGMan's own duration {run.metrics.get('duration', '?')}s)")
    return run


def cmd_dag(args: argparse.Namespace) -> int:
    from .dagman import read_node_status

    if args.status:
        _show_dag_status(read_node_status(_job_dir(args) / (args.name + ".status")), args.json)
        return 0
    from .dag import write_job_dag

    job = _prepare(args, chunk=args.chunk, max_rows=args.max)
    files = write_job_dag(job, name=args.name, fresh=args.fresh)
    if args.json and not args.wait:
        emit_json(files)
    err(f"dag: wrote {files.dag} ({len(files.nodes)} chunk node(s) with RETRY "
        f"{job.config.max_retries}, FINAL node {files.final} -> scatter.html); "
        f"node status file {files.status_file.name}")
    if not (args.submit or args.wait):
        err(f"dag: next: cd {job.dir} && condor_submit_dag {files.dag.name}   "
            f"(then: condorkit dag --status)")
        return 0
    from .render import extra_commands

    run = _submit_and_wait(args, files.dag, extra_commands(job, dag=True)[1])
    if run is None:
        return 0
    _show_dag_status(read_node_status(files.status_file), args.json)
    if not run.ok:
        raise RunFailed(f"the DAG failed (DAGMan exit status {run.exit_status})",
                        f"fix the cause (see {job.dir}/logs), then run the same command again: "
                        "DAGMan's rescue DAG reruns only the unfinished nodes")
    err(f"dag: wrote {job.dir / 'scatter.html'}")
    return 0


def _print_graph(args: argparse.Namespace, report: Any) -> int:
    from .graph import format_report

    if report.backend == "pool":
        sys.stderr.write("".join(r.stderr for r in report.results))
    if args.json:
        emit_json(report)
    elif args.reorder or report.backend == "pool":
        lines = format_report(report, number=args.number, node=args.node, eot=args.eot,
                              ordered=args.reorder)
        out("".join(line + "\n" for line in lines))
    n = len(report.results) + len(report.pending)
    err(f"graph: {n} task(s): {len(report.succeeded)} succeeded, {len(report.failed)} failed, "
        f"{len(report.skipped)} skipped" + (f", {len(report.pending)} not finished"
                                            if report.pending else "")
        + (f"; wall {report.wall_s:.2f}s on {report.workers} worker(s)"
           if report.backend == "local" else ""))
    if report.pending:
        raise RunFailed(f"the DAG has not finished: {len(report.pending)} task(s) pending",
                        "wait for it (condor_q -dag), then collect again")
    if report.failed:
        raise RunFailed(f"{len(report.failed)} task(s) failed: {' '.join(report.failed)}",
                        "their dependents did not run; fix the cause and run again")
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    from .graph import format_result, read_graph, reorder, run_graph

    if args.reorder_input:
        path = args.reorder_input
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        lines = reorder(text.splitlines(), node=args.node, keep_number=args.number)
        out("".join(line + "\n" for line in lines))
        return 0
    if args.collect:
        from .dag import collect_graph

        return _print_graph(args, collect_graph(Path(args.collect)))
    if not args.graph:
        raise UsageError("no graph file given", "condorkit graph [OPTIONS] GRAPH [--] CMD...")
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    graph = read_graph(args.graph)
    if args.dag:
        from .dag import collect_graph, write_graph_dag

        commands = _graph_commands(args)
        files = write_graph_dag(graph, command, Path(args.dag), stdin=args.stdin,
                                retries=args.retries, inputs=[Path(p) for p in args.inputs],
                                fresh=args.fresh, commands=commands)
        err(f"graph: wrote {files.dag} ({len(files.nodes)} task node(s), {len(graph.edges)} "
            f"dependencies); node status file {files.status_file.name}")
        if not (args.submit or args.wait):
            err(f"graph: next: cd {files.dag.parent} && condor_submit_dag {files.dag.name}   "
                f"(then: condorkit graph --collect {files.dag.parent})")
            return 0
        if _submit_and_wait(args, files.dag, commands) is None:
            return 0
        return _print_graph(args, collect_graph(files.dag.parent))

    def on_result(r: Any) -> None:
        if r.stderr:
            sys.stderr.write(r.stderr)
            sys.stderr.flush()
        if not (args.reorder or args.json):
            out("".join(line + "\n" for line in format_result(r, args.number, args.node,
                                                                args.eot)))

    report = run_graph(graph, command, workers=args.jobs, stdin=args.stdin,
                       timeout=args.task_timeout, on_result=on_result)
    return _print_graph(args, report)


def _add_dag_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """`dag` (a job as a DAGMan workflow) and `graph` (paexec -g task graphs)."""
    pool = argparse.ArgumentParser(add_help=False)
    g = pool.add_argument_group("pool")
    g.add_argument("--fresh", action="store_true",
                   help="delete rescue DAGs of an earlier run of a different DAG")
    g.add_argument("--submit", action="store_true",
                   help="run condor_submit_dag (or $CONDORKIT_SUBMIT_DAG) on the written DAG")
    g.add_argument("--wait", action="store_true", help="submit, then wait for DAGMan to exit")
    g.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits")

    s = sub.add_parser("dag", parents=[common, pool], help="write the job as a DAGMan workflow: "
                       "a RETRY node per chunk, a FINAL node that writes scatter.html")
    s.add_argument("--name", default="condorkit.dag", help="DAG file name in the job folder")
    s.add_argument("--status", action="store_true",
                   help="show the node status file of the DAG instead of writing it")
    s.add_argument("--chunk", type=int, help="rows per chunk")
    s.add_argument("--max", type=int, help="cap on the number of rows")
    _add_job_options(s)
    s.set_defaults(func=cmd_dag)

    s = sub.add_parser("graph", parents=[common, pool], help="run a task graph (paexec -g "
                       "format) locally, or write it as a DAG for the pool",
                       usage="condorkit graph [OPTIONS] GRAPH [--] CMD [ARGS...]",
                       description="Each line of GRAPH is a task `A` or a dependency `A B` (B "
                       "depends on A). Every task runs CMD ARGS... TASK; its exit status decides "
                       "success; a failed task's dependents do not run. Output as paexec -g.")
    s.add_argument("-j", "--jobs", type=int, default=1, help="parallel local workers")
    s.add_argument("-l", dest="number", action="store_true", help="prefix the task number")
    s.add_argument("-r", dest="node", action="store_true",
                   help="prefix the node (local worker 0..N-1, or pool slot)")
    s.add_argument("-e", dest="eot", action="store_true", help="an empty line after each task")
    s.add_argument("--reorder", action="store_true",
                   help="print at the end, in task order (like paexec_reorder)")
    s.add_argument("--stdin", action="store_true",
                   help="give the task name on stdin instead of as the last argument")
    s.add_argument("--task-timeout", type=float, help="seconds before a local task fails")
    s.add_argument("--dag", metavar="DIR", help="write DIR/graph.dag for the pool instead")
    s.add_argument("--retries", type=int, default=0, help="DAG RETRY per task node")
    s.add_argument("--input", dest="inputs", action="append", default=[], metavar="FILE",
                   help="extra file transferred with every task node (repeatable)")
    s.add_argument("--collect", metavar="DIR", help="print the outcome of a pool run in DIR")
    s.add_argument("--reorder-input", metavar="FILE",
                   help="reorder tagged output (-l, and -r with it) from FILE or - ")
    _add_pool_options(s)
    s.add_argument("graph", nargs="?", help="the graph file")
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (task name appended)")
    s.set_defaults(func=cmd_graph)


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
    _add_job_options(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("aggregate", parents=[common], help="results-*.json -> scatter.html")
    s.add_argument("results", nargs="*", help="results files (default: JOB/results/*.json)")
    s.add_argument("-o", "--output", default="scatter.html", help="HTML file to write")
    s.add_argument("--manifest", help="manifest giving the expected rows (default from config)")
    s.add_argument("--no-manifest", action="store_true", help="do not check coverage")
    s.add_argument("--allow-missing", action="store_true", help="exit 0 even if rows are missing")
    s.add_argument("--chunk", type=int, help="rows per chunk the results were made with "
                   "(default: read from results-1.json)")
    s.set_defaults(func=cmd_aggregate)

    s = sub.add_parser("demo", parents=[common], help="create a photodemo job folder with images")
    s.add_argument("folder", help="folder to create")
    s.add_argument("--images", type=int, default=120, help="number of generated photos")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chunk", type=int, default=20, help="rows per chunk in its condorkit.toml")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("bundle", parents=[common], help="pack the job's Python environment "
                       "(interpreter + packages) into one tarball for the workers")
    s.add_argument("-r", "--requirements", metavar="FILE",
                   help="pip requirements file (default: JOB/requirements.txt)")
    s.add_argument("--no-requirements", action="store_true",
                   help="ship only the interpreter and its standard library")
    s.add_argument("-o", "--output", metavar="DIR", help="folder for the tarball (default: JOB)")
    s.add_argument("--python", help="base interpreter to ship (default: the one running "
                   "condorkit)")
    s.add_argument("--force", action="store_true", help="rebuild even if an identical bundle "
                   "exists (e.g. to pick up newer versions of unpinned packages)")
    s.set_defaults(func=cmd_bundle)
    _add_pool_commands(sub, common)
    _add_dag_commands(sub, common)
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
