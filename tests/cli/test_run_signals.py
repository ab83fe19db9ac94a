"""`condorkit run` as a real subprocess: SIGTERM / SIGINT stop it promptly and cleanly, a worker
SIGKILLed from outside is retried, and the next run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.localjob import joblog, make_job, result_rows

from condorkit.model.config import load_config
from condorkit.model.job import prepare


def start(job: Path, state: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CKTEST_", "CONDORKIT_"))}
    full.update(CKTEST_STATE=str(state), **env)
    return subprocess.Popen([sys.executable, "-m", "condorkit", "run", "-C", str(job), *args],
                            env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(*paths: Path, proc: subprocess.Popen[str]) -> None:
    for _ in range(1200):
        if all(p.exists() for p in paths):
            return
        if proc.poll() is not None:
            raise AssertionError(f"condorkit exited early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {paths}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def pids(state: Path, name: str) -> tuple[int, int]:
    pid, pgid = (state / name).read_text().split()
    return int(pid), int(pgid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_workers_leaves_no_half_result_and_next_run_resumes(
        tmp_path: Path, sig: signal.Signals) -> None:
    job_dir = make_job(tmp_path / "job", rows=8, chunk=2)
    state = tmp_path / "state"
    state.mkdir()
    # chunks 5 and 7 hang on their first attempt and ignore SIGTERM: run must SIGKILL them
    proc = start(job_dir, state, "-j", "2", "--granularity", "chunk", "--no-speculate",
                 CKTEST_HANG="5,7", CKTEST_IGNORE_TERM="1")
    results = job_dir / "results"
    wait_for(results / "results-1.json", results / "results-3.json",
             state / "pid-5-1", state / "pid-7-1", proc=proc)
    hung = [pids(state, "pid-5-1")[0], pids(state, "pid-7-1")[0]]
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert f"stopped by {sig.name}" in err and "resumes" in err
    assert "2/4 chunks done" in err
    for pid in hung:
        for _ in range(200):
            if not alive(pid):
                break
            time.sleep(0.05)
        assert not alive(pid), f"worker {pid} survived the interrupt"
    assert sorted(p.name for p in results.iterdir()) == ["results-1.json", "results-3.json"]
    job = prepare(job_dir, load_config(job_dir, {}, env={}))
    for task in job.tasks():
        if task.chunk.start in (1, 3):
            assert task.valid() is None
    log = joblog(job_dir / "logs" / "joblog.tsv")
    assert sorted(e["Rows"] for e in log if e["Outcome"] == "interrupted") == ["5-6", "7-8"]

    again = start(job_dir, state, "-j", "2", "--json")  # second attempts do not hang
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    report = json.loads(out)
    assert report["skipped"] == 2 and report["done"] == 4 and report["rows_run"] == 4
    assert result_rows(job_dir) == list(range(1, 9))


def test_worker_process_group_killed_from_outside_is_retried(tmp_path: Path) -> None:
    job_dir = make_job(tmp_path / "job", rows=4, chunk=2)
    state = tmp_path / "state"
    state.mkdir()
    proc = start(job_dir, state, "-j", "2", "--no-speculate", "--backoff", "0.05", "--json",
                 "--granularity", "chunk", CKTEST_HANG="1")
    wait_for(state / "pid-1-1", proc=proc)
    pid, pgid = pids(state, "pid-1-1")
    assert pgid != os.getpgrp()  # each attempt runs in its own process group
    os.killpg(pgid, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["retried"] == 1 and report["failed"] == 0
    log = joblog(job_dir / "logs" / "joblog.tsv")
    first = [e for e in log if e["Rows"] == "1-2"]
    assert [e["Outcome"] for e in first] == ["failed", "done"]
    assert first[0]["Signal"] == "9" and "SIGKILL" in first[0]["Note"]
    assert result_rows(job_dir) == [1, 2, 3, 4]


@pytest.mark.parametrize("mode", ["--no-persistent", "--persistent-default"])
def test_programs_of_a_sigkilled_coordinator_are_stopped_by_the_next_run(
        tmp_path: Path, mode: str) -> None:
    job_dir = make_job(tmp_path / "job", rows=4, chunk=2)
    state = tmp_path / "state"
    state.mkdir()
    extra = [mode] if mode == "--no-persistent" else []
    proc = start(job_dir, state, "-j", "2", "--granularity", "chunk", "--no-speculate", *extra,
                 CKTEST_HANG="1")
    wait_for(state / "pid-1-1", proc=proc)
    program = pids(state, "pid-1-1")[0]
    proc.kill()  # SIGKILL: the coordinator cleans nothing up
    proc.wait()
    again = start(job_dir, state, "-j", "2", "--json", *extra)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    for _ in range(200):
        if not alive(program):
            break
        time.sleep(0.05)
    assert not alive(program), "the killed coordinator's program still runs"
    assert result_rows(job_dir) == [1, 2, 3, 4]
