"""DAG commands: ``condorkit dag`` (a job as a DAGMan workflow) and ``condorkit graph`` (task
graphs, locally or on the pool)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from condorkit.cli.common import (
    add_job_options,
    add_target_minutes,
    chunk_of,
    emit_json,
    err,
    job_dir_of,
    out,
    prepare_job,
    table,
)
from condorkit.errors import RunFailed, UsageError

# ----------------------------------------------------------------------------- DAGMan and graphs


def _show_dag_status(st: Any, as_json: bool) -> None:
    if as_json:
        emit_json(st)
        return
    out(table([(n.name, n.status, n.retries, n.details) for n in st.nodes],
              ("node", "status", "retries", "details")))
    counts = ", ".join(f"{k} {v}" for k, v in st.counts.items() if v)
    err(f"dag: {st.dag_status}{' (final)' if st.done else ''}; nodes: {counts}")


#: pool options that `graph --dag` takes for its task nodes (it has no job folder/condorkit.toml)
GRAPH_POOL_OPTIONS = ("project_name", "request_gpus", "batch_name", "accounting_group",
                      "container_image", "submit_cmds")


def _graph_commands(args: argparse.Namespace) -> Any:
    """The extra submit commands of `graph --dag`, from its command line, checked by HTCondor."""
    from condorkit.condor.submitcmds import check_commands, submit_commands
    from condorkit.model.config import JobConfig, parse_pairs

    opts = {k: getattr(args, k) for k in GRAPH_POOL_OPTIONS if getattr(args, k, None)}
    if "submit_cmds" in opts:
        opts["submit_cmds"] = parse_pairs(opts["submit_cmds"])
    cfg = JobConfig(sources={k: "command line" for k in opts}, **opts)
    cmds = submit_commands(cfg)
    check_commands(cmds)
    return cmds


def _submit_and_wait(args: argparse.Namespace, dag: Path, commands: Any = ()) -> Any:
    from condorkit.condor.dagman import submit_dag, wait_dag
    from condorkit.condor.submitcmds import dagman_appends

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
    from condorkit.condor.dagman import read_node_status

    if args.status:
        _show_dag_status(read_node_status(job_dir_of(args) / (args.name + ".status")), args.json)
        return 0
    from condorkit.condor.dag import write_job_dag

    job = prepare_job(args, chunk=chunk_of(args), max_rows=args.max)
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
    from condorkit.condor.render import extra_commands

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
    from condorkit.model.graph import format_report

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
    from condorkit.local.graph import run_graph
    from condorkit.model.graph import format_result, read_graph, read_rows, reorder

    if args.reorder_input:
        path = args.reorder_input
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        lines = reorder(text.splitlines(), node=args.node, keep_number=args.number)
        out("".join(line + "\n" for line in lines))
        return 0
    if args.collect:
        from condorkit.condor.dag import collect_graph

        return _print_graph(args, collect_graph(Path(args.collect)))
    if not args.graph:
        raise UsageError("no graph file given", "condorkit graph [OPTIONS] GRAPH [--] CMD...")
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {args.retries}", "e.g. --retries 2")
    if args.restarts < 0:
        raise UsageError(f"--restarts must be 0 or more, got {args.restarts}", "e.g. --restarts 3")
    if args.jobs < 1:
        raise UsageError(f"-j needs at least 1 worker, got {args.jobs}", "e.g. -j 2")
    if args.task_timeout is not None and not args.task_timeout > 0:
        raise UsageError(f"--task-timeout must be positive seconds, got {args.task_timeout}",
                         "e.g. --task-timeout 600")
    graph = read_rows(args.graph) if args.rows else read_graph(args.graph)
    if args.dag:
        from condorkit.condor.dag import collect_graph, write_graph_dag

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
                                                                args.eot, graph.rows)))

    from condorkit.model.interpreter import python_command

    command = python_command(tuple(command), os.environ.get("CONDORKIT_PYTHON", ""),
                             "environment")
    calc = None
    if args.calculator:
        from condorkit.local.slots import MAGIC_EOT, Protocol

        calc = Protocol(MAGIC_EOT if args.magic_eot else args.eot_marker)
    report = run_graph(graph, command, workers=args.jobs, stdin=args.stdin,
                       timeout=args.task_timeout, on_result=on_result, calculator=calc,
                       retries=args.restarts, weighted=args.weighted)
    return _print_graph(args, report)


def add_dag_commands(sub: Any, common: argparse.ArgumentParser) -> None:
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
    add_target_minutes(s)
    s.add_argument("--max", type=int, help="cap on the number of rows")
    add_job_options(s)
    s.set_defaults(func=cmd_dag)

    s = sub.add_parser("graph", parents=[common, pool], help="run a task graph (paexec -g "
                       "format) locally, or write it as a DAG for the pool",
                       usage="condorkit graph [OPTIONS] GRAPH [--] CMD [ARGS...]",
                       description="Each line of GRAPH is a task `A` or a dependency `A B` (B "
                       "depends on A). Every task runs CMD ARGS... TASK; its exit status decides "
                       "success; a failed task's dependents do not run. Output as paexec -g. "
                       "With -c, CMD is a paexec calculator (one per worker: a task per line "
                       "in; answer lines and an end-of-task marker out).")
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
    s.add_argument("--rows", action="store_true", help="GRAPH is a plain task list: each "
                   "line is one independent task (paexec without -g)")
    s.add_argument("-c", "--calculator", action="store_true",
                   help="CMD is a paexec calculator: one per worker reads one task per line "
                   "and answers lines ending in an end-of-task marker (graphs: the line "
                   "before it is success or failure)")
    s.add_argument("--eot-marker", default="", metavar="LINE",
                   help="the calculator's end-of-task line (default: an empty line)")
    s.add_argument("-y", dest="magic_eot", action="store_true",
                   help="paexec's magic end-of-task line instead of an empty line")
    s.add_argument("--restarts", type=int, default=3, metavar="N",
                   help="restart a calculator that died during a task and retry the task up "
                   "to N times (paexec -Z), then the task fails (default 3)")
    s.add_argument("-W", dest="weighted", action="store_true",
                   help="heavier tasks first: a task's weight (`weight: TASK N`, default 1) "
                   "plus the weights of all its dependents (paexec -W)")
    s.add_argument("--dag", metavar="DIR", help="write DIR/graph.dag for the pool instead")
    s.add_argument("--retries", type=int, default=0, help="DAG RETRY per task node")
    s.add_argument("--input", dest="inputs", action="append", default=[], metavar="FILE",
                   help="extra file transferred with every task node (repeatable)")
    s.add_argument("--collect", metavar="DIR", help="print the outcome of a pool run in DIR")
    s.add_argument("--reorder-input", metavar="FILE",
                   help="reorder tagged output (-l, and -r with it) from FILE or - ")
    add_job_options(s, GRAPH_POOL_OPTIONS, "pool options of the task nodes (with --dag)")
    s.add_argument("graph", nargs="?", help="the graph file")
    s.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (task name appended)")
    s.set_defaults(func=cmd_graph)


