"""Faults on the multi-node pool, each with exact row accounting (every manifest row ends exactly
once in a valid result, or as a recorded error) and the time from the fault to completion printed
(`pytest -s`; nothing asserts on time):

a. an execute node's link is cut mid-run -> its jobs rerun elsewhere once TCP keepalives reveal
   the silent peer and the job lease has expired;
b. every process of an execute node is killed mid-run -> same;
c. a job uses more memory than it requested -> held, released by condorkit's memory_retry with
   a larger request (`wait` keeps waiting: the job's own periodic_release will release it),
   finishes; `condorkit status` tells that the chunk was held and why;
d. the schedd is killed mid-run -> the master restarts it, the queue survives, the run finishes.

Jobs use job_lease_duration = 20 (pooljobs.write_job), so a lost node costs ~30 s, not 40 min.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from condorkit.wrappers import ckjob
from support.pooljobs import ck, ck_json, remove_leftovers, write_job

if TYPE_CHECKING:
    from conftest import MultiPool

pytestmark = pytest.mark.condor

PROGRAM = r'''
import sys, time
import ckjob

SLEEP, HOG_YEAR, HOG_MB, HOG_S = {sleep}, {hog_year}, {hog_mb}, {hog_s}
rows_path, out = sys.argv[1], sys.argv[2]
hog = []

def luminance(row):
    if row["year"] == HOG_YEAR:
        block = bytearray(HOG_MB * 2 ** 20)
        for i in range(0, len(block), 4096):
            block[i] = 1  # make every page resident
        hog.append(block)
        time.sleep(HOG_S)
    return {{"luminance": round(((row["year"] * 7919 + row["row"] * 104729) % 1000) / 1000.0, 6)}}

time.sleep(SLEEP)
ckjob.map_rows(rows_path, out, luminance, program="faultprog.py")
'''
WAIT_S = 300


@pytest.fixture
def fault_job(multipool: MultiPool) -> Iterator[Callable[..., Path]]:
    """A job folder on the submit side with the sleeping/memory-hogging program; afterwards every
    node is healed and restarted and the test's jobs are removed."""
    from conftest import PROJECT

    made: list[Path] = []

    def make(name: str, rows: int, chunk: int, sleep: float = 0, hog_year: int = 0,
             hog_mb: int = 0, hog_s: float = 0, extra_toml: str = "") -> Path:
        d = write_job(multipool.job_dir(name), rows=rows, chunk=chunk, max_retries=2,
                      extra_toml=f'project_name = "{PROJECT}"\n' + extra_toml)
        (d / "faultprog.py").write_text(PROGRAM.format(sleep=sleep, hog_year=hog_year,
                                                       hog_mb=hog_mb, hog_s=hog_s))
        made.append(d)
        return d

    yield make
    multipool.restore()
    for d in made:
        remove_leftovers(d, multipool.schedd())


def running_on(multipool: MultiPool, cluster: int, timeout: float = 120) -> dict[int, str]:
    """Wait until some jobs of the cluster run; {proc: execute node (ex1...)}."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ads = multipool.schedd().query(f"ClusterId == {cluster} && JobStatus == 2",
                                       projection=["ProcId", "RemoteHost"])
        placed = {int(a["ProcId"]): str(a["RemoteHost"]).split("@")[-1].split(".")[0]
                  for a in ads if a.get("RemoteHost")}
        if placed:
            return placed
        time.sleep(0.3)
    pytest.fail(f"no job of cluster {cluster} started within {timeout}s")


def account(d: Path, rec: dict[str, Any], rows: int) -> dict[int, str]:
    """Every row exactly once across the valid results; {chunk start: worker host}."""
    seen: list[int] = []
    hosts = {}
    for c in rec["chunks"]:
        doc = json.loads((d / "results" / f"results-{c['start']}.json").read_text())
        assert ckjob.check_results(doc, c["start"], c["count"], c["key"]) == []
        seen += [r["row"] for r in doc["records"]]
        hosts[c["start"]] = str(doc["host"]).split(".")[0]
    assert sorted(seen) == list(range(1, rows + 1))
    return hosts


def finish(d: Path, rows: int, what: str, t_fault: float) -> dict[str, Any]:
    done = ck_json("wait", "--timeout", str(WAIT_S), cwd=d, timeout=WAIT_S + 30)
    took = time.monotonic() - t_fault
    print(f"\n{what}: fault -> run complete in {took:.1f}s; "
          f"attempts {[c['attempts'] for c in done['chunks']]}")
    assert done["ok"] and done["finished"] and done["rows_done"] == rows, done
    return done


@pytest.mark.parametrize("fault", ["cut", "kill"])
def test_a_lost_execute_node_reruns_its_jobs_elsewhere(
        multipool: MultiPool, fault_job: Callable[..., Path], fault: str) -> None:
    rows = 12
    # long enough that the fault hits running jobs, not an output transfer (a transfer cut off
    # silently waits for HTCondor's own 300 s network timeout; see docs/test-pool.md)
    d = fault_job(f"lost-{fault}", rows=rows, chunk=2, sleep=20)
    rec = ck_json("submit", cwd=d)["record"]
    placed = running_on(multipool, rec["cluster"])
    victim = sorted(placed.values())[0]
    victim_starts = {c["start"] for c in rec["chunks"] if placed.get(c["proc"]) == victim}
    t_fault = time.monotonic()
    multipool.fault(fault, victim)
    finish(d, rows, f"{fault} {victim}", t_fault)
    hosts = account(d, rec, rows)
    assert all(hosts[s] != victim for s in victim_starts), (victim, hosts)


def test_a_job_over_its_memory_is_held_and_released_with_more(
        multipool: MultiPool, fault_job: Callable[..., Path]) -> None:
    rows = 4
    d = fault_job("memory", rows=rows, chunk=2, hog_year=1901, hog_mb=200, hog_s=30,
                  extra_toml='memory_retry = "768MB"\n')
    text = (d / "condorkit.toml").read_text().replace('request_memory = "64MB"',
                                                      'request_memory = "96MB"')
    (d / "condorkit.toml").write_text(text)
    rec = ck_json("submit", cwd=d)["record"]
    hog_proc = rec["chunks"][0]["proc"]
    schedd = multipool.schedd()
    deadline = time.monotonic() + 120
    while not schedd.history(f"ClusterId == {rec['cluster']}", projection=["ProcId"], match=1) \
            and not any(a.get("NumHolds") for a in schedd.query(
                f"ClusterId == {rec['cluster']}", projection=["NumHolds"])):
        assert time.monotonic() < deadline, "the memory hog was never held"
        time.sleep(0.3)
    t_fault = time.monotonic()  # the first hold (or, at worst, the first job done)
    finish(d, rows, "memory hold", t_fault)
    account(d, rec, rows)
    st = ck_json("status", cwd=d)  # status tells what happened to the chunk
    hog = next(c for c in st["chunks"] if c["start"] == 1)
    text = ck("status", cwd=d).stderr
    print(text)
    assert hog["state"] == "done" and hog["holds"], hog
    assert "memory usage exceeded request_memory" in hog["holds"][0]
    assert "was held 1 time(s) and released" in text
    ad = schedd.history(f"ClusterId == {rec['cluster']} && ProcId == {hog_proc}",
                        projection=["NumHolds", "RequestMemory", "MemoryUsage"], match=1)
    ad = next(iter(ad))
    request, usage = ad.eval("RequestMemory"), ad.eval("MemoryUsage")
    print(f"hog job: NumHolds {ad['NumHolds']}, RequestMemory {request} MB, "
          f"MemoryUsage {usage} MB")
    assert ad["NumHolds"] >= 1 and request > 200


def test_a_killed_schedd_is_restarted_and_the_run_finishes(
        multipool: MultiPool, fault_job: Callable[..., Path]) -> None:
    rows = 8
    d = fault_job("schedd", rows=rows, chunk=2, sleep=8)
    rec = ck_json("submit", cwd=d)["record"]
    running_on(multipool, rec["cluster"])
    t_fault = time.monotonic()
    multipool.fault("kill", "cm", "schedd")
    deadline = time.monotonic() + 120
    while True:  # the master restarts the schedd; the queue is read back from its log
        try:
            queued = multipool.schedd().query(f"ClusterId == {rec['cluster']}",
                                              projection=["ProcId"])
            break
        except Exception:
            assert time.monotonic() < deadline, "the schedd did not come back within 120s"
            time.sleep(0.5)
    print(f"\nschedd back after {time.monotonic() - t_fault:.1f}s with {len(queued)} job(s)")
    finish(d, rows, "schedd killed", t_fault)
    account(d, rec, rows)
