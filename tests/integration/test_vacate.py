"""Both test pools give a slot back within seconds after `condor_rm` of jobs whose output
transfer failed (issue 11 point 4).

After such a failure the starter waits for the job lease (default 40 min) and ignores the
startd's SIGTERM; the startd hard-kills it only after MachineMaxVacateTime (default 10 min), so
with HTCondor's defaults the slots sit in Preempting/Vacating and no new job starts for ~10 min.
The pools set MachineMaxVacateTime = 2 (scripts/condor-pool, 60-condorkit-policy.conf). The test
waits with a deadline well below the default (no timed assertion) and prints what it measured.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.condor

JOBS = 2
DEADLINE_S = 180  # far below the 600 s a default MachineMaxVacateTime would block a slot


def _desc(d: Path, **extra: str) -> dict[str, str]:
    from conftest import PROJECT

    script = d / "job.sh"
    script.write_text("#!/bin/sh\necho done > out.txt\n")
    script.chmod(0o755)
    return {
        "executable": str(script),
        "initialdir": str(d),
        "should_transfer_files": "YES",
        "transfer_output_files": "out.txt",
        "log": "jobs.log",
        "request_cpus": "1",
        "request_memory": "32",
        "request_disk": "1024",
        "My.ProjectName": f'"{PROJECT}"',
        **extra,
    }


def _wait(schedd: Any, cluster: int, done: Any, what: str) -> float:
    t0 = time.monotonic()
    while True:
        jobs = schedd.query(f"ClusterId == {cluster}", projection=["JobStatus", "HoldReasonCode"])
        if done(jobs):
            return time.monotonic() - t0
        if time.monotonic() - t0 > DEADLINE_S:
            pytest.fail(f"cluster {cluster}: {what} not reached within {DEADLINE_S}s: "
                        f"{[dict(j) for j in jobs]}")
        time.sleep(0.3)


@pytest.mark.parametrize("which", ["pool", "multipool"])
def test_after_removing_jobs_held_by_an_output_transfer_failure_the_next_jobs_start_at_once(
    which: str, request: pytest.FixtureRequest
) -> None:
    import htcondor2

    p = request.getfixturevalue(which)
    d = p.job_dir("vacate")
    ro = d / "readonly"
    ro.mkdir()
    os.chmod(ro, 0o755)  # owned by root: the pool user cannot write the remapped output here
    schedd = p.schedd()
    bad = htcondor2.Submit(_desc(d, transfer_output_remaps='"out.txt=readonly/out.txt"'))
    cluster = schedd.submit(bad, count=JOBS).cluster()
    held = _wait(schedd, cluster, lambda js: len(js) == JOBS and all(
        j["JobStatus"] == 5 and j.get("HoldReasonCode") == 12 for j in js),
        "every job held with code 12 (transfer output failed)")
    schedd.act(htcondor2.JobAction.Remove, f"ClusterId == {cluster}", reason=("test", 0))
    t_rm = time.monotonic()
    good = htcondor2.Submit(_desc(d))
    nxt = schedd.submit(good, count=JOBS).cluster()
    _wait(schedd, nxt, lambda js: not js, "the next jobs done")
    took = time.monotonic() - t_rm
    print(f"\n{which}: held after {held:.1f}s; condor_rm -> next {JOBS} jobs done in {took:.1f}s")
    assert (d / "out.txt").read_text() == "done\n"
