"""No silently wrong row after a run that reported success (issue 15, class 2).

Everything that writes a job folder's state takes the same job lock (``mksubmit``, ``run``,
``dry-run``, ``dag``, ``submit`` refuse while a run holds it, and write nothing), and a result's
key is derived from the rows that were actually run: ckjob computes it from the rows file it
read (refusing a file whose rows do not match its key), records it as ``rows_key``, and the
local backend checks it against the rows it handed out, which it checks against the keys it
computed from the manifest. The issue's scenario is replayed: the rows file of a piece waiting
for its retry is rewritten from an edited manifest behind the run's back, as ``mksubmit`` did
before the lock existed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob
from support.localjob import make_job
from support.robust import cli, tally

from condorkit.model.config import load_config
from condorkit.model.job import prepare


def start_run(job: Path, state: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CKTEST_", "CONDORKIT_"))}
    full.update(CKTEST_STATE=str(state), PYTHONPATH=str(Path.cwd()), **env)
    return subprocess.Popen([sys.executable, "-m", "condorkit", "run", "-C", str(job), *args],
                            env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    for _ in range(1200):
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"condorkit exited early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {path}")


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_ino, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", [["mksubmit"], ["run", "-j", "1"], ["dry-run"], ["dag"],
                                     ["mksubmit", "3"]])
def test_state_writers_refuse_while_a_run_holds_the_lock(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", rows=6, chunk=2)
    state = tmp_path / "state"
    state.mkdir()
    proc = start_run(job, state, "-j", "1", "--granularity", "chunk", CKTEST_HANG="all")
    try:
        wait_for(state / "pid-1-1", proc)  # the run holds the lock, chunk 1 is running
        rows_before = snapshot(job / "chunks")
        manifest = (job / "manifest.txt").read_text()
        (job / "manifest.txt").write_text(manifest.replace("item1 1", "other 1"))
        res = cli(capsys, *command[:1], "-C", str(job), *command[1:])
        tally("fault", 1, f"{' '.join(command)} during a run")
        assert res.code == 2, res.err
        assert "another `condorkit run` (process " in res.err, res.err
        assert res.out == ""
        assert snapshot(job / "chunks") == rows_before  # nothing rewritten, not even a rename
        assert not (job / "condorkit.dag").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def rewrite_rows_behind_the_runs_back(job: Path, tmp_path: Path) -> None:
    """What mksubmit did without the lock: the rows files of an edited manifest, renamed into
    place (made in a copy of the job folder, then moved over the real ones)."""
    copy = tmp_path / "copy"
    shutil.copytree(job, copy, ignore=shutil.ignore_patterns(".condorkit", "results", "logs"))
    text = (copy / "manifest.txt").read_text()
    (copy / "manifest.txt").write_text(text.replace("item2 2", "evil 2"))
    prepare(copy, load_config(copy, {}))
    for p in (copy / "chunks").iterdir():
        os.replace(p, job / "chunks" / p.name)


def test_rows_changed_under_a_waiting_retry_are_never_stamped_with_the_old_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One chunk of 6 rows on 2 workers runs as two pieces (rows 1-3 and 4-6). The first
    attempt of piece 1 dies; while its retry waits (backoff 3 s) the rows files are rewritten
    from an edited manifest. Before the fix the retry computed the edited rows, stamped them
    with the old key, and the run said "done", exit 0."""
    job = make_job(tmp_path / "job", rows=6, chunk=6)
    state = tmp_path / "state"
    state.mkdir()
    proc = start_run(job, state, "-j", "2", "--backoff", "3", "--no-speculate",
                     CKTEST_KILL="1")
    wait_for(state / "pid-1-1", proc)
    rewrite_rows_behind_the_runs_back(job, tmp_path)
    out, err = proc.communicate(timeout=120)
    tally("fault", 1, "rows files rewritten during a run (piece retry)")
    assert proc.returncode != 0, err  # reported, not "done"
    assert "Traceback" not in err, err
    # nothing computed from the edited rows is counted: every record is the manifest's row
    for p in (job / "results").glob("results-*.json"):
        for rec in json.loads(p.read_text())["records"]:
            assert rec["name"] == f"item{rec['row']}", (p, rec)
    parts = job / ".condorkit" / "parts"
    for p in parts.glob("*.json") if parts.is_dir() else []:
        for rec in json.loads(p.read_text())["records"]:
            assert rec["name"] == f"item{rec['row']}", (p, rec)
    # the next run rewrites the rows files from the (unchanged) manifest and finishes
    res = cli(capsys, "run", "-C", str(job), "-j", "2")
    assert res.code == 0, res.err
    agg = cli(capsys, "aggregate", "-C", str(job), "-o", str(tmp_path / "p.html"))
    assert agg.code == 0, agg.err
    for p in (job / "results").glob("results-*.json"):
        for rec in json.loads(p.read_text())["records"]:
            assert rec["name"] == f"item{rec['row']}", (p, rec)


@pytest.mark.parametrize("granularity", ["chunk", "auto"])
def test_a_whole_chunk_whose_rows_file_changed_is_not_done(
        tmp_path: Path, granularity: str) -> None:
    """The same behind-the-back rewrite while chunk 1 runs and chunk 3 waits (one worker)."""
    job = make_job(tmp_path / "job", rows=4, chunk=2)
    state = tmp_path / "state"
    state.mkdir()
    proc = start_run(job, state, "-j", "1", "--granularity", granularity, "--backoff", "0",
                     CKTEST_SLEEP="1")
    wait_for(state / "pid-1-1", proc)
    copy = tmp_path / "copy"
    shutil.copytree(job, copy, ignore=shutil.ignore_patterns(".condorkit", "results", "logs"))
    (copy / "manifest.txt").write_text((copy / "manifest.txt").read_text()
                                       .replace("item3 3", "evil 3"))
    prepare(copy, load_config(copy, {}))
    os.replace(copy / "chunks" / "rows-3.jsonl", job / "chunks" / "rows-3.jsonl")
    _, err = proc.communicate(timeout=120)
    tally("fault", 1, f"rows file of a waiting chunk rewritten ({granularity})")
    assert proc.returncode != 0, err
    for p in (job / "results").glob("results-*.json"):
        for rec in json.loads(p.read_text())["records"]:
            assert rec["name"] == f"item{rec['row']}", (p, rec)


# ----------------------------------------------------------------------------- ckjob itself


def rows_file(path: Path, options: str, rows: list[dict], key: str | None = None,
              **extra: object) -> None:
    header = {"format": ckjob.ROWS_FORMAT, "start": rows[0]["row"], "count": len(rows),
              "key": key or ckjob.rows_key(options, rows), "options": options,
              "columns": ["name", "n"], **extra}
    path.write_text("\n".join(json.dumps(x) for x in [header, *rows]) + "\n")


ROWS = [{"row": 1, "line": 1, "name": "a", "n": 1}, {"row": 2, "line": 3, "name": "b", "n": 2}]


def test_ckjob_derives_the_key_from_the_rows_it_read(tmp_path: Path) -> None:
    p = tmp_path / "rows-1.jsonl"
    rows_file(p, "opts", ROWS)
    header, rows = ckjob.read_rows(str(p))
    assert header["rows_key"] == header["key"] == ckjob.rows_key("opts", ROWS)
    doc = ckjob.make_results(header, [dict(r, v=1) for r in rows], 0.0, 1.0, "t")
    assert doc["rows_key"] == header["key"]
    assert ckjob.check_results(doc, 1, 2, header["key"], header["key"]) == []
    assert ckjob.check_results(doc, 1, 2, header["key"], "other") != []
    # the line number is not part of the key (comments and blank lines change nothing)
    assert ckjob.rows_key("opts", [dict(r, line=9) for r in ROWS]) == header["key"]
    tally("input", 1, "rows file with its own key")


@pytest.mark.parametrize("edit", ["value", "row", "drop-and-add", "options"])
def test_ckjob_refuses_rows_that_do_not_match_their_key(tmp_path: Path, edit: str) -> None:
    p = tmp_path / "rows-1.jsonl"
    key = ckjob.rows_key("opts", ROWS)
    rows = [dict(r) for r in ROWS]
    options = "opts"
    if edit == "value":
        rows[1]["name"] = "evil"
    elif edit == "row":
        rows[1]["row"] = 7
    elif edit == "drop-and-add":
        rows[1] = {"row": 2, "line": 3, "name": "b", "n": 2, "x": 1}
    else:
        options = "other"
    rows_file(p, options, rows, key=key)
    with pytest.raises(ValueError, match="do not match its key"):
        ckjob.read_rows(str(p))
    tally("fault", 1, f"rows file edited ({edit}), key kept")


def test_a_piece_carries_the_key_of_its_own_rows(tmp_path: Path) -> None:
    p = tmp_path / "rows-2.jsonl"
    piece_rows = ROWS[1:]
    rows_file(p, "opts", piece_rows, key="piece-key", rows_key=ckjob.rows_key("opts", piece_rows))
    header, _ = ckjob.read_rows(str(p))
    assert header["key"] == "piece-key" and header["rows_key"] == ckjob.rows_key("opts",
                                                                                 piece_rows)
    rows_file(p, "opts", [dict(piece_rows[0], n=99)], key="piece-key",
              rows_key=ckjob.rows_key("opts", piece_rows))
    with pytest.raises(ValueError, match="do not match its key"):
        ckjob.read_rows(str(p))


def test_results_without_the_rows_key_are_not_accepted_by_run(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]
                                                              ) -> None:
    """A program that writes results for rows it did not read through ckjob (no rows_key)."""
    job = make_job(tmp_path / "job", rows=2, chunk=2)
    (job / "square.py").write_text(
        "import sys, json, ckjob\n"
        "h = json.loads(open(sys.argv[1]).readline())\n"
        "recs = [{'row': r, 'value': 0} for r in range(h['start'], h['start'] + h['count'])]\n"
        "doc = ckjob.make_results({'start': h['start'], 'count': h['count'], 'key': h['key']},\n"
        "                         recs, 0.0, 1.0, 'liar')\n"
        "ckjob.write_results(sys.argv[2], doc)\n")
    res = cli(capsys, "run", "-C", str(job), "-j", "1", "--retries", "0")
    tally("fault", 1, "program results without rows_key")
    assert res.code == 8, res.err
    assert "computed from other rows" in res.err and "rows_key missing" in res.err, res.err
    assert not list((job / "results").glob("results-*.json"))
