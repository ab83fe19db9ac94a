"""condorkit unchanged on the multi-node pool: the project-name policy surfaces as a clear error,
a run with a project name spreads over the execute nodes (`where`, `history`: >= 2 hosts) with
file transfer only, and `dag` gives the DAGMan job its project name too."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck, ck_json, write_job

if TYPE_CHECKING:
    from conftest import MultiPool

pytestmark = pytest.mark.condor

REPO = Path(__file__).resolve().parents[2]
SUBMIT_DAG = f"{REPO / 'scripts' / 'condor-pool'} multi exec condor_submit_dag"


def test_submit_without_a_project_name_shows_the_pools_reason(multipool: MultiPool) -> None:
    d = write_job(multipool.job_dir("noproj"), rows=4, chunk=2)
    proc = ck("submit", cwd=d)
    assert proc.returncode != 0
    assert "refused the submission: this pool requires a project name" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (d / ".condorkit" / "current-run.json").exists()


def test_a_run_spreads_over_the_nodes_and_every_row_comes_back(multipool: MultiPool) -> None:
    from conftest import PROJECT

    d = write_job(multipool.job_dir("spread"), rows=18, chunk=3,
                  extra_toml=f'project_name = "{PROJECT}"\nbatch_name = "spread"\n')
    rec = ck_json("submit", cwd=d)["record"]
    ad = multipool.schedd().query(f"ClusterId == {rec['cluster']}",
                                  projection=["ProjectName", "JobBatchName"])
    assert all(a["ProjectName"] == PROJECT for a in ad)
    done = ck_json("wait", "--timeout", "240", cwd=d)
    assert done["ok"] and done["rows_done"] == 18
    rows = []
    for c in rec["chunks"]:
        doc = json.loads((d / "results" / f"results-{c['start']}.json").read_text())
        rows += [r["row"] for r in doc["records"]]
    assert sorted(rows) == list(range(1, 19))  # every row exactly once
    hist = ck_json("history", cwd=d)
    hosts = {j["host"] for j in hist["jobs"]}
    where = ck_json("where", cwd=d)
    print(f"\nhosts: {sorted(hosts)}; where: {where['hosts']}")
    assert len(hosts) >= 2 and all(h.startswith("ex") for h in hosts), hosts
    assert len(where["hosts"]) >= 2
    assert sum(h["done"] for h in where["hosts"]) == len(rec["chunks"])


def test_dag_gives_the_dagman_job_and_its_nodes_the_project_name(
        multipool: MultiPool, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import PROJECT

    d = write_job(multipool.job_dir("dag"), rows=6, chunk=3,
                  extra_toml=f'project_name = "{PROJECT}"\n')
    os.chmod(d, 0o1777)  # DAGMan (the pool user) writes its files into the job folder
    monkeypatch.setenv("CONDORKIT_SUBMIT_DAG", SUBMIT_DAG)
    proc = ck("dag", "--wait", "--timeout", "240", cwd=d, timeout=300)
    print(proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert (d / "scatter.html").is_file()


def test_late_materialization_runs_every_chunk_and_status_never_calls_them_failed(
        multipool: MultiPool) -> None:
    from conftest import PROJECT

    d = write_job(multipool.job_dir("latemat"), rows=24, chunk=2,
                  extra_toml=f'project_name = "{PROJECT}"\nmax_materialize = 3\nmax_idle = 2\n')
    rec = ck_json("submit", cwd=d)["record"]
    early = ck_json("status", cwd=d)
    assert early["counts"]["failed"] == 0 and sum(early["counts"].values()) == 12
    waiting = [c for c in early["chunks"] if "not materialized" in c["reason"]]
    print(f"\nright after submit: {early['counts']}; {len(waiting)} not materialized yet")
    assert waiting  # 12 chunks, at most 3 jobs in the queue
    done = ck_json("wait", "--timeout", "240", cwd=d)
    assert done["ok"] and done["rows_done"] == 24 and len(rec["chunks"]) == 12
