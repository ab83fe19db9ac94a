"""The multi-node test pool itself (scripts/condor-pool multi): separate hosts, file transfer only,
and the schedd's project-name requirement, through the host bindings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import MultiPool

pytestmark = pytest.mark.condor

PROBE = """#!/bin/sh
# runs on an execute node: who am I, and can I see the submit side's job folder?
echo "host=$(hostname)"
if [ -e "$1" ]; then echo "jobdir=visible"; else echo "jobdir=hidden"; fi
cat input.txt
"""


def _wait_gone(schedd: object, cluster: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while schedd.query(f"ClusterId == {cluster}", projection=["JobStatus"]):  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"cluster {cluster} still queued after {timeout}s"
        time.sleep(0.3)


def _probe_submit(d: Path, n: int, project: str | None) -> object:
    import htcondor2

    (d / "probe.sh").write_text(PROBE)
    (d / "probe.sh").chmod(0o755)
    (d / "input.txt").write_text("transferred\n")
    desc = {
        "executable": str(d / "probe.sh"),
        "arguments": str(d),
        "initialdir": str(d),
        "should_transfer_files": "YES",
        "transfer_input_files": "input.txt",
        "output": "out.$(ProcId)",
        "error": "err.$(ProcId)",
        "log": "jobs.log",
        "request_cpus": "1",
        "request_memory": "32",
        "request_disk": "1024",
    }
    if project is not None:
        desc["My.ProjectName"] = f'"{project}"'
    return htcondor2.Submit(desc), n


def test_three_execute_nodes_with_their_own_domains(multipool: MultiPool) -> None:
    import htcondor2

    ads = htcondor2.Collector().query(
        htcondor2.AdTypes.Startd, projection=["Machine", "FileSystemDomain", "MyAddress"]
    )
    machines = {str(a["Machine"]) for a in ads}
    assert len(machines) >= 3, machines
    assert len({str(a["FileSystemDomain"]) for a in ads}) == len(machines)
    addresses = {str(a["MyAddress"]).split(":")[0].lstrip("<") for a in ads}
    assert all(a.startswith("10.200.0.") for a in addresses), addresses


def test_jobs_spread_over_nodes_and_never_see_the_job_folder(multipool: MultiPool) -> None:
    from conftest import PROJECT

    d = multipool.job_dir("probe")
    sub, n = _probe_submit(d, 6, PROJECT)
    schedd = multipool.schedd()
    cluster = schedd.submit(sub, count=n).cluster()
    _wait_gone(schedd, cluster)
    outs = [(d / f"out.{i}").read_text() for i in range(n)]
    assert all("jobdir=hidden" in o and "transferred" in o for o in outs), outs
    hosts = {line for o in outs for line in o.splitlines() if line.startswith("host=")}
    assert len(hosts) >= 2, hosts


def test_a_job_without_a_project_name_is_refused_with_the_pools_reason(
    multipool: MultiPool,
) -> None:
    d = multipool.job_dir("noproject")
    sub, _ = _probe_submit(d, 1, None)
    with pytest.raises(Exception, match="requires a project name"):
        multipool.schedd().submit(sub)
