"""DAGMan on the real test pool: a job as a DAG (scatter.html, rescue DAG) and task graphs.

DAGs are submitted with ``condor_submit_dag`` inside the pool (``scripts/condor-pool exec``, via
``CONDORKIT_SUBMIT_DAG`` or the library's ``command``), from folders under the shared directory
that the pool user may write. Run times are printed (``pytest -s``); nothing asserts on time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from condorkit.cli import main
from condorkit.condor.dag import collect_graph, write_graph_dag
from condorkit.condor.dagman import read_node_log, read_node_status, submit_dag, wait_dag
from condorkit.local.graph import run_graph as run_local
from condorkit.model.graph import FAILURE, SKIPPED, SUCCESS, format_report, parse_graph, read_graph

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "condor-pool"
SUBMIT = [str(SCRIPT), "exec", "condor_submit_dag"]
PKG = REPO / "examples" / "pkgbuild"
GMAKE_LINE = "devel/gmake audio/cdparanoia audio/abcde audio/id3v2 misc/mkcue"
TIMEOUT = 300

PROGRAM = '''import hashlib, sys
import ckjob
header, _ = ckjob.read_rows(sys.argv[1])
if header["start"] == FAIL_AT:
    sys.exit("failing chunk %d on purpose" % FAIL_AT)
ckjob.map_rows(sys.argv[1], sys.argv[2], lambda row: {"luminance": int(hashlib.sha256(
    row["url"].encode()).hexdigest()[:8], 16) / 2**32})
'''


@pytest.fixture
def shared_dir(pool: Pool, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder the pool user can write; any job left in it is removed at the end."""
    d = pool.job_dir(re.sub(r"\W", "", request.node.name)[:30])
    yield d
    pool.exec(["condor_rm", "-constraint", f'Iwd == "{d}" || Iwd == "{d}/run"'])


def make_job(d: Path, fail_at: int = 0, retries: int = 1) -> Path:
    (d / "manifest.txt").write_text("".join(f"http://127.0.0.1:1/img{i}.jpg {1880 + 3 * i}\n"
                                            for i in range(1, 26)))
    (d / "fake.py").write_text(PROGRAM.replace("FAIL_AT", str(fail_at)))
    (d / "condorkit.toml").write_text(f'program = "fake.py"\nchunk = 10\nmax_retries = {retries}\n'
                                      'columns = ["url:url", "year:int"]\n'
                                      'request_memory = "128MB"\nrequest_disk = "64MB"\n')
    for sub in ("results", "logs"):  # written by the pool user (the shadow), not by root
        (d / sub).mkdir(mode=0o1777)
        os.chmod(d / sub, 0o1777)
    return d


def submitted_nodes(d: Path, dag: str) -> list[str]:
    """Nodes whose jobs this (latest) DAGMan run submitted, from its node log."""
    text = (d / f"{dag}.nodes.log").read_text()
    return sorted(re.findall(r"^\s+DAG Node: (\S+)$", text, re.M))


def dag_cli(capsys: pytest.CaptureFixture[str], d: Path) -> tuple[int, str]:
    code = main(["dag", "-C", str(d), "--wait", "--timeout", str(TIMEOUT)])
    err = capsys.readouterr().err
    with capsys.disabled():
        print(err)
    return code, err


def test_job_dag_produces_scatter_html(pool: Pool, shared_dir: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDORKIT_SUBMIT_DAG", " ".join(SUBMIT))
    d = make_job(shared_dir)
    code, err = dag_cli(capsys, d)
    assert code == 0, err
    report = json.loads((d / "logs" / "aggregate.json").read_text())
    assert report["found"] == 25 and report["complete"] and report["exit_code"] == 0
    page = (d / "scatter.html").read_text()
    assert "<html" in page.lower() and "aggregation failed" not in page
    st = read_node_status(d / "condorkit.dag.status")
    assert st.dag_status == "done" and st.done
    assert {n.name: n.status for n in st.nodes} == {"chunk-1": "done", "chunk-11": "done",
                                                    "chunk-21": "done", "aggregate": "done"}
    assert submitted_nodes(d, "condorkit.dag") == ["aggregate", "chunk-1", "chunk-11",
                                                   "chunk-21"]
    assert not list(d.glob("condorkit.dag.rescue*"))
    m = re.search(r"exited with status 0 after ([\d.]+)s", err)
    assert m
    with capsys.disabled():
        print(f"DAG RUN TIME (3 chunks + FINAL aggregate): {m.group(1)} s")


def test_failed_node_reruns_alone_from_the_rescue_dag(pool: Pool, shared_dir: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDORKIT_SUBMIT_DAG", " ".join(SUBMIT))
    d = make_job(shared_dir, fail_at=11, retries=1)
    code, err = dag_cli(capsys, d)
    assert code == 8, err  # RunFailed
    assert (d / "condorkit.dag.rescue001").is_file()
    st = read_node_status(d / "condorkit.dag.status")
    assert st.dag_status == "error"
    assert st.node("chunk-11").status == "error" and st.node("chunk-11").retries == 1
    assert [st.node(n).status for n in ("chunk-1", "chunk-21", "aggregate")] == ["done",
                                                                                  "done", "error"]
    assert read_node_log(d / "condorkit.dag.nodes.log")["chunk-11"].submits == 2  # RETRY 1
    partial = json.loads((d / "logs" / "aggregate.json").read_text())
    assert partial["missing"] == "11-20" and partial["exit_code"] == 1
    assert (d / "scatter.html").is_file()  # the FINAL node ran anyway: a partial chart
    kept = {p.name: p.read_bytes() for p in (d / "results").glob("results-*.json")
            if p.name != "results-11.json"}
    assert sorted(kept) == ["results-1.json", "results-21.json"]

    (d / "fake.py").write_text(PROGRAM.replace("FAIL_AT", "0"))  # fix the program
    code, err = dag_cli(capsys, d)
    assert code == 0, err
    assert "rescue DAG" in err
    assert submitted_nodes(d, "condorkit.dag") == ["aggregate", "chunk-11"]  # nothing else ran
    assert {p: (d / "results" / p).read_bytes() for p in kept} == kept
    full = json.loads((d / "logs" / "aggregate.json").read_text())
    assert full["found"] == 25 and full["complete"]
    assert read_node_status(d / "condorkit.dag.status").dag_status == "done"


def graph_dir(shared: Path) -> Path:
    run = shared / "run"
    for p in (run, run / "out"):
        p.mkdir(mode=0o1777)
        os.chmod(p, 0o1777)
    return run


def test_pkgbuild_graph_has_the_same_outcome_on_the_pool(
        pool: Pool, shared_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    graph = read_graph(PKG / "packages.txt")
    local = run_local(graph, [str(PKG / "build.sh")], workers=3)
    run = graph_dir(shared_dir)
    monkeypatch.setenv("CONDORKIT_SUBMIT_DAG", " ".join(SUBMIT))
    code = main(["graph", "--dag", str(run), "--wait", "--timeout", str(TIMEOUT), "-l",
                 str(PKG / "packages.txt"), str(PKG / "build.sh")])
    cap = capsys.readouterr()
    with capsys.disabled():
        print(cap.err)
    assert code == 8, cap.err
    pooled = collect_graph(run)
    assert not pooled.pending
    assert pooled.outcome() == local.outcome()
    assert set(pooled.skipped) == {"audio/cdparanoia", "audio/abcde", "audio/id3v2",
                                   "misc/mkcue"}
    assert pooled.failed == ("devel/gmake",) and len(pooled.succeeded) == 9
    lines = cap.out.splitlines()
    assert "10 " + GMAKE_LINE in lines and lines.count("10 failure") == 1
    assert sorted(format_report(pooled, number=True, ordered=True)) == sorted(
        format_report(local, number=True, ordered=True))
    gmake = next(r for r in pooled.results if r.name == "devel/gmake")
    assert gmake.exit_code == 1 and "configure failed" in gmake.stderr and "@" in gmake.node
    m = re.search(r"exited with status 1 after ([\d.]+)s", cap.err)
    assert m
    with capsys.disabled():
        print(f"GRAPH DAG RUN TIME (pkgbuild, 14 nodes): {m.group(1)} s")
    code = main(["graph", "--collect", str(run), "--reorder", "-l"])  # later, from the folder
    again = capsys.readouterr().out.splitlines()
    assert code == 8 and again[:2] == ["1 build audio/cd-discid", "1 success"]


def test_task_names_reach_pool_jobs_verbatim(pool: Pool, shared_dir: Path) -> None:
    names = ["it's", 'q"z', "d$x", "back\\slash", "trail\\", "ünï#;{}", "a'b\"c", "$(HOME)"]
    graph = parse_graph("".join(f"{n}\n" for n in names) + "it's d$x\n")
    echo = shared_dir / "echo.sh"
    echo.write_text('#!/bin/sh\nprintf "%s|" "$@"\necho\n[ "$2" != "q\\"z" ]\n')
    echo.chmod(0o755)
    run = graph_dir(shared_dir)
    files = write_graph_dag(graph, [str(echo), "fixed arg"], run)
    result = wait_dag(submit_dag(files.dag, SUBMIT), timeout=TIMEOUT)
    print(f"weird-names DAG: {result.wall_s:.1f} s, DAGMan {result.metrics.get('duration')} s")
    rep = collect_graph(run)
    by_name = {r.name: r for r in rep.results}
    for n in names:
        assert by_name[n].output == f"fixed arg|{n}|\n"
    assert by_name['q"z'].status == FAILURE and by_name["it's"].status == SUCCESS
    assert {n for n, r in by_name.items() if r.status == SKIPPED} == set()
    assert rep.outcome() == run_local(graph, [str(echo), "fixed arg"]).outcome()
    assert result.exit_status == 1
