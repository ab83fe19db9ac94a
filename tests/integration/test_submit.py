"""`condorkit submit` on the real test pool: one Schedd.submit with itemdata, the run record,
status/wait/history/where from the bindings and the event log, and spooled submission."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from condorkit.wrappers import ckjob
from support.pooljobs import ck, ck_json, current_run, write_job

from condorkit.condor.submit import parse_items
from condorkit.model.config import load_config
from condorkit.model.job import prepare

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor



def test_submit_records_the_run_and_wait_history_where_agree(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("submit", rows=10, chunk=3)
    sub = ck_json("submit", cwd=d)
    rec = sub["record"]
    cluster = rec["cluster"]

    # the run record: enough for later commands to find the run without flags
    assert current_run(d) == json.loads((d / ".condorkit" / "runs" / f"{cluster}.json").read_text())
    assert rec["schedd"]["name"] and rec["schedd"]["address"].startswith("<")
    assert rec["job_dir"] == str(d.resolve())
    expected = prepare(d, load_config(d), write=False)
    assert rec["manifest_sha256"] == expected.manifest.sha256
    assert rec["manifest"] == str(d.resolve() / "manifest.txt")
    assert rec["spool"] is False and rec["parent"] is None
    assert [(c["start"], c["count"], c["key"]) for c in rec["chunks"]] == [
        (c.start, c.count, k) for c, k in zip(expected.chunks, expected.keys, strict=True)]
    assert [c["proc"] for c in rec["chunks"]] == [0, 1, 2, 3]
    assert rec["event_log"] == str(d.resolve() / "logs" / "condorkit.log")
    submitted = Path(rec["submit_file"]).read_text()
    assert [i["start"] for i in parse_items(submitted)] == ["1", "4", "7", "10"]

    # one cluster with one job per chunk, tagged with its rows; the schedd materializes the
    # jobs after the submit returns, so look until they show (deadline 60 s)
    deadline = time.monotonic() + 60
    while True:
        ads = pool.schedd().history(f"ClusterId == {cluster}", projection=["ProcId"]) + \
            pool.schedd().query(f"ClusterId == {cluster}", projection=["ProcId"])
        if ads or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 0 < len(ads) <= 4

    early = ck_json("status", cwd=d)
    assert early["cluster"] == cluster and sum(early["counts"].values()) == 4

    done = ck_json("wait", "--timeout", "180", cwd=d)
    assert done["ok"] and done["finished"]
    assert done["counts"] == {"idle": 0, "running": 0, "held": 0, "completed": 0, "done": 4,
                              "failed": 0}
    assert done["rows_done"] == 10
    assert all(c["exit_code"] == 0 and c["attempts"] == 1 for c in done["chunks"])
    for c in rec["chunks"]:
        doc = json.loads((d / "results" / f"results-{c['start']}.json").read_text())
        assert ckjob.check_results(doc, c["start"], c["count"], c["key"]) == []

    hist = ck_json("history", cwd=d)
    assert [(j["start"], j["exit_code"], j["status"]) for j in hist["jobs"]] == [
        (1, 0, "completed"), (4, 0, "completed"), (7, 0, "completed"), (10, 0, "completed")]
    worker = json.loads((d / "results" / "results-1.json").read_text())["host"]
    assert {j["host"] for j in hist["jobs"]} == {worker}
    assert all(j["run_time_s"] is not None and j["run_time_s"] >= 0 for j in hist["jobs"])

    w = ck_json("where", cwd=d)
    assert w["hosts"] == [{"host": worker, "chunks": 4, "done": 4, "running": 0, "failed": 0,
                           "attempts": 4}]
    assert w["unplaced"] == 0

    # the text forms render too; stdout of `where` is the histogram
    text = ck("where", cwd=d)
    assert text.returncode == 0 and text.stdout.startswith(worker) and "####" in text.stdout
    st = ck("status", cwd=d)
    assert st.returncode == 0 and "done 4" in st.stderr and "10/10 rows" in st.stderr

    # resume: every chunk is valid, so a second submit has nothing to do
    again = ck("submit", cwd=d)
    assert again.returncode == 0 and "nothing to submit" in again.stderr
    assert current_run(d)["cluster"] == cluster


def test_spooled_submit_from_a_folder_the_schedd_cannot_see(
        pool: Pool, job: Callable[..., Path], tmp_path: Path) -> None:
    # tmp_path is on the host only: the daemons in the chroot cannot see it
    d = job("spool", folder=tmp_path / "hostonly", rows=7, chunk=3)
    assert not (pool.root / str(d).lstrip("/")).exists()
    rec = ck_json("submit", "--spool", cwd=d)["record"]
    assert rec["spool"] is True

    done = ck_json("wait", "--timeout", "180", cwd=d)
    assert done["ok"], done
    assert [c["start"] for c in done["chunks"] if c["state"] == "done"] == [1, 4, 7]
    assert (d / "logs" / "condorkit.log").is_file()  # the event log came back with the outputs
    assert sorted(p.name for p in (d / "results").iterdir()) == [
        "results-1.json", "results-4.json", "results-7.json"]
    # retrieved jobs are removed from the queue, and history says they completed
    assert pool.schedd().query(f"ClusterId == {rec['cluster']}", projection=["ProcId"]) == []
    hist = ck_json("history", cwd=d)
    assert {(j["status"], j["exit_code"], j["reason"]) for j in hist["jobs"]} == {
        ("completed", 0, "outputs retrieved")}
    agg = ck("aggregate", "-o", str(tmp_path / "scatter.html"), cwd=d)
    assert agg.returncode == 0, agg.stderr
    assert "found 7, errors 0, duplicates 0, missing none" in agg.stderr


def test_commands_name_the_missing_run(pool: Pool, tmp_path: Path) -> None:
    write_job(tmp_path / "never")
    for cmd in ("status", "wait", "history", "where", "retrieve"):
        proc = ck(cmd, cwd=tmp_path / "never")
        assert proc.returncode == 2, (cmd, proc.stderr)
        assert "no run has been submitted" in proc.stderr
        assert "condorkit submit" in proc.stderr


def test_schedd_by_name_and_unknown_schedd(pool: Pool, job: Callable[..., Path]) -> None:
    import htcondor2

    d = job("named", rows=2, chunk=2)
    bad = ck("submit", "--schedd", "no-such-schedd", cwd=d)
    assert bad.returncode == 7, bad.stderr
    assert "knows no schedd named 'no-such-schedd'" in bad.stderr
    assert not (d / ".condorkit" / "current-run.json").exists()

    schedd_name = htcondor2.Collector().query(htcondor2.AdTypes.Schedd)[0]["Name"]
    ok = ck_json("submit", "--schedd", schedd_name, cwd=d)
    assert ok["record"]["schedd"]["name"] == schedd_name
    assert ck_json("wait", "--timeout", "120", cwd=d)["ok"]
