"""Commands that talk to an HTCondor pool: submit, resubmit, status, wait, retrieve, history,
where."""

from __future__ import annotations

import argparse
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
    table,
)
from condorkit.errors import RunFailed

# ----------------------------------------------------------------------------- pool commands


def _run_record(args: argparse.Namespace) -> Any:
    """The run to look at: the current one, or ``--cluster N`` (adopted if needed)."""
    from condorkit.condor.runs import open_run

    return open_run(job_dir_of(args), config_of(args), getattr(args, "cluster", None))


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


def cmd_submit(args: argparse.Namespace) -> int:
    from condorkit.condor.runs import submit

    job = prepare_job(args, chunk=chunk_of(args), max_rows=args.max)
    res = submit(job, all_chunks=args.all, spool=args.spool, schedd=args.schedd)
    if res.submitted is None:
        err(f"submit: all {res.chunks} chunk(s) already have valid results; nothing to "
            "submit (--all submits them again)")
        return 0
    _report_submit(res.submitted, res.skipped_valid, "submit", args.json)
    return 0


def cmd_resubmit(args: argparse.Namespace) -> int:
    from condorkit.condor.runs import resubmit

    prev = _run_record(args)
    res = resubmit(prev, lambda p: prepare_job(args, chunk=args.chunk or p.chunk_size,
                                               max_rows=args.max or p.max_rows),
                   spool=args.spool, schedd=args.schedd)
    if res.removed_held:
        err(f"resubmit: removed {len(res.removed_held)} held job(s) of run {prev.cluster}")
    if res.submitted is None:
        err(f"resubmit: all {res.chunks} chunk(s) have valid results; nothing to submit")
        return 0
    _report_submit(res.submitted, res.skipped_valid, "resubmit", args.json)
    return 0


def _render_status(st: Any) -> None:
    c = st.counts
    pct = 100.0 * st.rows_done / st.rows if st.rows else 100.0
    err(f"run {st.cluster} on {st.schedd} ({st.job_dir}): {len(st.chunks)} chunk(s), "
        f"{st.rows_done}/{st.rows} rows done ({pct:.0f}%)")
    err("  " + "  ".join(f"{k} {v}" for k, v in c.items() if v or k != "completed"))
    for b in st.bad[:5]:
        err(f"  chunk {b.start} (rows {b.start}-{b.start + b.count - 1}, job "
            f"{st.cluster}.{b.proc}) {b.state.upper()} after {b.attempts} attempt(s): {b.reason}")
    if len(st.bad) > 5:
        err(f"  ... and {len(st.bad) - 5} more held or failed chunk(s); by cause:")
    held_before = [c for c in st.chunks if c.holds and c.state != "held"]
    for c in held_before[:5]:
        err(f"  chunk {c.start} ({c.state}) was held {len(c.holds)} time(s) and released; "
            f"last: {c.holds[-1]}")
    if st.bad:
        show_causes(st.causes)
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
        if name == "submit":
            add_target_minutes(s)
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


