"""The run record (condorkit/condor/submit.py) and the pieces of monitor.py that need no pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from condorkit.condor.monitor import ChunkStatus as CS
from condorkit.condor.monitor import RunStatus, _host, _last_lines
from condorkit.condor.submit import (
    ChunkEntry,
    RunRecord,
    ScheddInfo,
    load_run,
    write_run_record,
)
from condorkit.errors import UsageError
from condorkit.model.layout import runs_dir


def record(job_dir: Path, cluster: int = 41, parent: int | None = None) -> RunRecord:
    return RunRecord(
        cluster=cluster, schedd=ScheddInfo("vm", "<127.0.0.1:9618?sock=schedd_1>", "$V: 23.9 $"),
        job_dir=job_dir, manifest=str(job_dir / "manifest.txt"), manifest_sha256="ab" * 32,
        results_dir="results", log_dir="logs", event_log=job_dir / "logs" / "condorkit.log",
        spool=False, submitted=1_700_000_000.5, submit_file=job_dir / ".condorkit/runs/41.sub",
        chunks=(ChunkEntry(0, 1, 3, "k0", 0), ChunkEntry(1, 4, 2, "k1", 1)), chunk_size=3,
        max_rows=5, parent=parent)


def test_record_round_trips_and_becomes_the_current_run(tmp_path: Path) -> None:
    first = record(tmp_path, 41)
    second = record(tmp_path, 57, parent=41)
    write_run_record(first)
    write_run_record(second)
    assert load_run(tmp_path) == second
    assert load_run(tmp_path, 41) == first
    assert sorted(p.name for p in runs_dir(tmp_path).glob("*.json")) == ["41.json", "57.json"]
    doc = json.loads((tmp_path / ".condorkit" / "runs" / "41.json").read_text())
    assert doc["format"] == "condorkit-run/1"
    assert doc["submitted_utc"] == "2023-11-14T22:13:20Z"
    assert first.rows == 5
    assert first.result_path(first.chunks[1]) == tmp_path / "results" / "results-4.json"
    assert first.err_path(first.chunks[0]) == tmp_path / "logs" / "chunk-1.err"


def test_missing_and_damaged_records_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no run has been submitted") as e:
        load_run(tmp_path)
    assert "condorkit submit" in e.value.hint
    with pytest.raises(UsageError, match="no run of cluster 9"):
        load_run(tmp_path, 9)
    write_run_record(record(tmp_path))
    path = tmp_path / ".condorkit" / "current-run.json"
    doc = json.loads(path.read_text())
    del doc["chunks"]
    path.write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="damaged run record"):
        load_run(tmp_path)
    path.write_text('{"format": "something-else"}')
    with pytest.raises(UsageError, match="not a condorkit run record"):
        load_run(tmp_path)
    path.write_text("{truncated")
    with pytest.raises(UsageError, match="unreadable run record"):
        load_run(tmp_path)


@pytest.mark.parametrize(("slot", "host"), [
    ("slot1_2@vm", "vm"), ("slot1@node7.example.org", "node7.example.org"),
    ("<127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm&noUDP&sock=startd_1>", "vm"),
    (None, ""), ("", "")])
def test_host_names_from_slots_and_addresses(slot: str | None, host: str) -> None:
    assert _host(slot) == host


def test_last_lines_of_a_chunk_stderr(tmp_path: Path) -> None:
    err = tmp_path / "chunk-1.err"
    err.write_text("condorkit-wrapper: host=vm python=3.13.5 program=p.py\n"
                   "Traceback (most recent call last):\nValueError: bad row\n\n"
                   "condorkit-wrapper: error: program exited 0 but wrote no results-1.json\n")
    assert _last_lines(err) == (
        "condorkit-wrapper: error: program exited 0 but wrote no results-1.json",
        "ValueError: bad row")
    assert _last_lines(tmp_path / "absent.err") == ("", "")


def test_run_status_counts_and_end_states(tmp_path: Path) -> None:
    def chunk(start: int, state: str) -> CS:
        return CS(start, start, 2, start, state, 1, 0, "vm")

    def run(*states: str) -> RunStatus:
        return RunStatus(1, tmp_path, "vm", False, 0.0, 0.0,
                         tuple(chunk(i * 2 + 1, s) for i, s in enumerate(states)))

    st = run("done", "held", "failed", "done")
    assert st.finished and not st.ok
    assert [c.state for c in st.bad] == ["held", "failed"]
    assert st.counts == {"idle": 0, "running": 0, "held": 1, "completed": 0, "done": 2,
                         "failed": 1}
    assert (st.rows, st.rows_done) == (8, 4)
    assert not run("done", "running").finished
    assert not run("completed").finished  # spooled outputs still to retrieve
    assert run("done", "done").ok
    assert run("done").to_dict()["counts"]["done"] == 1
