"""Persistent local workers: the wrapper's contract in a forked runner, runner reuse, crashes,
death, limits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.localjob import joblog, make_job, result_rows

from condorkit.local.run import run
from condorkit.local.workers import BATCH_STATUS, Worker, batch_codes, prestart
from condorkit.model.config import load_config
from condorkit.model.job import Job, prepare

PROGRAM = """import gc, json, os, sys
pre = {m: m in sys.modules for m in ("xml.dom.minidom", "concurrent.futures.thread")}
import email.mime.text  # a top-level import the worker preloads
from xml.dom import minidom  # a submodule imported by name: preloaded too
from concurrent.futures import ThreadPoolExecutor  # loaded lazily by the package: too
what = open(sys.argv[1]).read().strip()
print("out", sys.argv[1:], os.environ.get("PIECE"), os.getcwd())
if what == "segv":
    os.kill(os.getpid(), 11)
if what == "exit7":
    sys.exit(7)
if what == "raise":
    raise ValueError("boom")
if what == "nothing":
    sys.exit(0)
if what == "worker":
    os.kill(os.getppid(), 9)
    import time; time.sleep(5)
with open(sys.argv[2], "w") as fh:
    json.dump({"pid": os.getpid(), "ppid": os.getppid(), "email": "email.mime.text" in
               sys.modules, "main": __name__, "pre": pre, "frozen": gc.get_freeze_count()}, fh)
"""


def scratch(tmp_path: Path, name: str, what: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "prog.py").write_text(PROGRAM)
    (d / "rows.txt").write_text(what + "\n")
    return d


def worker(tmp_path: Path) -> Worker:
    (tmp_path / "prog.py").write_text(PROGRAM)
    return Worker(sys.executable, tmp_path / "prog.py", dict(os.environ), tmp_path / "w.log")


def piece(w: Worker, d: Path, **env: str) -> int:
    return w.run(d, [["prog.py", "rows.txt", "out.json"]], dict(os.environ, **env)).wait()


def test_pieces_run_as_main_in_their_scratch_folder_with_preloaded_imports(tmp_path: Path
                                                                           ) -> None:
    w = worker(tmp_path)
    try:
        pids = set()
        for i in range(3):
            d = scratch(tmp_path, f"s{i}", "ok")
            assert piece(w, d, PIECE=str(i)) == 0
            doc = json.loads((d / "out.json").read_text())
            assert doc["main"] == "__main__" and doc["email"] and doc["ppid"] == w.proc.pid
            assert all(doc["pre"].values()), doc["pre"]
            # the preloaded objects are frozen: a child's collections leave their pages shared
            assert doc["frozen"] > 1000, doc["frozen"]
            pids.add(doc["pid"])
            out = (d / "_condor_stdout").read_text()
            assert out == f"out ['rows.txt', 'out.json'] {i} {d}\n"
            assert "persistent worker) program=prog.py rows=rows.txt" in (
                d / "_condor_stderr").read_text()
        # one runner took the three clean pieces (each with its own folder, environment and
        # fresh __main__, checked above); one worker
        assert len(pids) == 1 and w.started == 1
        assert "email.mime.text" in w.preloaded
        assert "http.client" not in w.preloaded  # ckjob imports it only to fetch over HTTP
    finally:
        w.close()


@pytest.mark.parametrize("what,code,err", [
    ("segv", -11, "program killed by signal 11"),
    ("exit7", 7, "program exited with code 7"),
    ("raise", 1, "ValueError: boom"),
    ("nothing", 96, "program exited 0 but wrote no out.json"),
])
def test_a_crashing_program_fails_its_piece_not_the_worker(tmp_path: Path, what: str, code: int,
                                                          err: str) -> None:
    w = worker(tmp_path)
    try:
        d = scratch(tmp_path, "bad", what)
        assert piece(w, d) == code
        assert err in (d / "_condor_stderr").read_text()
        assert (d / "out.json").exists()  # as the wrapper: the output file always exists
        good = scratch(tmp_path, "good", "ok")
        assert piece(w, good) == 0 and w.started == 1
    finally:
        w.close()


BATCH = """import os, sys
what = open(sys.argv[1]).read().strip()
seen = (os.getcwd(), os.environ.get("CKBATCH"), __name__, "leak" in globals())
if what == "wander":  # change the folder and the environment: the next run must not see it
    os.environ["CKBATCH"] = "changed"
    leak = 1
    os.chdir("/")
    sys.exit(5)
if what == "die":
    os.kill(os.getpid(), 9)
with open(sys.argv[2], "w") as fh:
    fh.write(repr(seen))
"""


def test_a_batch_runs_each_chunk_afresh_and_records_each_exit_code(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(BATCH)
    w = Worker(sys.executable, tmp_path / "prog.py", dict(os.environ), tmp_path / "w.log")
    d = tmp_path / "batch"
    d.mkdir()
    (d / "prog.py").write_text(BATCH)
    for name, what in (("a", "ok"), ("b", "wander"), ("c", "ok"), ("d", "die"), ("e", "ok")):
        (d / f"rows-{name}").write_text(what + "\n")
    runs = [["prog.py", f"rows-{n}", f"out-{n}"] for n in "abcde"]
    try:
        code = w.run(d, runs, dict(os.environ, CKBATCH="piece")).wait()
        assert code == -9  # the fourth run killed the process: the fifth never ran
        assert batch_codes(d) == {"out-a": 0, "out-b": 5, "out-c": 0}
        assert (d / BATCH_STATUS).is_file()
        fresh = repr((str(d), "piece", "__main__", False))
        assert (d / "out-a").read_text() == fresh == (d / "out-c").read_text()
        assert (d / "out-b").read_bytes() == b""  # as the wrapper: outputs always exist
        assert not (d / "out-e").exists() or (d / "out-e").read_bytes() == b""
        err = (d / "_condor_stderr").read_text()
        assert "program exited with code 5" in err and "killed by signal 9" in err
        single = tmp_path / "single"
        single.mkdir()
        (single / "prog.py").write_text(BATCH)
        (single / "rows").write_text("ok\n")
        assert w.run(single, [["prog.py", "rows", "out"]], dict(os.environ)).wait() == 0
        assert not (single / BATCH_STATUS).exists()  # one run: the wrapper's files only
    finally:
        w.close()


def test_a_piece_runs_its_own_files_not_the_workers_compiled_copies(tmp_path: Path) -> None:
    """The worker compiles the program and ckjob.py once; a piece whose files differ (an edited
    program, another ckjob.py) runs its own bytes."""
    from condorkit.wrappers import ckjob

    prog = ("import ckjob, os, sys\nopen(sys.argv[2], 'w').write('%s %%s %%s %%s %%s' %% "
            "(getattr(ckjob, 'MARK', 'real'), __file__, ckjob.read_rows.__code__.co_filename, "
            "os.path.relpath(ckjob.__file__)))\n")
    real = Path(ckjob.__file__).read_text()
    (tmp_path / "prog.py").write_text(prog % "v1")
    w = Worker(sys.executable, tmp_path / "prog.py", dict(os.environ), tmp_path / "w.log")
    try:
        for name, version, ck, expect, ck_name in (
                ("same", "v1", real, "real", "ckjob.py"),
                ("edited", "v2", real + "\nMARK = 'b'\n", "b",
                 str(tmp_path / "edited" / "ckjob.py")),
                ("again", "v1", real, "real", "ckjob.py")):
            d = tmp_path / name
            d.mkdir()
            (d / "prog.py").write_text(prog % version)
            (d / "ckjob.py").write_text(ck)
            (d / "rows.txt").write_text("x\n")
            assert w.run(d, [["prog.py", "rows.txt", "out"]], dict(os.environ)).wait() == 0
            # the scratch folder's copy, named as the wrapper names it (in tracebacks too),
            # whether its code comes from the worker's cache or is compiled afresh
            assert (d / "out").read_text() == f"{version} {expect} ./prog.py {ck_name} ckjob.py"
    finally:
        w.close()


LEAVES = {
    "a thread": "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), "
                "daemon=True).start()\n",
    "a child process": "import subprocess\nsubprocess.Popen(['sleep', '30'])\n",
    "an open file": "import os\nos.open(sys.argv[1], os.O_RDONLY)\n",
    "a signal handler": "import signal\nsignal.signal(signal.SIGUSR1, lambda *a: None)\n",
    "a timer": "import signal\nsignal.setitimer(signal.ITIMER_REAL, 30)\n",
    "a lower niceness": "import os\nos.nice(1)\n",
    "a resource limit": "import resource\nsoft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)"
                        "\nresource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))\n",
}


def run_prog(w: Worker, d: Path, prog: str) -> tuple[int, bool, str]:
    d.mkdir(exist_ok=True)
    (d / "prog.py").write_text(prog)
    (d / "rows.txt").write_text("x\n")
    p = w.run(d, [["prog.py", "rows.txt", "out"]], dict(os.environ))
    code = p.wait()
    return code, p.kept, (d / "out").read_text() if (d / "out").exists() else ""


PID = "import os, sys\nopen(sys.argv[2], 'w').write(str(os.getpid()))\n"


@pytest.mark.parametrize("what", sorted(LEAVES))
def test_a_piece_that_leaves_something_behind_retires_its_runner(tmp_path: Path, what: str
                                                                 ) -> None:
    (tmp_path / "prog.py").write_text(PID)
    w = Worker(sys.executable, tmp_path / "prog.py", dict(os.environ), tmp_path / "w.log")
    try:
        code, kept, first = run_prog(w, tmp_path / "a", PID)
        assert code == 0 and kept
        code, kept, pid = run_prog(w, tmp_path / "b", "import sys\n" + LEAVES[what] + PID)
        assert code == 0 and not kept and pid == first  # the runner that took it ends
        with contextlib.suppress(ProcessLookupError):  # as the scheduler does: strays go too
            os.killpg(int(pid), signal.SIGKILL)
        code, kept, after = run_prog(w, tmp_path / "c", PID)
        assert code == 0 and kept and after != first and w.started == 1  # a fresh fork
    finally:
        w.close()


def test_a_kept_runner_gives_each_piece_a_fresh_start(tmp_path: Path) -> None:
    """What a piece changes in the process (sys.path, sys.argv, streams, umask) or imports from
    its scratch folder does not reach the next piece of the same runner."""
    prog = ("import os, sys\nimport helper\n"
            "seen = (helper.VALUE, len(sys.path), sys.argv, sys.stdout is sys.__stdout__, "
            "os.umask(0o077), os.getpid())\nopen(sys.argv[2], 'w').write(repr(seen))\n"
            "sys.path.append('/nowhere')\nsys.argv.append('extra')\n"
            "sys.stdout = open(os.devnull, 'w')\n")
    (tmp_path / "prog.py").write_text(prog)
    w = Worker(sys.executable, tmp_path / "prog.py", dict(os.environ), tmp_path / "w.log")
    try:
        seen = []
        for name in ("one", "two"):
            d = tmp_path / name
            d.mkdir()
            (d / "helper.py").write_text(f"VALUE = {name!r}\n")
            code, kept, out = run_prog(w, d, prog)
            assert code == 0 and kept, (d / "_condor_stderr").read_text()
            seen.append(eval(out))
        assert [s[0] for s in seen] == ["one", "two"]  # each folder's own helper module
        assert seen[0][1:4] == seen[1][1:4] and seen[1][2] == ["./prog.py", "rows.txt", "out"]
        assert seen[0][3] and seen[0][4] == seen[1][4]  # streams and umask as they were
        assert seen[0][5] == seen[1][5]  # the same runner
    finally:
        w.close()


def test_a_killed_idle_runner_is_replaced_for_the_next_piece(tmp_path: Path) -> None:
    """A kill that reaches a runner between pieces (a late time limit, a superseded copy that
    had just ended) costs nothing: the next piece gets a fresh fork."""
    (tmp_path / "prog.py").write_text(PID)
    w = Worker(sys.executable, tmp_path / "prog.py", dict(os.environ), tmp_path / "w.log")
    try:
        code, kept, first = run_prog(w, tmp_path / "a", PID)
        assert code == 0 and kept
        os.killpg(int(first), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(int(first)) and time.monotonic() < deadline:
            time.sleep(0.01)
        code, kept, after = run_prog(w, tmp_path / "b", PID)
        assert code == 0 and kept and after != first and w.started == 1
    finally:
        w.close()


def test_a_missing_program_is_the_wrappers_exit_95(tmp_path: Path) -> None:
    w = worker(tmp_path)
    try:
        d = tmp_path / "empty"
        d.mkdir()
        assert piece(w, d) == 95
        assert "is not in the scratch folder" in (d / "_condor_stderr").read_text()
    finally:
        w.close()


def test_a_dead_worker_fails_its_piece_and_is_replaced(tmp_path: Path) -> None:
    w = worker(tmp_path)
    try:
        assert piece(w, scratch(tmp_path, "kill", "worker")) < 0
        assert piece(w, scratch(tmp_path, "after", "ok")) == 0 and w.started == 2
    finally:
        w.close()


def test_workers_and_their_pieces_die_with_the_coordinator(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text("import time\ntime.sleep(60)\n")
    d = tmp_path / "s"
    d.mkdir()
    (d / "prog.py").write_text("import time\ntime.sleep(60)\n")
    code = ("import os, sys, time\nfrom pathlib import Path\n"
            "from condorkit.local.workers import Worker\n"
            f"w = Worker(sys.executable, Path({str(tmp_path / 'prog.py')!r}), dict(os.environ), "
            f"Path({str(tmp_path / 'w.log')!r}))\n"
            f"p = w.run(Path({str(d)!r}), [['prog.py', 'r', 'o']], dict(os.environ))\n"
            "print(w.proc.pid, p.pid, flush=True)\ntime.sleep(60)\n")
    coord = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert coord.stdout is not None
        pids = [int(x) for x in coord.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        coord.kill()  # SIGKILL: no cleanup code runs in the coordinator
        coord.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids)
    finally:
        coord.kill()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def load_job(folder: Path) -> Job:
    return prepare(folder, load_config(folder, {}, env={}))


def env_with(tmp_path: Path, **values: str) -> dict[str, str]:
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CKTEST_", "CONDORKIT_"))}
    env.update(CKTEST_STATE=str(state), **values)
    return env


def test_a_run_uses_the_workers_and_gives_the_same_results(tmp_path: Path) -> None:
    rows = {}
    for persistent in (True, False):
        job = load_job(make_job(tmp_path / f"job-{persistent}", rows=30, chunk=4))
        report = run(job, workers=2, env=env_with(tmp_path), persistent=persistent,
                     speculate_after=None)
        assert not report.failed
        errs = " ".join(p.read_text() for p in job.log_dir.glob("*.err"))
        assert ("persistent worker" in errs) is persistent
        rows[persistent] = result_rows(job.dir)
    assert rows[True] == rows[False] == list(range(1, 31))


def test_workers_started_before_the_job_is_prepared_are_used_when_they_match(
        tmp_path: Path) -> None:
    folder = make_job(tmp_path / "job", rows=12, chunk=4)
    env = env_with(tmp_path)
    config = load_config(folder, {}, env={})
    early = prestart(folder, config, 2, env=env)
    assert len(early) == 2 and all(w.alive for w in early)
    report = run(load_job(folder), workers=2, env=env, prestarted=early, speculate_after=None)
    assert not report.failed and result_rows(folder) == list(range(1, 13))
    assert any(w.ready for w in early) and all(w.started == 1 for w in early)
    assert not any(w.alive for w in early)  # the run closed them
    # workers that do not match the run (another count) are closed unused
    other = prestart(folder, config, 3, env=env)
    report = run(load_job(folder), workers=2, env=env, prestarted=other, only=[])
    assert not any(w.ready or w.alive for w in other)
    # a job the workers cannot run gets none (a program that is not Python, a bundle)
    assert prestart(folder, load_config(folder, {"program": "square.sh"}, env={}), 2) == []


def test_a_hanging_piece_is_killed_at_the_time_limit_and_recorded(tmp_path: Path) -> None:
    job = load_job(make_job(tmp_path / "job", rows=6, chunk=3))
    env = env_with(tmp_path, CKTEST_HANG="1")
    t0 = time.monotonic()
    report = run(job, workers=2, retries=0, env=env, granularity="chunk", time_limit=1.0,
                 speculate_after=None)
    assert time.monotonic() - t0 < 60
    (bad,) = report.failed
    assert bad.start == 1 and "timed out after 1 s (wall-clock limit per piece)" in bad.reason
    log = joblog(job.log_dir / "joblog.tsv")
    assert [e["Signal"] for e in log if e["Rows"] == "1-3"] == [str(int(signal.SIGKILL))]
    assert result_rows(job.dir) == [4, 5, 6]
