"""Writing DAGs (a job, a task graph), the FINAL node's aggregator, reading DAGMan's files.

HTCondor's own parser checks the node submit files; the aggregator zipapp runs under real Python
interpreters; the node status file and node log texts below are DAGMan 23.9.6 output.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob

from condorkit.condor.dag import (
    _AGG_PACKAGES,
    build_aggregator,
    collect_graph,
    write_graph_dag,
    write_job_dag,
)
from condorkit.condor.dagman import read_node_log, read_node_status, submit_dag
from condorkit.condor.quoting import parse_submit_args
from condorkit.condor.submit import _htcondor
from condorkit.errors import CondorError, GraphError, UsageError
from condorkit.model.config import load_config
from condorkit.model.graph import FAILURE, SKIPPED, SUCCESS, parse_graph
from condorkit.model.job import prepare

FAKE_PROGRAM = '''import hashlib, sys
import ckjob
ckjob.map_rows(sys.argv[1], sys.argv[2], lambda row: {"luminance": int(hashlib.sha256(
    row["url"].encode()).hexdigest()[:8], 16) / 2**32})
'''


def make_job(folder: Path, rows: int = 25, toml: str = "chunk = 10\nmax_retries = 2\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.txt").write_text("".join(f"http://127.0.0.1:1/i{i}.jpg {1880 + i}\n"
                                                 for i in range(1, rows + 1)))
    (folder / "fake.py").write_text(FAKE_PROGRAM)
    (folder / "condorkit.toml").write_text(
        'program = "fake.py"\ncolumns = ["url:url", "year:int"]\n' + toml)
    return folder


def job_of(folder: Path):  # type: ignore[no-untyped-def]
    return prepare(folder, load_config(folder, {}))


def expand(submit_text: str, **macros: str) -> dict[str, str]:
    sub = _htcondor().Submit(submit_text)
    for k, v in macros.items():
        sub[k] = v
    keys = ("executable", "arguments", "transfer_input_files", "transfer_output_files",
            "initialdir")
    return {k: str(sub.expand(k)) for k in keys if k in sub}


# ----------------------------------------------------------------------------- job DAG


def test_job_dag_has_a_retry_node_per_chunk_a_final_node_and_a_status_file(
        tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job"))
    files = write_job_dag(job)
    text = files.dag.read_text()
    assert files.nodes == ("chunk-1", "chunk-11", "chunk-21") and files.final == "aggregate"
    assert re.findall(r"^VARS (\S+) start=\"(\d+)\" count=\"(\d+)\"$", text, re.M) == [
        ("chunk-1", "1", "10"), ("chunk-11", "11", "10"), ("chunk-21", "21", "5")]
    assert re.findall(r"^RETRY (\S+) 2$", text, re.M) == list(files.nodes)
    assert f"FINAL aggregate {job.dir}/.condorkit/dag-aggregate.sub" in text
    assert f"NODE_STATUS_FILE {job.dir}/condorkit.dag.status 5" in text
    assert text.count("\nJOB ") == 3 and "PARENT" not in text  # FINAL waits for all by itself


def test_chunk_node_submit_file_expands_like_the_flat_job(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job"))
    files = write_job_dag(job)
    chunk_sub = files.submit_files[0].read_text()
    assert "max_retries" not in chunk_sub and "\nqueue\n" in chunk_sub
    ex = expand(chunk_sub, start="11", count="10")
    assert parse_submit_args(ex["arguments"]) == ["fake.py", "rows-11.jsonl", "results-11.json"]
    assert ex["transfer_input_files"] == "fake.py, .condorkit/ckjob.py, chunks/rows-11.jsonl"
    assert ex["initialdir"] == str(job.dir)
    agg = expand(files.submit_files[1].read_text())
    assert agg["executable"] == f"{job.dir}/.condorkit/ckaggregate.pyz"
    assert parse_submit_args(agg["arguments"]) == ["results", "--expected", "25", "-o",
                                                   "scatter.html", "--report", "aggregate.json"]
    assert agg["transfer_input_files"] == "results"
    assert agg["transfer_output_files"] == "scatter.html, aggregate.json"


def test_rewriting_is_idempotent_and_a_rescue_dag_guards_changes(tmp_path: Path) -> None:
    folder = make_job(tmp_path / "job")
    files = write_job_dag(job_of(folder))
    before = files.dag.read_bytes()
    rescue = files.dag.with_name("condorkit.dag.rescue001")
    rescue.write_text("DONE chunk-1\n")
    write_job_dag(job_of(folder))  # same DAG: fine
    assert files.dag.read_bytes() == before and rescue.exists()
    (folder / "condorkit.toml").write_text(
        'program = "fake.py"\ncolumns = ["url:url", "year:int"]\nchunk = 5\n')
    with pytest.raises(UsageError, match="rescue001 records an earlier run") as info:
        write_job_dag(job_of(folder))
    assert "--fresh" in info.value.hint and files.dag.read_bytes() == before
    write_job_dag(job_of(folder), fresh=True)
    assert not rescue.exists() and files.dag.read_bytes() != before


def test_a_job_folder_with_a_space_cannot_become_a_dag(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "my job"))
    with pytest.raises(Exception, match="white space"):
        write_job_dag(job)


# ----------------------------------------------------------------------------- aggregator


def pythons() -> list[str]:
    """This interpreter and any other python3.x here that runs (3.13 is the pool workers')."""
    found = {Path(sys.executable).resolve(): sys.executable}
    for name in ("python3", *(f"python3.{m}" for m in range(10, 15))):
        p = shutil.which(name)
        if p and Path(p).resolve() not in found and subprocess.run(
                [p, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            found[Path(p).resolve()] = p
    return list(found.values())


@pytest.mark.parametrize("python", pythons())
def test_aggregator_zipapp_runs_alone_on_a_worker_like_folder(tmp_path: Path,
                                                              python: str) -> None:
    folder = make_job(tmp_path / "job")
    job = job_of(folder)
    for c in job.chunks:
        ckjob.map_rows(str(folder / "chunks" / f"rows-{c.start}.jsonl"),
                       str(folder / "results" / f"results-{c.start}.json"),
                       lambda row: {"luminance": 0.5})
    pyz = build_aggregator(tmp_path / "ckaggregate.pyz")
    scratch = tmp_path / "scratch"  # what a worker's scratch folder holds: the results folder
    shutil.copytree(folder / "results", scratch / "results")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, "-I", str(pyz), "results", *args], cwd=scratch,
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})

    done = run("--expected", "25")
    assert done.returncode == 0, done.stderr
    report = json.loads((scratch / "aggregate.json").read_text())
    assert report["found"] == 25 and report["complete"] and report["exit_code"] == 0
    assert "<html" in (scratch / "scatter.html").read_text().lower()
    (scratch / "results" / "results-11.json").unlink()
    missing = run("--expected", "25")
    assert missing.returncode == 1 and json.loads((scratch / "aggregate.json").read_text())[
        "missing"] == "11-20"
    shutil.rmtree(scratch / "results")
    (scratch / "results").mkdir()
    (scratch / "scatter.html").unlink()
    broken = run("--expected", "25")
    assert broken.returncode == 2 and "no results files" in (scratch / "aggregate.json").read_text()
    assert "aggregation failed" in (scratch / "scatter.html").read_text()


def test_aggregator_bytes_are_deterministic(tmp_path: Path) -> None:
    a = build_aggregator(tmp_path / "a.pyz").read_bytes()
    b = build_aggregator(tmp_path / "b.pyz").read_bytes()
    assert a == b and a.startswith(b"#!/usr/bin/env python3\n")
    names = zipfile.ZipFile(tmp_path / "a.pyz").namelist()
    assert {"__main__.py", "condorkit/report/aggregate.py", "condorkit/wrappers/ckjob.py",
            "condorkit/report/chart.py"} <= set(names)
    assert any(n.startswith("condorkit/report/html/") and n.endswith(".html") for n in names)
    # every module the list names is carried: a stale or misspelt name fails here
    assert {prefix + name for _, prefix, files in _AGG_PACKAGES for name in files} <= set(names)


# ----------------------------------------------------------------------------- graph DAG

WEIRD = ["it's", 'q"z', "d$x", "back\\slash", "trail\\", "ünï", "#x;y"]


def test_graph_dag_nodes_edges_and_task_arguments(tmp_path: Path) -> None:
    g = parse_graph("".join(f"{t}\n" for t in WEIRD) + "it's ünï\nünï #x;y\n")
    cmd = tmp_path / "echo.sh"
    cmd.write_text('#!/bin/sh\necho "$@"\n')
    cmd.chmod(0o755)
    files = write_graph_dag(g, [str(cmd), "--flag", "a b"], tmp_path / "run", retries=2)
    text = files.dag.read_text()
    assert files.nodes == tuple(f"t{i}" for i in range(1, 8))
    assert "PARENT t1 CHILD t6\nPARENT t6 CHILD t7\n" in text
    assert text.count("RETRY ") == 7
    sub = (tmp_path / "run" / "task.sub").read_text()
    assert (tmp_path / "run" / "cmd" / "echo.sh").is_file()
    for i, task in enumerate(WEIRD, start=1):
        value = re.search(rf"^VARS t{i} task=(.*)$", text, re.M)
        assert value is not None
        token = re.sub(r"\\(.)", r"\1", value.group(1)[1:-1])  # DAGMan's unquoting
        if task.endswith("\\"):
            continue  # a submit *file* line ending in \ continues; DAGMan sets VARS directly
        ex = expand(sub, task=token, JOB=f"t{i}")
        assert parse_submit_args(ex["arguments"]) == ["--flag", "a b", task]
    doc = json.loads((tmp_path / "run" / "graph.json").read_text())
    assert doc["tasks"] == WEIRD and doc["command"][1:] == ["--flag", "a b"]


def test_graph_dag_stdin_mode_and_bare_commands(tmp_path: Path) -> None:
    files = write_graph_dag(parse_graph("a b\n"), ["cat"], tmp_path / "run", stdin=True)
    sub = files.submit_files[0].read_text()
    assert re.search(r"^transfer_executable += false$", sub, re.M)
    assert re.search(r"^input += in/\$\(JOB\)\.txt$", sub, re.M)
    assert (tmp_path / "run" / "in" / "t2.txt").read_text() == "b\n"
    assert parse_submit_args(expand(sub)["arguments"]) == []


def test_unrepresentable_task_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="cannot be passed through a DAG"):
        write_graph_dag(parse_graph("a$$b\n"), ["true"], tmp_path / "run")


# ----------------------------------------------------------------------------- reading DAGMan

STATUS = '''[
  Type = "DagStatus";
  DagFiles = {
    "graph.dag"
  };
  Timestamp = 1795328311; /* "Sun Nov 22 06:18:31 2026" */
  DagStatus = {dag}; /* "{dag_text}" */
  NodesTotal = 3;
  NodesDone = 1;
  NodesFutile = 1;
  NodesFailed = 1;
  JobProcsIdle = 0; /* includes held */
]
{nodes}[
  Type = "StatusEnd";
  EndTime = 1795328311; /* "Sun Nov 22 06:18:31 2026" */
  NextUpdate = {next}; /* "none" */
]
'''
NODE = '''[
  Type = "NodeStatus";
  Node = "{name}";
  NodeStatus = {code}; /* "{text}" */
  StatusDetails = "{details}";
  RetryCount = {retries};
  JobProcsQueued = 0;
  JobProcsHeld = 0;
]
'''
NODES_LOG = '''000 (057.000.000) 2026-11-22 06:18:20 Job submitted from host: SCHEDD
    DAG Node: t1
...
001 (057.000.000) 2026-11-22 06:18:22 Job executing on host: STARTD
\tSlotName: slot1_4@vm
\tCondorScratchDir = "/home/condorkit/condor/execute/dir_14079"
\tCpus = 1
...
005 (057.000.000) 2026-11-22 06:18:23 Job terminated.
\t(1) Normal termination (return value 1)
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage
\t0  -  Run Bytes Sent By Job
\t0  -  Run Bytes Received By Job
\t0  -  Total Bytes Sent By Job
\t0  -  Total Bytes Received By Job
...
000 (058.000.000) 2026-11-22 06:18:20 Job submitted from host: SCHEDD
    DAG Node: t3
...
001 (058.000.000) 2026-11-22 06:18:21 Job executing on host: STARTD
\tSlotName: slot1_2@vm
...
005 (058.000.000) 2026-11-22 06:18:21 Job terminated.
\t(1) Normal termination (return value 0)
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Remote Usage
\t\tUsr 0 00:00:00, Sys 0 00:00:00  -  Total Local Usage
\t0  -  Run Bytes Sent By Job
\t0  -  Run Bytes Received By Job
\t0  -  Total Bytes Sent By Job
\t0  -  Total Bytes Received By Job
...
'''.replace("SCHEDD", "<127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm&noUDP&sock=schedd_32077_0be8>"
            ).replace("STARTD", "<127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm&noUDP&"
                                "sock=startd_32077_0be8>")


def status_text(dag: int, nodes: list[tuple[str, int, str, str, int]], final: bool = True) -> str:
    body = "".join(NODE.format(name=n, code=c, text=t, details=d, retries=r)
                   for n, c, t, d, r in nodes)
    return STATUS.replace("{dag}", str(dag)).replace(
        "{dag_text}", "STATUS_ERROR (failed)" if dag == 6 else "STATUS_DONE (success)").replace(
        "{nodes}", body).replace("{next}", "0" if final else "1795328316")


def test_node_status_file(tmp_path: Path) -> None:
    p = tmp_path / "x.status"
    p.write_text(status_text(6, [("t1", 6, "STATUS_ERROR", "Job proc (57.0.0) failed with "
                                  'status 1 (after 1 node retries) \\"q\\"', 1),
                                 ("t2", 7, "STATUS_FUTILE", "Had an ancestor node fail", 0),
                                 ("t3", 5, "STATUS_DONE", "", 0)]))
    st = read_node_status(p)
    assert st.dag_status == "error" and st.done
    assert [(n.name, n.status, n.retries) for n in st.nodes] == [
        ("t1", "error", 1), ("t2", "futile", 0), ("t3", "done", 0)]
    assert st.node("t1").details.endswith('retries) "q"')
    assert st.counts["futile"] == 1 and st.counts["total"] == 3
    p.write_text(status_text(5, [], final=False))
    assert not read_node_status(p).done and read_node_status(p).dag_status == "done"
    p.write_text(p.read_text()[:200])
    with pytest.raises(CondorError, match="incomplete"):
        read_node_status(p)
    with pytest.raises(CondorError, match="no node status file"):
        read_node_status(tmp_path / "none")


def test_node_log(tmp_path: Path) -> None:
    p = tmp_path / "g.dag.nodes.log"
    p.write_text(NODES_LOG)
    ev = read_node_log(p)
    assert ev["t1"].cluster == 57 and ev["t1"].slot == "slot1_4@vm" and ev["t1"].host == "vm"
    assert ev["t1"].exit_code == 1 and ev["t3"].exit_code == 0 and ev["t1"].submits == 1
    assert ev["t3"].ended is not None and ev["t1"].ended is not None
    assert ev["t3"].ended < ev["t1"].ended
    assert read_node_log(tmp_path / "none") == {}


def test_collect_graph_from_dagman_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_graph_dag(parse_graph("a b\nc\n"), ["true"], run)
    (run / "graph.dag.nodes.log").write_text(NODES_LOG)
    (run / "out" / "t1.out").write_text("build a\n")
    (run / "graph.dag.status").write_text(status_text(6, [
        ("t1", 6, "STATUS_ERROR", "failed with status 1", 0),
        ("t2", 7, "STATUS_FUTILE", "Had an ancestor node fail", 0),
        ("t3", 5, "STATUS_DONE", "", 0)]))
    rep = collect_graph(run)
    assert rep.backend == "pool" and rep.outcome() == {"a": FAILURE, "b": SKIPPED, "c": SUCCESS}
    a = next(r for r in rep.results if r.name == "a")
    assert a.took_down == ("b",) and a.output == "build a\n" and a.node == "slot1_4@vm"
    assert [r.name for r in rep.results] == ["c", "a", "b"]  # in order of the jobs' ends
    (run / "graph.dag.status").write_text(status_text(6, [
        ("t1", 3, "STATUS_SUBMITTED", "", 0), ("t2", 0, "STATUS_NOT_READY", "", 0),
        ("t3", 5, "STATUS_DONE", "", 0)], final=False))
    assert collect_graph(run).pending == ("a", "b")
    with pytest.raises(UsageError, match="graph.json"):
        collect_graph(tmp_path)


def test_submit_dag_needs_condor_submit_dag(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDORKIT_SUBMIT_DAG", "no-such-submit-dag-xyz --flag")
    with pytest.raises(CondorError, match="no-such-submit-dag-xyz not found") as info:
        submit_dag(tmp_path / "x.dag")
    assert "CONDORKIT_SUBMIT_DAG" in info.value.hint
    fake = tmp_path / "fake_submit"
    fake.write_text("#!/bin/sh\necho 'ERROR: unable to create submit file'; exit 1\n")
    fake.chmod(0o755)
    with pytest.raises(CondorError, match="unable to create submit file"):
        submit_dag(tmp_path / "x.dag", [str(fake)])
