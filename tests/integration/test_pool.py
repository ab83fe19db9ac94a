"""The HTCondor test pool itself works: host bindings, in-root CLI, status, worker contents."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Pool

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "condor-pool"

pytestmark = pytest.mark.condor

TASK = '#!/bin/sh\nprintf "%s %s %s\\n" "$1" "$2" "$(id -u)" > "out_$1.txt"\n'


def wait_for_jobs(pool: Pool, log: Path, n: int, timeout: int = 120) -> dict[int, int]:
    """Wait until ``n`` jobs in the user log terminated; a hold is a failure. {proc: exit code}.

    A held cluster is removed before failing, so it does not linger in the shared pool's queue.
    """
    import htcondor2

    done: dict[int, int] = {}
    for ev in htcondor2.JobEventLog(str(log)).events(stop_after=timeout):
        if ev.type == htcondor2.JobEventType.JOB_HELD:
            reason = ev.get("HoldReason")
            pool.schedd().act(
                htcondor2.JobAction.Remove, str(ev.cluster), reason=("test failed: held", 0)
            )
            pytest.fail(f"job {ev.cluster}.{ev.proc} held: {reason}")
        if ev.type == htcondor2.JobEventType.JOB_ABORTED:
            pytest.fail(f"job {ev.cluster}.{ev.proc} removed: {ev.get('Reason')}")
        if ev.type == htcondor2.JobEventType.JOB_TERMINATED:
            done[ev.proc] = ev.get("ReturnValue")
            if len(done) == n:
                return done
    pytest.fail(f"only {len(done)} of {n} jobs finished within {timeout}s; log: {log}")


def write_task(folder: Path) -> Path:
    task = folder / "task.sh"
    task.write_text(TASK)
    task.chmod(0o755)
    return task


def test_host_bindings_submit_three_jobs_with_itemdata(pool: Pool) -> None:
    import htcondor2

    d = pool.job_dir("bindings")
    task = write_task(d)
    sub = htcondor2.Submit(
        {
            "executable": str(task),  # absolute: a relative one resolves against the client cwd
            "arguments": "$(name) $(value)",
            "initialdir": str(d),
            "should_transfer_files": "YES",
            "when_to_transfer_output": "ON_EXIT",
            "transfer_output_files": "out_$(name).txt",
            "output": "$(name).out",
            "error": "$(name).err",
            "log": str(d / "jobs.log"),
            "request_cpus": "1",
            "request_memory": "64MB",
            "request_disk": "10MB",
        }
    )
    items = [{"name": f"n{i}", "value": str(i * i)} for i in range(3)]
    result = pool.schedd().submit(sub, itemdata=iter(items))
    assert result.num_procs() == 3

    assert wait_for_jobs(pool, d / "jobs.log", 3) == {0: 0, 1: 0, 2: 0}
    for i in range(3):
        assert (d / f"out_n{i}.txt").read_text().split() == [f"n{i}", str(i * i), "2000"]


def test_condor_submit_inside_root_from_a_job_folder(pool: Pool) -> None:
    d = pool.job_dir("cli")
    write_task(d)
    (d / "job.sub").write_text(
        "executable = task.sh\n"  # relative on purpose: proves the cwd is kept inside the root
        "arguments = $(a) x\n"
        "should_transfer_files = YES\n"
        "transfer_output_files = out_$(a).txt\n"
        "output = $(a).out\n"
        "error = $(a).err\n"
        "log = job.log\n"
        "request_cpus = 1\n"
        "request_memory = 64MB\n"
        "request_disk = 10MB\n"
        "queue a from (\n  red\n  green\n  blue\n)\n"
    )
    proc = pool.exec(["condor_submit", "job.sub"], cwd=d)
    assert proc.returncode == 0, proc.stderr
    assert "3 job(s) submitted" in proc.stdout

    assert wait_for_jobs(pool, d / "job.log", 3) == {0: 0, 1: 0, 2: 0}
    for colour in ("red", "green", "blue"):
        assert (d / f"out_{colour}.txt").read_text().split() == [colour, "x", "2000"]


def test_status_exits_zero_and_lists_a_slot(pool: Pool) -> None:
    proc = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "master pid:" in proc.stdout
    assert "slot1@" in proc.stdout


def test_exec_uses_pool_user_clean_env_and_home_outside_shared(pool: Pool, tmp_path: Path) -> None:
    os.environ["CONDORKIT_LEAK_CHECK"] = "1"
    try:
        proc = pool.exec(["sh", "-c", "pwd; id -u; env | sort"], cwd=tmp_path)
    finally:
        del os.environ["CONDORKIT_LEAK_CHECK"]
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["/home/condorkit", "2000"]
    assert "CONDORKIT_LEAK_CHECK=1" not in lines
    assert not any(line.startswith("CONDOR_CONFIG=") for line in lines)


def test_workers_have_venv_but_no_pillow(pool: Pool) -> None:
    # jobs must bring Pillow in their own bundle, and must be able to build a venv
    no_pil = pool.exec(["python3", "-c", "import PIL"])
    assert no_pil.returncode != 0
    assert "No module named 'PIL'" in no_pil.stderr
    venv = pool.exec(["python3", "-c", "import ensurepip, venv"])
    assert venv.returncode == 0, venv.stderr
