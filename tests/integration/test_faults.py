"""Faults on the real test pool: a failing chunk is retried then reported with its exit code, a
held job with its hold reason, an evicted job reruns without duplicating rows, and
`condorkit resubmit --missing` completes a run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from support.pooljobs import (
    attempts,
    ck,
    ck_json,
    current_run,
    switch,
)

from condorkit.condor.submit import submit_run
from condorkit.model.config import load_config
from condorkit.model.job import prepare

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor



def by_start(status: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {c["start"]: c for c in status["chunks"]}


def aggregate(d: Path) -> tuple[int, dict[str, Any]]:
    proc = ck("aggregate", "--json", "-o", str(d / "scatter.html"), cwd=d)
    return proc.returncode, json.loads(proc.stdout)


def test_failing_chunk_is_retried_then_reported_with_exit_code(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("retry", rows=10, chunk=3, max_retries=2)
    switch(d, "fail", 4, "7")       # exits 7 on every attempt
    switch(d, "nowrite", 7)         # exits 0 without results: the wrapper says so (96)
    ck_json("submit", cwd=d)

    waited = ck("wait", "--timeout", "240", cwd=d)
    assert waited.returncode == 8, waited.stderr
    assert "2 chunk(s) without valid results: 4 (failed), 7 (failed)" in waited.stderr
    assert "resubmit --missing" in waited.stderr
    assert "chunk 4 (rows 4-6" in waited.stderr and "exit code 7" in waited.stderr

    st = by_start(ck_json("status", cwd=d))
    assert st[4]["state"] == "failed" and st[4]["exit_code"] == 7
    assert st[4]["attempts"] == 3 == attempts(d, 4)  # max_retries = 2: three runs in all
    assert st[4]["stderr_last"] == "failing on purpose (attempt 3)"
    assert st[7]["state"] == "failed" and st[7]["exit_code"] == 96
    assert st[7]["wrapper_error"] == (
        "condorkit-wrapper: error: program exited 0 but wrote no results-7.json")
    assert st[7]["wrapper_error"] in st[7]["reason"]
    assert st[1]["state"] == st[10]["state"] == "done"
    # grouped by cause, with a log to read and a hint where one is known (issue 11)
    causes = {c["cause"]: c for c in ck_json("status", cwd=d)["causes"]}
    assert causes["exit code 7: failing on purpose (attempt 3)"]["starts"] == [4]
    nowrite = causes["exit code 96: program exited 0 but wrote no results-7.json"]
    assert nowrite["log"].endswith("chunk-7.err") and "ckjob.write_results" in nowrite["hint"]
    assert "2 chunk(s) without valid results" in waited.stderr
    assert "1 chunk(s) failed: exit code 7: failing on purpose" in waited.stderr
    assert attempts(d, 1) == attempts(d, 10) == 1
    hist = {j["start"]: j for j in ck_json("history", cwd=d)["jobs"]}
    assert hist[4]["exit_code"] == 7 and hist[4]["attempts"] == 3
    assert hist[1]["exit_code"] == 0
    # the failed attempts never leave anything that counts as results
    rc, agg = aggregate(d)
    assert rc == 5 and agg["missing"] == "4-9" and agg["duplicates"] == 0


def test_held_job_is_reported_with_its_hold_reason(pool: Pool, job: Callable[..., Path]) -> None:
    d = job("held", rows=9, chunk=3)
    prepared = prepare(d, load_config(d))
    (d / "chunks" / "rows-4.jsonl").unlink()  # an input file HTCondor cannot transfer
    rep = submit_run(prepared)
    cluster = rep.record.cluster

    waited = ck("wait", "--timeout", "180", cwd=d)
    assert waited.returncode == 8, waited.stderr
    assert "4 (held)" in waited.stderr and "HELD" in waited.stderr

    st = ck_json("status", cwd=d)
    assert st["counts"]["held"] == 1 and st["counts"]["done"] == 2
    held = by_start(st)[4]
    assert held["state"] == "held"
    assert "rows-4.jsonl" in held["hold_reason"]
    assert held["hold_code"] == 13  # transfer of input files failed
    assert held["reason"].startswith("held: ") and "rows-4.jsonl" in held["reason"]
    ad = pool.schedd().query(f"ClusterId == {cluster} && ProcId == {held['proc']}",
                             projection=["JobStatus", "HoldReason"])
    assert ad[0]["JobStatus"] == 5 and ad[0]["HoldReason"] == held["hold_reason"]

    # resubmit removes the held job and runs the chunk again (its rows file is rewritten)
    again = ck_json("resubmit", "--missing", cwd=d)["record"]
    assert [c["start"] for c in again["chunks"]] == [4] and again["parent"] == cluster
    assert pool.schedd().query(f"ClusterId == {cluster}", projection=["ProcId"]) == []
    assert ck_json("wait", "--timeout", "180", cwd=d)["ok"]
    assert aggregate(d)[0] == 0


def test_evicted_job_reruns_and_rows_are_not_duplicated(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("evict", rows=10, chunk=3)
    switch(d, "hang", 4, "600")  # the first attempt of chunk 4 runs until it is evicted
    rec = ck_json("submit", cwd=d)["record"]
    proc = next(c["proc"] for c in rec["chunks"] if c["start"] == 4)

    deadline = time.monotonic() + 120
    while not (attempts(d, 4) == 1 and by_start(ck_json("status", cwd=d))[4]["state"] == "running"):
        assert time.monotonic() < deadline, "chunk 4 never started"
        time.sleep(0.5)
    vacate = pool.exec(["condor_vacate_job", f"{rec['cluster']}.{proc}"])
    assert vacate.returncode == 0, vacate.stderr + vacate.stdout

    done = ck_json("wait", "--timeout", "240", cwd=d)
    assert done["ok"], done
    st = by_start(done)
    assert st[4]["attempts"] == 2 == attempts(d, 4)
    assert all(st[s]["attempts"] == 1 for s in (1, 7, 10))
    log = (d / "logs" / "condorkit.log").read_text()
    assert f"({rec['cluster']:03d}.{proc:03d}.000)" in log and "Job was evicted" in log
    rc, agg = aggregate(d)
    assert rc == 0
    counts = (agg["expected"], agg["found"], agg["duplicates"], agg["missing_count"])
    assert counts == (10, 10, 0, 0)


def test_resubmit_missing_submits_only_chunks_without_valid_results(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("resubmit", rows=10, chunk=3, max_retries=0)
    flag = switch(d, "fail", 7, "3")
    first = ck_json("submit", cwd=d)["record"]
    assert ck("wait", "--timeout", "180", cwd=d).returncode == 8
    rc, agg = aggregate(d)
    assert rc == 5 and agg["missing"] == "7-9"
    mtimes = {p.name: p.stat().st_mtime_ns for p in (d / "results").glob("results-*.json")
              if p.stat().st_size}

    busy = ck("resubmit", cwd=d)
    assert busy.returncode == 2 and "--missing" in busy.stderr  # the mode is explicit
    flag.unlink()
    second = ck_json("resubmit", "--missing", cwd=d)["record"]
    assert [c["start"] for c in second["chunks"]] == [7]
    assert second["parent"] == first["cluster"] and second["cluster"] != first["cluster"]
    assert current_run(d)["cluster"] == second["cluster"]
    assert second["chunk_size"] == 3

    assert ck_json("wait", "--timeout", "180", cwd=d)["ok"]
    assert attempts(d, 7) == 2 and attempts(d, 1) == attempts(d, 4) == attempts(d, 10) == 1
    for name, mtime in mtimes.items():  # valid chunks were not run (or rewritten) again
        assert (d / "results" / name).stat().st_mtime_ns == mtime
    rc, agg = aggregate(d)
    assert rc == 0 and agg["found"] == 10 and agg["duplicates"] == 0
    # the first run's status still shows its failure; nothing is left to resubmit
    old = by_start(ck_json("status", "--cluster", str(first["cluster"]), cwd=d))
    assert old[7]["state"] == "failed" and old[7]["exit_code"] == 3
    nothing = ck("resubmit", "--missing", cwd=d)
    assert nothing.returncode == 0 and "nothing to submit" in nothing.stderr
