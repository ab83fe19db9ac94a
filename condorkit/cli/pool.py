"""Commands that talk to an HTCondor pool: submit, resubmit, status, wait, retrieve, history,
where."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from condorkit.cli.common import (
    Progress,
    add_job_options,
    config_of,
    emit_json,
    err,
    job_dir_of,
    out,
    prepare_job,
    table,
)
from condorkit.errors import RunFailed, UsageError

# ----------------------------------------------------------------------------- pool commands


def _run_record(args: argparse.Namespace) -> Any:
    """The run to look at: the current one, or ``--cluster N`` (a cluster submitted with
    ``condor_submit`` from this folder is adopted: its run record is written from its job ads)."""
    from condorkit.condor.submit import adopt_run, load_run, runs_dir

    cluster = getattr(args, "cluster", None)
    if cluster is not None and not (runs_dir(job_dir_of(args)) / f"{cluster}.json").is_file():
        return adopt_run(job_dir_of(args), config_of(args), cluster)
    return load_run(job_dir_of(args), cluster)


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
    from condorkit.condor.monitor import queued_chunks

    queued = queued_chunks(job.dir, schedd)
    clash = [f"{c.start} ({queued[c.start]})" for c in todo if c.start in queued]
    if clash:
        raise UsageError(f"{len(clash)} chunk(s) still have a job in the queue: "
                         f"{', '.join(clash[:5])}{' ...' if len(clash) > 5 else ''}",
                         "wait for them (condorkit wait), or remove them (condor_rm CLUSTER); "
                         "condorkit resubmit --missing removes held jobs of the last run")


def cmd_submit(args: argparse.Namespace) -> int:
    from condorkit.condor.submit import chunks_to_run, submit_run

    job = prepare_job(args, chunk=args.chunk, max_rows=args.max)
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
    from condorkit.condor.monitor import status
    from condorkit.condor.submit import chunks_to_run, remove, submit_run

    prev = _run_record(args)
    st = status(prev)
    busy = [c for c in st.chunks if c.state in ("idle", "running", "completed")]
    if busy:
        raise UsageError(f"run {prev.cluster} still has {len(busy)} job(s) queued, running or "
                         "waiting for retrieval", "let it finish first: condorkit wait")
    job = prepare_job(args, chunk=args.chunk or prev.chunk_size, max_rows=args.max or prev.max_rows)
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
    from condorkit.condor.monitor import status

    st = status(_run_record(args))
    if args.json:
        emit_json(st)
    else:
        _render_status(st)
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from condorkit.condor.monitor import wait

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
    from condorkit.condor.monitor import RunWatcher, fetch_outputs

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
    from condorkit.condor.monitor import history

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
    from condorkit.condor.monitor import where

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


def add_pool_commands(sub: Any, common: argparse.ArgumentParser) -> None:
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
        add_job_options(s)
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


