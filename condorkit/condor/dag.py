"""DAGMan workflows: a job as a DAG, and a task graph as a DAG.

Owns rendering DAG files and their node submit files from the Jinja templates
(``job.dag.j2``, ``dag-chunk.sub.j2``, ``dag-aggregate.sub.j2``, ``graph.dag.j2``,
``graph-task.sub.j2``; ``JOB/templates/`` overrides them), building the FINAL node's aggregator,
and turning a finished pool graph run (read with :mod:`condorkit.condor.dagman`) into the same
:class:`~condorkit.model.graph.GraphReport` as a local run. Every value reaches a template through
:mod:`condorkit.condor.quoting`. Library code only: prints nothing.

Decisions (see docs/dag.md):
- The FINAL node aggregates on a worker: ``.condorkit/ckaggregate.pyz`` is a zipapp of condorkit's
  own standard-library-only aggregation modules (plus the page fragments), run by the worker's
  ``python3`` (>= 3.10) over the transferred results folder; it returns scatter.html and a JSON
  report. Nothing needs condorkit installed on the pool, and no local or scheduler universe
  job runs condorkit on the schedd's machine. It exits 1 when rows are missing, and since a FINAL
  node decides the DAG's status, the DAG then fails and a rescue DAG is written.
- Submission is ``condor_submit_dag`` on the submit machine (see :mod:`condorkit.condor.dagman`):
  DAGMan runs there as a scheduler-universe job, so its own tools find its configuration. The
  host bindings' ``Submit.from_dag`` would need per-installation fix-ups instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from condorkit.condor.dagman import read_node_log, read_node_status
from condorkit.condor.quoting import (
    dag_name,
    dag_path,
    dag_vars_value,
    submit_arg,
    submit_args,
    submit_file_list,
    submit_value,
)
from condorkit.condor.render import environment, submit_values
from condorkit.condor.submitcmds import SubmitCommand, check_rendered
from condorkit.errors import GraphError, RenderError, UsageError
from condorkit.model.fileio import write_output
from condorkit.model.graph import (
    FAILURE,
    SKIPPED,
    SUCCESS,
    GraphReport,
    TaskGraph,
    TaskResult,
    check_command,
)
from condorkit.model.job import Job
from condorkit.model.layout import AGGREGATOR, STATE_DIR, chunk_label
from condorkit.model.packaged import package_dir
from condorkit.version import __version__
from condorkit.wrappers import ckjob

JOB_DAG = "condorkit.dag"
FINAL_NODE = "aggregate"
HTML = "scatter.html"
REPORT = "aggregate.json"
GRAPH_DAG = "graph.dag"
GRAPH_JSON = "graph.json"
GRAPH_FORMAT = "condorkit-graph/1"
STATUS_SUFFIX = ".status"


@dataclass(frozen=True)
class DagFiles:
    """What a ``write_*_dag`` call wrote: the DAG, its node status file, its nodes."""

    dag: Path
    status_file: Path
    submit_files: tuple[Path, ...]
    nodes: tuple[str, ...]
    final: str = ""


def _render(env: jinja2.Environment, name: str, values: dict[str, object]) -> str:
    try:
        return env.get_template(name).render(**values)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(f"template {exc.name!r} not found", "reinstall condorkit") from exc
    except jinja2.UndefinedError as exc:
        raise RenderError(f"template {name}: {exc.message}",
                          "use only the documented template values") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"template {exc.filename}:{exc.lineno}: {exc.message}",
                          "fix the template syntax") from exc


def _write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file of the DAG (user-named: never replaces what is not a regular file)."""
    data = text.encode("utf-8")
    regular = path.is_file() and not path.is_symlink()
    if not regular or path.read_bytes() != data:
        write_output(path, data, "DAG file", mode=mode)
    else:
        os.chmod(path, mode)


def _rescue_files(dag: Path) -> list[Path]:
    return sorted(dag.parent.glob(dag.name + ".rescue[0-9][0-9][0-9]"))


def _write_dag(dag: Path, text: str, fresh: bool) -> None:
    """Write the DAG, refusing to change it under an existing rescue DAG unless ``fresh``."""
    rescues = _rescue_files(dag)
    if rescues and fresh:
        for r in rescues:
            r.unlink()
    elif rescues and (not dag.is_file() or dag.read_text(encoding="utf-8") != text):
        raise UsageError(f"{rescues[-1]} records an earlier run of a different {dag.name}; "
                         "changing the DAG under it would make DAGMan skip the wrong nodes",
                         "submit the DAG as it is to finish that run, or pass --fresh to "
                         "delete the rescue DAG(s) and start over")
    _write_text(dag, text)


# ----------------------------------------------------------------------------- job as a DAG

_AGG_MAIN = '''\
"""condorkit FINAL node: aggregate a results folder into scatter.html on a worker.

python3 ckaggregate.pyz RESULTS --expected N -o scatter.html --report aggregate.json
Exit 0: every expected row has a value or a recorded error; 1: rows are missing (the DAG fails
and its rescue DAG reruns the failed chunks); 2: aggregation itself failed. The page and the
report are written in every case, so HTCondor always finds the node's output files.
"""
import argparse
import html
import json
import sys


def main():
    p = argparse.ArgumentParser(prog="ckaggregate")
    p.add_argument("results")
    p.add_argument("--expected", type=int, default=None)
    p.add_argument("-o", "--output", default="scatter.html")
    p.add_argument("--report", default="aggregate.json")
    a = p.parse_args()
    try:
        if sys.version_info < (3, 10):
            raise RuntimeError("needs Python 3.10 or newer, this worker has %d.%d"
                               % sys.version_info[:2])
        from pathlib import Path
        from condorkit.report.aggregate import aggregate
        rep = aggregate([a.results], expected_rows=a.expected, out_html=Path(a.output),
                        workers=1)
        doc = rep.to_dict()
        code = 0 if rep.complete else 1
    except Exception as exc:
        doc = {"error": "%s: %s" % (type(exc).__name__, exc)}
        code = 2
        with open(a.output, "w", encoding="utf-8") as fh:
            fh.write("<!doctype html><meta charset=utf-8><title>condorkit: no chart</title>"
                     "<p>aggregation failed: %s</p>\\n" % html.escape(doc["error"]))
    doc["exit_code"] = code
    with open(a.report, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
    keys = ("expected", "found", "errors", "missing", "error")
    print("ckaggregate: " + json.dumps({k: doc[k] for k in keys if k in doc}), file=sys.stderr)
    return code


sys.exit(main())
'''


# The FINAL node's zipapp carries the standard-library-only modules aggregation imports.
_AGG_PACKAGES = (("condorkit", "condorkit/", ("__init__.py", "errors.py", "version.py")),
                 ("condorkit.model", "condorkit/model/", ("__init__.py", "results.py",
                                                          "layout.py", "fileio.py",
                                                          "host.py")),
                 ("condorkit.report", "condorkit/report/", ("__init__.py", "aggregate.py",
                                                            "chart.py")),
                 ("condorkit.wrappers", "condorkit/wrappers/", ("__init__.py", "ckjob.py")))


def _package_members() -> list[tuple[str, bytes]]:
    members: list[tuple[str, bytes]] = [("__main__.py", _AGG_MAIN.encode())]
    for pkg, prefix, names in _AGG_PACKAGES:
        for item in package_dir(pkg).iterdir():
            if item.is_file() and item.name in names:
                members.append((prefix + item.name, item.read_bytes()))
    for item in (package_dir("condorkit.report") / "html").iterdir():
        if item.is_file() and item.name.endswith((".html", ".js", ".css")):
            members.append(("condorkit/report/html/" + item.name, item.read_bytes()))
    return sorted(members)


def build_aggregator(dest: Path) -> Path:
    """Write the FINAL node's zipapp (deterministic bytes; rewritten only when it changes)."""
    buf = io.BytesIO()
    buf.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in _package_members():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    data = buf.getvalue()
    if not dest.is_file() or dest.read_bytes() != data:
        ckjob.atomic_write_bytes(str(dest), data)
    os.chmod(dest, 0o755)
    return dest


def chunk_node(start: int) -> str:
    return dag_name(chunk_label(start))


def write_job_dag(job: Job, name: str = JOB_DAG, status_interval: int = 5,
                  fresh: bool = False) -> DagFiles:
    """Write ``JOB/NAME`` (one RETRY node per chunk, FINAL aggregate node, node status file)
    and its node submit files and aggregator under ``JOB/.condorkit/``."""
    dag_name(name, "DAG file name")
    state = job.dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    dag = job.dir / name
    status = job.dir / (name + STATUS_SUFFIX)
    chunk_sub = state / "dag-chunk.sub"
    agg_sub = state / "dag-aggregate.sub"
    pyz = build_aggregator(state / AGGREGATOR)
    env = environment(job.dir)
    values = submit_values(job, dag=True)
    extra = values["extra_commands"]
    chunk_text = _render(env, "dag-chunk.sub.j2", values)
    check_rendered(chunk_text, extra, "dag-chunk.sub.j2")  # type: ignore[arg-type]
    _write_text(chunk_sub, chunk_text)
    cfg = job.config
    results = Path(cfg.results_dir).name
    report_remap = f"{REPORT}={cfg.log_dir}/{REPORT}"
    agg = dict(values)
    agg.update({
        "executable": submit_value(str(pyz), "aggregator"),
        "arguments": submit_args([results, "--expected", str(job.rows), "-o", HTML,
                                  "--report", REPORT]),
        "transfer_input_files": submit_file_list([cfg.results_dir], "transfer_input_files"),
        "transfer_output_files": submit_file_list([HTML, REPORT], "transfer_output_files"),
        "transfer_output_remaps": '"' + submit_file_list([report_remap], "remaps") + '"',
        "html": HTML,
        "request_memory": "512MB",
        "request_disk": "1GB",
    })
    agg_text = _render(env, "dag-aggregate.sub.j2", agg)
    check_rendered(agg_text, extra, "dag-aggregate.sub.j2")  # type: ignore[arg-type]
    _write_text(agg_sub, agg_text)
    nodes = [{"name": chunk_node(c.start), "start": dag_vars_value(str(c.start)),
              "count": dag_vars_value(str(c.count))} for c in job.chunks]
    text = _render(env, "job.dag.j2", {
        "version": __version__, "rows": job.rows, "manifest": values["manifest"],
        "dag_name": dag_path(name, "DAG file name"), "nodes": nodes,
        "retries": int(cfg.max_retries), "final": dag_name(FINAL_NODE),
        "chunk_submit": dag_path(str(chunk_sub), "submit file"),
        "aggregate_submit": dag_path(str(agg_sub), "submit file"),
        "status_file": dag_path(str(status), "node status file"),
        "status_interval": int(status_interval),
    })
    _write_dag(dag, text, fresh)
    return DagFiles(dag, status, (chunk_sub, agg_sub), tuple(str(n["name"]) for n in nodes),
                    FINAL_NODE)


# ----------------------------------------------------------------------------- graph as a DAG


def _printable(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", "?", text)


def task_node(number: int) -> str:
    return dag_name(f"t{number}")


def write_graph_dag(graph: TaskGraph, command: Sequence[str], out_dir: Path,
                    stdin: bool = False, retries: int = 0, inputs: Sequence[Path] = (),
                    request_memory: str = "128MB", request_disk: str = "64MB",
                    status_interval: int = 2, fresh: bool = False,
                    commands: Sequence[SubmitCommand] = ()) -> DagFiles:
    """Write ``OUT/graph.dag`` (node tN = task N, one PARENT/CHILD line per edge), the node
    submit file, ``graph.json`` and, with ``stdin``, ``in/tN.txt``. A command given as a path is
    copied to ``OUT/cmd/`` and transferred; a bare name is looked up on PATH here and must exist
    at the same path on the workers. ``commands``: extra submit commands for every task node
    (:mod:`condorkit.submitcmds`, already checked)."""
    cmd = check_command(command)
    out_dir = out_dir.resolve()
    for sub in ("cmd", "out", "in"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    if "/" in cmd[0]:
        exe = out_dir / "cmd" / Path(cmd[0]).name
        shutil.copy2(cmd[0], exe)
        os.chmod(exe, 0o755)
        transfer = "true"
    else:
        exe = Path(shutil.which(cmd[0]) or cmd[0])
        transfer = "false"
    for p in inputs:
        if not Path(p).is_file():
            raise UsageError(f"input file {p} does not exist", "check the path")
    args = submit_args([*cmd[1:]] if stdin else [*cmd[1:], "$(task)"], keep=("task",))
    sub_path = out_dir / "task.sub"
    env = environment(None)
    task_text = _render(env, "graph-task.sub.j2", {
        "version": __version__, "source_name": _printable(Path(graph.source).name),
        "initialdir": submit_value(str(out_dir), "folder"),
        "executable": submit_value(str(exe), "executable"), "transfer_executable": transfer,
        "arguments": args, "stdin": stdin,
        "transfer_input_files": submit_file_list([str(Path(p).resolve()) for p in inputs],
                                                 "transfer_input_files") if inputs else "",
        "request_memory": submit_value(request_memory.replace(" ", ""), "request_memory"),
        "request_disk": submit_value(request_disk.replace(" ", ""), "request_disk"),
        "submit_commands": [c.line for c in commands],
    })
    check_rendered(task_text, commands, "graph-task.sub.j2")
    _write_text(sub_path, task_text)
    nodes = []
    for n, task in enumerate(graph.tasks, start=1):
        try:
            value = dag_vars_value(submit_arg(task), "task name")
        except RenderError as exc:
            raise GraphError(f"task {task!r} cannot be passed through a DAG: {exc.message}",
                             exc.hint) from exc
        nodes.append({"name": task_node(n), "task": value})
        if stdin:
            _write_text(out_dir / "in" / f"t{n}.txt", task + "\n")
    edges = [(task_node(graph.number(a)), task_node(graph.number(b))) for a, b, _ in graph.edges]
    dag = out_dir / GRAPH_DAG
    status = out_dir / (GRAPH_DAG + STATUS_SUFFIX)
    doc = {"format": GRAPH_FORMAT, "source": graph.source, "tasks": list(graph.tasks),
           "edges": [list(e) for e in graph.edges], "command": list(cmd), "stdin": stdin}
    _write_text(out_dir / GRAPH_JSON, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    text = _render(env, "graph.dag.j2", {
        "version": __version__, "source_name": _printable(Path(graph.source).name),
        "dag_name": GRAPH_DAG, "nodes": nodes, "edges": edges, "retries": int(retries),
        "task_submit": dag_path(str(sub_path), "submit file"),
        "status_file": dag_path(str(status), "node status file"),
        "status_interval": int(status_interval),
    })
    _write_dag(dag, text, fresh)
    return DagFiles(dag, status, (sub_path,), tuple(str(n["name"]) for n in nodes))


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


def collect_graph(out_dir: Path) -> GraphReport:
    """A pool graph run's outcome from its folder, as the local runner reports it."""
    from condorkit.model.graph import parse_graph

    out_dir = Path(out_dir)
    try:
        doc = json.loads((out_dir / GRAPH_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{out_dir / GRAPH_JSON} is missing or unreadable: {exc}",
                         "pass the folder written by `condorkit graph --dag DIR`") from exc
    if doc.get("format") != GRAPH_FORMAT:
        raise UsageError(f"{out_dir / GRAPH_JSON} is not a {GRAPH_FORMAT} file", "")
    text = "".join(f"{t}\n" for t in doc["tasks"]) + "".join(f"{a} {b}\n"
                                                            for a, b, _ in doc["edges"])
    graph = parse_graph(text, doc["source"])
    status = read_node_status(out_dir / (GRAPH_DAG + STATUS_SUFFIX))
    states = {n.name: n for n in status.nodes}
    events = read_node_log(out_dir / (GRAPH_DAG + ".nodes.log"))

    def finished_at(task: str) -> tuple[float, int]:
        ev = events.get(task_node(graph.number(task)))
        return ((ev.ended or 0.0) if ev else 0.0, graph.number(task))

    results: list[TaskResult] = []
    pending: list[str] = []
    taken: set[str] = set()
    for task in sorted(graph.tasks, key=finished_at):
        num = graph.number(task)
        node = task_node(num)
        st = states.get(node)
        if st is None:
            raise UsageError(f"node {node} ({task}) is not in {status.path}",
                             "the DAG there was written for another graph")
        if st.status not in ("done", "error"):
            if st.status != "futile":
                pending.append(task)
            continue
        ev = events.get(node)
        code = ev.exit_code if ev else None  # from the node log's termination event
        output, stderr = (_read(out_dir / "out" / f"{node}.{ext}") for ext in ("out", "err"))
        down: tuple[str, ...] = ()
        if st.status == "error":  # paexec: the line lists all dependents, each skipped once
            down = graph.dependents(task)
        results.append(TaskResult(task, num, SUCCESS if st.status == "done" else FAILURE,
                                  ev.slot if ev else "", ev.host if ev else "", code, output,
                                  stderr, 0.0, 0.0, down))
        results.extend(TaskResult(d, graph.number(d), SKIPPED, cause=task) for d in down
                       if d not in taken)
        taken.update(down)
    pending.sort(key=graph.number)
    return GraphReport(graph.source, "pool", tuple(results), tuple(pending))
