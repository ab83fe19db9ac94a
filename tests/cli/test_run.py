"""`condorkit run`: summary, --json, joblog, exit codes, progress only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.localjob import joblog, make_job, result_rows
from support.shared import required

from condorkit.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("CKTEST_", "CONDORKIT_")):
            monkeypatch.delenv(k)


def test_json_report_and_default_joblog(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    job = make_job(tmp_path / "job", rows=12, chunk=4)
    assert main(["run", "-C", str(job), "-j", "2", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["done"] == 3 and report["failed"] == 0 and report["rows_run"] == 12
    assert report["workers"] == 2 and report["dispatch"] == "balanced"
    assert {"retried", "speculated", "attempts", "wall_s", "rows_per_s"} <= set(report)
    assert report["joblog"] == str(job / "logs" / "joblog.tsv")
    assert "run: 12 rows in 3 chunk(s) on 2 worker(s)" in err
    assert "\r" not in err and "ETA" not in err  # stderr is not a terminal here
    log = joblog(job / "logs" / "joblog.tsv")
    assert len(log) == report["attempts"]
    assert {e["Outcome"] for e in log} == {"done"} and {e["Exitval"] for e in log} == {"0"}
    assert result_rows(job) == list(range(1, 13))


def test_human_summary_and_custom_joblog(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    job = make_job(tmp_path / "job", rows=6, chunk=2)
    log = tmp_path / "my.tsv"
    assert main(["run", "-C", str(job), "-j", "2", "--joblog", str(log)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "run: 3/3 chunks done (0 already valid), 0 failed, 0 retried, 0 speculated" in err
    assert "rows/s, wall" in err and f"joblog {log}" in err
    assert log.read_text().startswith("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\t"
                                      "Exitval\tSignal\tCommand\n")
    assert (tmp_path / "my-condorkit.tsv").read_text().startswith("Seq\tChunk\tRows\tAttempt")
    assert main(["run", "-C", str(job), "-j", "2", "--joblog", str(log)]) == 0
    assert "3/3 chunks done (3 already valid)" in capsys.readouterr().err


def test_failed_chunk_exits_8_with_its_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", rows=6, chunk=2)
    monkeypatch.setenv("CKTEST_FAIL_STARTS", "3")
    code = main(["run", "-C", str(job), "-j", "2", "--retries", "1", "--backoff", "0.01",
                 "--granularity", "chunk"])
    err = capsys.readouterr().err
    assert code == 8
    assert "1 chunk(s) failed: exit code 3: piece 3 always fails" in err
    assert "chunks starting at row 3; log: " in err and "chunk-3.err" in err
    assert "1 failed, 1 retried" in err
    assert result_rows(job) == [1, 2, 5, 6]


def test_zero_workers_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", rows=2, chunk=1)
    assert main(["run", "-C", str(job), "-j", "0"]) == 2
    assert "-j needs at least 1 worker" in capsys.readouterr().err


def test_progress_bar_with_eta_on_a_terminal(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", rows=6, chunk=2)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "condorkit", "run", "-C", str(job), "-j", "2"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode()
    assert "\r" in text and "ETA" in text and "[" in text
    assert "3/3 chunks done" in text


def test_real_photodemo_run_then_aggregate(tmp_path: Path, photo_corpus) -> None:
    job = tmp_path / "photo"
    job.mkdir()
    shutil.copy(REPO / "examples" / "photodemo" / "luminance.py", job)
    shutil.copy(REPO / "examples" / "photodemo" / "condorkit.toml", job)
    (job / "manifest.txt").write_text("".join(f"{f.path} {f.year}\n" for f in photo_corpus))
    cmd = [sys.executable, "-m", "condorkit"]
    res = subprocess.run([*cmd, "run", "-C", str(job), "-j", "2", "--chunk", "5", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["rows_run"] == len(photo_corpus) and report["failed"] == 0
    res = subprocess.run([*cmd, "aggregate", "-C", str(job), "-o", str(job / "scatter.html")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"found {len(photo_corpus)}, errors 0, duplicates 0, missing none" in res.stderr


PARALLEL = shutil.which("parallel")


def test_gnu_parallel_retries_the_failed_attempts_of_the_joblog(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    required(PARALLEL is not None, "GNU parallel (apt-get install parallel)")
    job = make_job(tmp_path / "job", rows=6, chunk=2)
    log = job / "logs" / "joblog.tsv"
    monkeypatch.setenv("CKTEST_FAIL_STARTS", "3")
    args = ["run", "-C", str(job), "-j", "2", "--retries", "0", "--granularity", "chunk"]
    assert main(args) == 8
    assert main(args) == 8  # appended: Seq goes on
    lines = [x.split("\t") for x in log.read_text().splitlines()]
    assert lines[0] == ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval",
                        "Signal", "Command"]
    assert all(len(x) == 9 for x in lines)
    assert [int(x[0]) for x in lines[1:]] == [1, 2, 3, 4]
    entries = joblog(log)
    failed = [e for e in entries if e["Exitval"] != "0"]
    assert [(e["Rows"], e["Exitval"], e["Signal"]) for e in failed] == [("3-4", "3", "0")] * 2
    assert failed[1]["Seq"] == "4" and {e["Host"] for e in entries} == {":"}
    assert all(float(e["Starttime"]) > 1e9 and float(e["JobRuntime"]) >= 0 for e in entries)
    assert failed[1]["Command"].startswith("condorkit run -C ")
    assert failed[1]["Command"].endswith("# chunk 3 rows 3-4")
    capsys.readouterr()
    # GNU parallel itself reads the file and reruns the failed attempts' commands
    monkeypatch.delenv("CKTEST_FAIL_STARTS")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               HOME=str(tmp_path))
    proc = subprocess.run([PARALLEL, "--retry-failed", "--joblog", str(log)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert result_rows(job) == [1, 2, 3, 4, 5, 6]
