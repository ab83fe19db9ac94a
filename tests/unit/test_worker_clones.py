"""Cloned workers and the run's standby worker: one interpreter imports the program for a whole
pool and forks the others; a clone that dies (or whose origin dies) is replaced; a standby is
adopted only when its interpreter and environment are exactly the pool's."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from support.localjob import make_job, result_rows

from condorkit.local import standby
from condorkit.local.workers import Clone, Worker, can_clone, start_pool
from condorkit.model.interpreter import ENV_VAR, job_env

PROGRAM = """import json, os, sys
what = open(sys.argv[1]).read().strip()
if what == "worker":  # kill the worker this piece runs in
    os.kill(os.getppid(), 9)
    import time; time.sleep(5)
with open(sys.argv[2], "w") as fh:
    json.dump({"worker": os.getppid()}, fh)
"""


def program(tmp_path: Path) -> Path:
    (tmp_path / "prog.py").write_text(PROGRAM)
    return tmp_path / "prog.py"


def piece(tmp_path: Path, w: Worker, name: str, what: str = "ok") -> tuple[int, dict]:
    d = tmp_path / name
    d.mkdir()
    (d / "prog.py").write_text(PROGRAM)
    (d / "rows.txt").write_text(what + "\n")
    code = w.run(d, [["prog.py", "rows.txt", "out.json"]], dict(os.environ)).wait()
    out = d / "out.json"
    return code, json.loads(out.read_text()) if code == 0 else {}


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def close(pool: list[Worker]) -> None:
    for w in pool:
        w.close()


@contextlib.contextmanager
def started(tmp_path: Path, count: int, cpus: int = 1,
            sb: standby.Standby | None = None) -> Iterator[list[Worker]]:
    """A pool of ``count`` workers for PROGRAM (closed at the end)."""
    pool = start_pool(program(tmp_path), base_env(), cpus, count, tmp_path, standby=sb)
    try:
        yield pool
    finally:
        close(pool)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop(ENV_VAR, None)
    return job_env(env)


def test_a_pool_starts_one_interpreter_which_forks_the_other_workers(tmp_path: Path) -> None:
    assert can_clone()  # Linux >= 5.3 and Python >= 3.9: what this machine and CI have
    with started(tmp_path, 3) as pool:
        assert isinstance(pool[0].proc, subprocess.Popen)
        assert all(isinstance(w.proc, Clone) for w in pool[1:])
        workers = [piece(tmp_path, w, f"p{k}")[1]["worker"] for k, w in enumerate(pool)]
        assert workers[0] == pool[0].proc.pid and len(set(workers)) == 3
        assert [parent_of(pid) for pid in workers[1:]] == [pool[0].proc.pid] * 2
        assert [os.getsid(pid) for pid in workers] == workers  # each its own session
        logs = sorted(p.name for p in (tmp_path / ".condorkit" / "workers").glob("*.log"))
        assert logs == ["worker-0.log", "worker-1.log", "worker-2.log"]  # one log per clone


def test_a_dead_clone_fails_its_piece_and_a_fresh_worker_takes_the_next(tmp_path: Path
                                                                        ) -> None:
    with started(tmp_path, 2) as pool:
        code, _ = piece(tmp_path, pool[1], "dies", "worker")
        assert code < 0 and not pool[1].alive
        code, doc = piece(tmp_path, pool[1], "next")
        assert code == 0 and isinstance(pool[1].proc, subprocess.Popen)
        assert doc["worker"] == pool[1].proc.pid and pool[1].started == 2
        assert piece(tmp_path, pool[0], "first")[0] == 0  # the origin was not touched


def test_the_first_worker_dying_takes_its_clones_down_and_both_are_replaced(tmp_path: Path
                                                                            ) -> None:
    with started(tmp_path, 2) as pool:
        assert piece(tmp_path, pool[1], "a")[0] == 0
        clone = pool[1].proc
        assert isinstance(clone, Clone) and pool[0].proc is not None
        pool[0].proc.send_signal(signal.SIGKILL)
        assert clone.wait(timeout=10) == -9  # PR_SET_PDEATHSIG: it ended with its origin
        assert piece(tmp_path, pool[0], "b")[0] == 0 and piece(tmp_path, pool[1], "c")[0] == 0
        assert pool[0].started == 2 and pool[1].started == 2


def test_a_standby_with_the_pools_interpreter_and_environment_becomes_its_first_worker(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    sb = standby.start(["run", "-C", str(tmp_path), "-j", "2"])
    assert sb is not None
    with started(tmp_path, 2, sb=sb) as pool:
        assert sb.adopted and pool[0].proc is sb.proc and isinstance(pool[1].proc, Clone)
        workers = [piece(tmp_path, w, f"p{k}")[1]["worker"] for k, w in enumerate(pool)]
        assert workers[0] == sb.proc.pid and parent_of(workers[1]) == sb.proc.pid
        cmdline = Path(f"/proc/{sb.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"--standby" in cmdline


def test_a_standby_that_does_not_fit_is_closed_and_ends(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    sb = standby.start(["run"])
    assert sb is not None
    with started(tmp_path, 2, cpus=2, sb=sb) as pool:
        assert pool[0].proc is not sb.proc
        assert sb.proc.wait(timeout=30) == 0  # the end of its input, before any program
        assert piece(tmp_path, pool[0], "p")[0] == 0


def test_no_standby_where_a_run_would_not_adopt_one(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    for argv in (["graph", "f"], ["run", "--no-persistent"], ["run", "-h"], []):
        assert standby.start(argv) is None
    monkeypatch.setenv(ENV_VAR, sys.executable)
    assert standby.start(["run"]) is None


STANDBY_PROGRAM = r"""
import os, sys, time, ckjob
cmd = open("/proc/%d/cmdline" % os.getppid(), "rb").read().split(b"\0")
def square(row):
    time.sleep(0.02)
    return {"value": row["n"] ** 2, "standby": b"--standby" in cmd, "worker": os.getppid()}
ckjob.map_rows(sys.argv[1], sys.argv[2], square, program="square.py")
"""


def test_condorkit_run_adopts_its_standby_for_all_its_workers(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", rows=40, chunk=5)
    (job / "square.py").write_text(STANDBY_PROGRAM)
    env = dict(os.environ)
    env.pop(ENV_VAR, None)
    out = subprocess.run([sys.executable, "-m", "condorkit", "run", "-C", str(job), "-j", "2"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    assert result_rows(job) == list(range(1, 41))
    records = [r for p in (job / "results").glob("results-*.json")
               for r in json.loads(p.read_text())["records"]]
    assert all(r["standby"] for r in records)
    assert len({r["worker"] for r in records}) == 2


def test_a_standby_that_died_before_its_adoption_gives_way_to_a_normal_start(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    for adopt_directly in (False, True):
        sb = standby.start(["run"])
        assert sb is not None
        sb.proc.kill()
        sb.proc.wait(timeout=30)
        if adopt_directly:  # it died between the check and the hand-over
            pool = [Worker(sys.executable, program(tmp_path), dict(os.environ),
                           tmp_path / f"w{k}.log") for k in range(2)]
            pool[0].adopt(sb, pool[1:])
        else:
            pool = start_pool(program(tmp_path), base_env(), 1, 2, tmp_path, standby=sb)
        try:
            assert pool[0].proc is not sb.proc and pool[0].alive
            assert [piece(tmp_path, w, f"p{adopt_directly}{k}")[0] for k, w in enumerate(pool)
                    ] == [0, 0]
        finally:
            close(pool)
