"""The local backend (condorkit.local.run): real wrapper, real processes, small job folders."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob
from support.localjob import joblog, make_job, rejected, result_rows

from condorkit.errors import UsageError
from condorkit.local.pieces import make_piece, part_path, parts_dir
from condorkit.local.planning import Estimate, plan_piece
from condorkit.local.run import run
from condorkit.model.config import load_config
from condorkit.model.job import Job, prepare
from condorkit.report.aggregate import aggregate

REPO = Path(__file__).resolve().parents[2]
FAST = {"backoff": 0.01, "speculate_after": None}


def job_of(folder: Path, **cli: object) -> Job:
    return prepare(folder, load_config(folder, cli, env={}))


def env_with(tmp_path: Path, **values: str) -> dict[str, str]:
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CKTEST_", "CONDORKIT_"))}
    env.update(CKTEST_STATE=str(state), **values)
    return env


def assert_exactly_once(job: Job) -> None:
    assert result_rows(job.dir) == list(range(1, job.rows + 1))
    for task in job.tasks():
        assert task.valid() is None
    report = aggregate([job.results_dir], expected_rows=job.rows,
                       out_html=job.dir / "scatter.html", x_field="n", y_field="value",
                       label_field="name")
    assert (report.found, report.duplicates, report.missing_count) == (job.rows, 0, 0)
    assert not list(job.results_dir.glob(".*")), "a temporary file was left in results/"


# ----------------------------------------------------------------------------- basic run, resume


def test_run_every_chunk_then_resume_skips_everything(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=12, chunk=4))
    report = run(job, workers=2, **FAST)
    assert [c.status for c in report.chunks] == ["done"] * 3
    assert report.rows_run == 12 and not report.failed
    assert_exactly_once(job)
    doc = json.loads((job.results_dir / "results-5.json").read_text())
    assert [r["value"] for r in doc["records"]] == [25, 36, 49, 64]
    log = joblog(job.log_dir / "joblog.tsv")
    assert len(log) == report.attempts and all(e["Outcome"] == "done" for e in log)
    assert not list((job.dir / ".condorkit" / "scratch").iterdir())

    again = run(job, workers=2, **FAST)
    assert again.attempts == 0 and again.skipped == 3 and again.rows_run == 0
    assert len(joblog(job.log_dir / "joblog.tsv")) == len(log)


def test_editing_one_manifest_row_reruns_only_its_chunk(tmp_path: Path) -> None:
    folder = make_job(tmp_path / "job", rows=12, chunk=4)
    run(job_of(folder), workers=2, **FAST)
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "results").iterdir()}
    lines = (folder / "manifest.txt").read_text().splitlines()
    lines[6] = "item7 70"  # row 7 lives in the chunk starting at row 5
    (folder / "manifest.txt").write_text("\n".join(lines) + "\n")
    job = job_of(folder)
    report = run(job, workers=2, granularity="chunk", **FAST)
    assert {c.start: c.status for c in report.chunks} == {1: "skipped", 5: "done", 9: "skipped"}
    assert report.attempts == 1
    after = {p.name: p.stat().st_mtime_ns for p in (folder / "results").iterdir()}
    assert after["results-1.json"] == before["results-1.json"]
    assert after["results-9.json"] == before["results-9.json"]
    doc = json.loads((folder / "results" / "results-5.json").read_text())
    assert doc["records"][2] == {"row": 7, "name": "item7", "n": 70, "value": 4900}
    assert_exactly_once(job)


def test_a_second_run_refuses_while_one_holds_the_lock(tmp_path: Path) -> None:
    import fcntl

    job = job_of(make_job(tmp_path / "job", rows=2, chunk=1))
    with open(job.dir / ".condorkit" / "run.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(UsageError, match="another `condorkit run`"):
            run(job, workers=1, **FAST)


def test_a_tampered_result_is_rerun(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=6, chunk=3))
    run(job, workers=2, **FAST)
    path = job.results_dir / "results-4.json"
    path.write_text(path.read_text().replace('"value": 16', '"value": 17'))
    report = run(job, workers=2, **FAST)
    assert {c.start: c.status for c in report.chunks} == {1: "skipped", 4: "done"}
    assert_exactly_once(job)


# ----------------------------------------------------------------------------- faults


def test_random_rejections_are_retried_and_every_row_lands_once(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=12, chunk=2))
    env = env_with(tmp_path, CKTEST_FAIL_P="0.5", CKTEST_SEED="1")
    report = run(job, workers=2, retries=20, granularity="chunk", env=env, **FAST)
    assert not report.failed
    # the program's coin flips are deterministic per (chunk, attempt): count the rejections
    expected = 0
    for c in job.chunks:
        attempt = 1
        while rejected("1", c.start, attempt, 0.5):
            expected, attempt = expected + 1, attempt + 1
    assert expected > 0
    assert report.retried == expected and report.attempts == len(job.chunks) + expected
    log = joblog(job.log_dir / "joblog.tsv")
    assert sum(e["Outcome"] == "failed" for e in log) == expected
    assert all(e["Exitval"] == "3" for e in log if e["Outcome"] == "failed")
    assert_exactly_once(job)


def test_random_rejections_with_automatic_granularity(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=15, chunk=5))
    env = env_with(tmp_path, CKTEST_FAIL_P="0.4", CKTEST_SEED="3")
    report = run(job, workers=2, retries=30, env=env, **FAST)
    assert not report.failed
    assert_exactly_once(job)
    assert not list(parts_dir(job).glob("*.json")) if parts_dir(job).is_dir() else True


def test_a_chunk_that_keeps_failing_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=9, chunk=3))
    env = env_with(tmp_path, CKTEST_FAIL_STARTS="4")
    report = run(job, workers=2, retries=2, granularity="chunk", env=env, **FAST)
    assert {c.start: c.status for c in report.chunks} == {1: "done", 4: "failed", 7: "done"}
    (bad,) = report.failed
    assert bad.attempts == 3 and "exit code 3" in bad.reason and "always fails" in bad.reason
    assert report.retried == 2
    assert not (job.results_dir / "results-4.json").exists()
    assert result_rows(job.dir) == [1, 2, 3, 7, 8, 9]


def test_workers_sigkilled_mid_chunk_are_retried(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=12, chunk=3))
    env = env_with(tmp_path, CKTEST_KILL="all")
    report = run(job, workers=2, retries=1, granularity="chunk", env=env, **FAST)
    assert not report.failed
    log = joblog(job.log_dir / "joblog.tsv")
    killed = [e for e in log if e["Outcome"] == "failed"]
    assert len(killed) == 4 and report.retried == 4
    assert all(e["Signal"] == "9" and "SIGKILL" in e["Note"] for e in killed)
    assert_exactly_once(job)


def test_workers_sigkilled_with_automatic_granularity(tmp_path: Path) -> None:
    # every piece's first attempt dies, whatever pieces the planner makes
    job = job_of(make_job(tmp_path / "job", rows=20, chunk=3))
    report = run(job, workers=2, retries=1, env=env_with(tmp_path, CKTEST_KILL="all"), **FAST)
    assert not report.failed and report.retried >= 2
    assert_exactly_once(job)


def test_a_straggler_gets_a_copy_and_the_loser_is_killed(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=6, chunk=3))
    env = env_with(tmp_path, CKTEST_HANG="1")
    report = run(job, workers=2, granularity="chunk", env=env, backoff=0.01,
                 speculate_after=0.3)
    assert report.speculated == 1 and not report.failed
    log = joblog(job.log_dir / "joblog.tsv")
    outcomes = sorted((e["Rows"], e["Outcome"]) for e in log)
    assert outcomes == [("1-3", "done"), ("1-3", "superseded"), ("4-6", "done")]
    pid, _ = (tmp_path / "state" / "pid-1-1").read_text().split()
    assert_gone(int(pid))
    assert_exactly_once(job)


def assert_gone(pid: int) -> None:
    """The process is gone (or a zombie about to be reaped by init)."""
    for _ in range(200):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} is still running")


# ----------------------------------------------------------------------------- granularity


def test_one_chunk_on_two_workers_is_split_and_merged(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=10, chunk=10))
    report = run(job, workers=2, **FAST)
    assert report.pieces == 2
    log = joblog(job.log_dir / "joblog.tsv")
    assert sorted(e["Rows"] for e in log) == ["1-5", "6-10"]
    doc = json.loads((job.results_dir / "results-1.json").read_text())
    assert ckjob.check_results(doc, 1, 10, job.keys[0]) == []
    assert [(p["start"], p["count"]) for p in doc["pieces"]] == [(1, 5), (6, 5)]
    assert list(job.results_dir.iterdir()) == [job.results_dir / "results-1.json"]
    assert not list(parts_dir(job).iterdir())
    assert_exactly_once(job)


def test_parts_of_an_interrupted_chunk_are_reused(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=10, chunk=10))
    env = env_with(tmp_path, CKTEST_FAIL_STARTS="6")
    first = run(job, workers=2, retries=0, env=env, **FAST)
    assert [c.status for c in first.chunks] == ["failed"]
    assert [p.name for p in parts_dir(job).iterdir()] == ["results-1-5.json"]
    assert not list(job.results_dir.iterdir())
    n_first = len(joblog(job.log_dir / "joblog.tsv"))

    second = run(job, workers=2, env=env_with(tmp_path), **FAST)
    assert [c.status for c in second.chunks] == ["done"] and second.rows_run == 5
    new = joblog(job.log_dir / "joblog.tsv")[n_first:]
    assert all(int(e["Rows"].split("-")[0]) >= 6 for e in new)
    assert not list(parts_dir(job).iterdir())
    assert_exactly_once(job)


def test_stale_parts_are_not_reused(tmp_path: Path) -> None:
    folder = make_job(tmp_path / "job", rows=10, chunk=10)
    job = job_of(folder)
    run(job, workers=2, retries=0, env=env_with(tmp_path, CKTEST_FAIL_STARTS="6"), **FAST)
    assert (parts_dir(job) / "results-1-5.json").exists()
    (folder / "manifest.txt").write_text(
        (folder / "manifest.txt").read_text().replace("item3 3", "item3 33"))
    job = job_of(folder)
    report = run(job, workers=2, env=env_with(tmp_path / "b"), **FAST)
    assert report.rows_run == 10
    doc = json.loads((job.results_dir / "results-1.json").read_text())
    assert doc["records"][2]["value"] == 33 ** 2
    assert_exactly_once(job)


def test_the_chunks_a_piece_overlaps_are_found_by_search() -> None:
    """``overlapping`` (a binary search over the chunks, once per piece) agrees with scanning
    every chunk, for ranges inside, across and at the edges of chunks of uneven sizes."""
    from types import SimpleNamespace

    from condorkit.local.pieces import overlapping
    from condorkit.model.chunking import Chunk

    sizes = [3, 1, 5, 2, 7, 1, 1, 4]
    chunks, start = [], 1
    for i, n in enumerate(sizes):
        chunks.append(Chunk(i, start, n))
        start += n
    job = SimpleNamespace(chunks=tuple(chunks))
    total = start - 1
    for first in range(1, total + 1):
        for count in range(1, total - first + 2):
            end = first + count - 1
            expect = tuple(c.index for c in chunks if c.start <= end and c.end >= first)
            assert overlapping(job, first, count) == expect, (first, count)  # type: ignore[arg-type]


def test_parts_of_a_chunk_are_cut_from_its_rows_read_once(tmp_path: Path) -> None:
    """The rows files of a chunk's parts are the same whether its rows come from the run's
    cache (read and checked once per chunk) or are read for every part; the cache holds a
    bounded number of chunks."""
    from condorkit.local.pieces import ChunkRowsCache, write_piece_rows

    job = job_of(make_job(tmp_path / "job", rows=12, chunk=4))
    cache = ChunkRowsCache(size=2)
    for start, count in ((1, 2), (3, 3), (6, 4), (10, 3), (2, 9)):
        piece = make_piece(job, start, count)
        a, b = tmp_path / f"a{start}", tmp_path / f"b{start}"
        a.mkdir()
        b.mkdir()
        assert write_piece_rows(job, piece, a, cache) == write_piece_rows(job, piece, b)
        assert (a / piece.rows_file).read_bytes() == (b / piece.rows_file).read_bytes()
        assert len(cache._held) <= 2
    first = cache.get(job, job.chunks[2])
    assert cache.get(job, job.chunks[2])[1] is first[1]  # held: not read again
    # a rows file replaced behind the run's back is read and checked again: refused
    path = job.dir / "chunks" / "rows-9.jsonl"
    edited = tmp_path / "edited"
    edited.write_text(path.read_text().replace("item10", "evil10"))
    os.replace(edited, path)
    with pytest.raises(UsageError, match="holds other rows|cannot use"):
        cache.get(job, job.chunks[2])


def test_parts_across_chunk_boundaries_are_assembled_per_chunk(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=8, chunk=4))
    parts_dir(job).mkdir(parents=True)
    for start, count in ((1, 6), (7, 2)):  # as a joined piece and its tail would leave them
        piece = make_piece(job, start, count)
        assert not piece.whole and piece.key not in job.keys
        records = [{"row": r, "name": f"item{r}", "n": r, "value": r * r}
                   for r in range(start, start + count)]
        doc = ckjob.make_results({"start": start, "count": count, "key": piece.key}, records,
                                 time.time(), 0.1, "square.py")
        ckjob.write_results(str(part_path(job, piece)), doc)
    report = run(job, workers=2, **FAST)
    assert report.attempts == 0 and [c.status for c in report.chunks] == ["done", "done"]
    doc = json.loads((job.results_dir / "results-5.json").read_text())
    assert [(p["start"], p["count"]) for p in doc["pieces"]] == [(1, 6), (7, 2)]
    assert not list(parts_dir(job).iterdir())
    assert_exactly_once(job)


def test_tiny_chunks_are_joined_and_still_written_per_chunk(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=24, chunk=1))
    report = run(job, workers=2, **FAST)
    assert not report.failed and report.pieces < 24  # start-up costs far more than a row
    assert len(list(job.results_dir.glob("results-*.json"))) == 24
    assert_exactly_once(job)


def batches(job: Job) -> list[dict[str, str]]:
    return [e for e in joblog(job.log_dir / "joblog.tsv") if "," in e["Chunk"]]


def test_tiny_chunks_run_as_batches_each_chunk_checked_on_its_own(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=60, chunk=1))
    report = run(job, workers=2, **FAST)
    assert not report.failed and report.pieces < 60
    assert batches(job), "no piece ran several chunks"
    for task in job.tasks():  # each chunk's own results file, never merged from parts
        doc = json.loads(task.result_path.read_text())
        assert "pieces" not in doc and doc["key"] == doc["rows_key"] == task.key
    assert not parts_dir(job).is_dir() or not list(parts_dir(job).iterdir())
    assert_exactly_once(job)


def test_a_failing_chunk_in_a_batch_fails_alone(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=40, chunk=1))
    env = env_with(tmp_path, CKTEST_FAIL_STARTS="30")
    report = run(job, workers=2, retries=1, env=env, **FAST)
    (bad,) = report.failed
    assert bad.start == 30 and "always fails" in bad.reason
    assert [c.start for c in report.chunks if c.status == "done"] == [
        s for s in range(1, 41) if s != 30]
    (line,) = [e for e in batches(job) if "30" in e["Chunk"].split(",")]
    assert line["Outcome"] == "failed" and line["Note"].startswith("1 of ")
    alone = [e for e in joblog(job.log_dir / "joblog.tsv") if e["Chunk"] == "30"]
    assert len(alone) == 2  # the batch cost it no retry: two attempts alone (retries=1)
    assert result_rows(job.dir) == [r for r in range(1, 41) if r != 30]


def test_a_batch_killed_mid_way_keeps_its_finished_chunks(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=40, chunk=1))
    env = env_with(tmp_path, CKTEST_KILL="30")
    report = run(job, workers=2, retries=0, env=env, **FAST)
    assert not report.failed
    (line,) = [e for e in batches(job) if "30" in e["Chunk"].split(",")]
    assert line["Outcome"] == "failed" and line["Signal"] == "9"
    chunks = [int(c) for c in line["Chunk"].split(",")]
    before = [c for c in chunks if c < 30]
    rerun = {int(e["Chunk"]) for e in joblog(job.log_dir / "joblog.tsv")
             if e["Chunk"].isdigit() and e["Attempt"] == "1" and int(e["Chunk"]) in chunks}
    assert 30 in rerun and not rerun & set(before)  # chunks done before the kill stay done
    assert_exactly_once(job)


def test_granularity_chunk_runs_exactly_the_jobs_chunks(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=10, chunk=10))
    report = run(job, workers=2, granularity="chunk", **FAST)
    assert report.pieces == 1
    assert [e["Rows"] for e in joblog(job.log_dir / "joblog.tsv")] == ["1-10"]


def test_random_dispatch_preassigns_whole_chunks(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=10, chunk=2))
    report = run(job, workers=2, dispatch="random", seed=1, **FAST)
    assert report.dispatch == "random" and report.pieces == 5 and not report.failed
    assert_exactly_once(job)


def test_bad_dispatch_is_a_usage_error(tmp_path: Path) -> None:
    job = job_of(make_job(tmp_path / "job", rows=2, chunk=1))
    with pytest.raises(UsageError, match="dispatch"):
        run(job, dispatch="roundrobin")


@pytest.mark.parametrize(
    ("spans", "pending", "running", "est", "want"),
    [
        # plenty of work left: take the whole chunk
        ([(1, 200, True)], 1000, 0, Estimate(), (1, 200)),
        # the tail: cut at the fair share of what is left (over twice the workers)
        ([(801, 200, True)], 200, 10, Estimate(0.05, 0.2), (1, 53)),
        # never leave a remainder below three start-ups of work (12 rows here)
        ([(801, 55, True)], 55, 120, Estimate(0.05, 0.2), (1, 55)),
        ([(801, 150, True)], 150, 120, Estimate(0.05, 0.2), (1, 68)),
        # the last round: the rest split evenly (each worker's part <= 8 x 12 rows), no halving
        ([(801, 70, True)], 70, 120, Estimate(0.05, 0.2), (1, 70)),
        ([(801, 100, True)], 100, 60, Estimate(0.05, 0.2), (1, 80)),
        ([(801, 100, True)], 100, 0, Estimate(0.05, 0.2), (1, 50)),
        # no estimate yet: split one big chunk between two idle workers
        ([(1, 10, True)], 10, 0, Estimate(), (1, 5)),
        # tiny chunks are joined while they are adjacent, whole and fresh
        ([(1, 1, True), (2, 1, True), (3, 1, True)], 3, 0, Estimate(0.001, 0.2), (3, 3)),
        ([(1, 1, True), (2, 1, False), (3, 1, True)], 3, 0, Estimate(0.001, 0.2), (1, 1)),
        ([(1, 1, True), (5, 1, True)], 2, 0, Estimate(0.001, 0.2), (1, 1)),
        # a chunk that is long enough on its own is not joined
        ([(1, 100, True), (101, 100, True)], 1000, 0, Estimate(0.05, 0.05), (1, 100)),
        # joined until start-up is 2% of the piece, ending inside a chunk if need be...
        ([(1, 50, True), (51, 50, True), (101, 50, True)], 1000, 0, Estimate(0.05, 0.12),
         (3, 120)),
        # ...but not leaving a remainder shorter than min_rows (8 here)
        ([(1, 50, True), (51, 50, True), (101, 27, True)], 1000, 0, Estimate(0.05, 0.12),
         (3, 127)),
        # a span that failed before is taken alone
        ([(1, 50, False), (51, 50, True)], 1000, 0, Estimate(0.05, 0.3), (1, 50)),
    ],
)
def test_plan_piece(spans: list[tuple[int, int, bool]], pending: int, running: float,
                    est: Estimate, want: tuple[int, int]) -> None:
    assert plan_piece(spans, pending, running, 2, est) == want


def test_joined_pieces_stay_within_half_the_time_limit() -> None:
    tiny = [(s, 1, True) for s in range(1, 1001)]
    est = Estimate(0.01, 0.2)  # joining would go to 1,000 rows = 10 s
    assert plan_piece(tiny, 1000, 0, 2, est) == (250, 250)
    assert plan_piece(tiny, 1000, 0, 2, est, time_limit=2.0) == (80, 80)  # (1 - 0.2) / 0.01
    # a chunk longer than that is still taken whole (the limit is meant for one chunk)
    assert plan_piece([(1, 200, True), (201, 1, True)], 2000, 0, 2, est,
                      time_limit=2.0) == (1, 200)


# ----------------------------------------------------------------------------- real photodemo


def test_photodemo_on_real_jpegs_five_chunks_two_workers(tmp_path: Path, photo_corpus) -> None:
    folder = tmp_path / "photo"
    folder.mkdir()
    shutil.copy(REPO / "examples" / "photodemo" / "luminance.py", folder)
    shutil.copy(REPO / "examples" / "photodemo" / "condorkit.toml", folder)
    files = photo_corpus[:10]
    (folder / "manifest.txt").write_text("".join(f"{f.path} {f.year}\n" for f in files))
    job = job_of(folder, chunk=2)
    assert len(job.chunks) == 5
    report = run(job, workers=2, **FAST)
    assert not report.failed and report.rows_run == 10
    sys.path.insert(0, str(REPO / "examples" / "photodemo"))
    sys.path.insert(0, str(REPO / "wrappers"))
    try:
        import luminance  # the program's own kernel, in-process
    finally:
        del sys.path[:2]
    got = {}
    for p in job.results_dir.glob("results-*.json"):
        for r in json.loads(p.read_text())["records"]:
            got[r["row"]] = (r["year"], r["luminance"])
    assert got == {i: (f.year, luminance.luminance(str(f.path)))
                   for i, f in enumerate(files, start=1)}
    rep = aggregate([job.results_dir], expected_rows=10, out_html=folder / "scatter.html")
    assert (rep.found, rep.duplicates, rep.missing_count) == (10, 0, 0)
