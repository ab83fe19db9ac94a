"""Results integrity through `condorkit aggregate` on the output of a real `condorkit run`:
a truncated, emptied, renamed or hand-edited results file is reported and none of its rows reach
the chart; copies of the same rows (a retry, a speculative copy) count once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob
from support.robust import (
    aggregate_job,
    assert_nothing_lost,
    assert_report_complete,
    make_job,
    read_page,
    run_job,
    tally,
)

from condorkit.demo import write_corpus

ROWS = 12  # chunks of 4: results-1.json, results-5.json, results-9.json


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photodemo job with every chunk done; tests work on copies of it."""
    from condorkit.cli import main

    base = tmp_path_factory.mktemp("results-job")
    files = write_corpus(base / "img", ROWS, sizes=((40, 30),), seed=21,
                         variants=("rgb", "gray", "text"))
    job = make_job(base / "job", [f"{f.path} {f.year}" for f in files], chunk=4)
    assert main(["run", "-C", str(job), "-j", "2"]) == 0
    (job / "expected.json").write_text(json.dumps([[str(f.path), f.year] for f in files]))
    return job


@pytest.fixture
def job(finished_job: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "job"
    shutil.copytree(finished_job, copy, symlinks=True)
    expected = [tuple(x) for x in json.loads((copy / "expected.json").read_text())]
    assert_nothing_lost(copy, expected)
    return copy


def page_rows(job: Path) -> tuple[set[int], set[int]]:
    """Rows drawn as points and rows listed as errors in the written scatter.html."""
    page = read_page(job / "scatter.html")
    return {p[2] for p in page.data["points"]}, {e[0] for e in page.data["errors"]}


def truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def edit_value(p: Path) -> None:
    doc = json.loads(p.read_text())
    rec = next(r for r in doc["records"] if "luminance" in r)
    rec["luminance"] = 0.999  # the digest is left as it was
    p.write_text(json.dumps(doc))


def edit_year_text(p: Path) -> None:
    text = p.read_text()
    p.write_text(text.replace('"year": ', '"year": 1', 1))  # still valid JSON


def drop_record_and_redigest(p: Path) -> None:
    doc = json.loads(p.read_text())
    doc["records"].pop()
    doc["digest"] = ckjob.results_digest(doc)  # a careful editor: the digest matches again
    p.write_text(json.dumps(doc))


def empty(p: Path) -> None:
    p.write_bytes(b"")  # what the wrapper leaves when the program failed


def nan_value(p: Path) -> None:
    p.write_text(p.read_text().replace('"luminance": ', '"luminance": NaN, "x": ', 1))


def binary_garbage(p: Path) -> None:
    p.write_bytes(b"\x00\xff" * 100)


CORRUPTIONS: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated", truncate, "truncated or corrupt"),
    ("value-edited", edit_value, "digest mismatch"),
    ("year-edited", edit_year_text, "digest mismatch"),
    ("record-dropped", drop_record_and_redigest, "do not cover rows 5..8"),
    ("emptied", empty, "file is empty"),
    ("nan", nan_value, "NaN"),
    ("garbage", binary_garbage, "not"),
]


@pytest.mark.parametrize("how, corrupt, expect", CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_a_damaged_results_file_is_reported_and_kept_out_of_the_chart(
        job: Path, capsys: pytest.CaptureFixture[str], how: str,
        corrupt: Callable[[Path], None], expect: str) -> None:
    target = job / "results" / "results-5.json"
    corrupt(target)
    tally("fault", 1, f"results file {how}")
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 5, agg.err
    assert f"INVALID {target}" in agg.err and expect in agg.err, agg.err
    assert "rows missing from the results: 5-8" in agg.err
    assert report["missing"] == "5-8" and report["missing_count"] == 4
    assert report["found"] + report["errors"] == ROWS - 4
    points, errors = page_rows(job)
    assert not (points | errors) & {5, 6, 7, 8}
    assert points | errors == set(range(1, ROWS + 1)) - {5, 6, 7, 8}
    page = read_page(job / "scatter.html")
    assert {"ck-invalid", "ck-missing"} <= set(page.element_ids)
    if how not in ("truncated", "value-edited"):
        return
    # and the next run redoes exactly that chunk
    res = run_job(capsys, job)
    assert res.code == 0 and "(2 already valid)" in res.err, res.err
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 0 and report["missing_count"] == 0


def test_copies_of_the_same_rows_count_once(job: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    res = job / "results"
    agg, base = aggregate_job(capsys, job)
    assert agg.code == 0
    # a retry's output given twice, and a whole second copy of the results folder
    copy = tmp_path / "speculative-copy"
    shutil.copytree(res, copy)
    tally("fault", 2, "duplicate results (retry, speculative copy)")
    agg, rep = aggregate_job(capsys, job, str(res / "results-1.json"), str(res / "results-1.json"),
                             str(res), str(copy))
    assert agg.code == 0, agg.err
    assert (rep["found"], rep["errors"]) == (base["found"], base["errors"])
    assert rep["duplicates"] == ROWS and rep["conflicts"] == 0
    assert_report_complete(rep, ROWS, errors=base["errors"])
    points, errors = page_rows(job)
    assert len(points) + len(errors) == ROWS
    assert len(read_page(job / "scatter.html").data["points"]) == base["found"]


def test_a_copy_that_disagrees_is_recorded_and_the_first_value_kept(
        job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = json.loads((job / "results" / "results-1.json").read_text())
    other = json.loads(json.dumps(first))
    rec = next(r for r in other["records"] if "luminance" in r)
    kept = rec["luminance"]
    rec["luminance"] = kept / 2
    other["digest"] = ckjob.results_digest(other)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results-1.json").write_text(json.dumps(other))
    tally("fault", 1, "a copy with a different value")
    agg, rep = aggregate_job(capsys, job, str(job / "results"), str(tmp_path / "other"))
    assert agg.code == 0
    sample = rep["conflict_samples"][0]
    assert rep["conflicts"] == 1
    assert (sample["row"] if isinstance(sample, dict) else sample[0]) == rec["row"]
    page = read_page(job / "scatter.html")
    assert [p[1] for p in page.data["points"] if p[2] == rec["row"]] == [kept]


def test_an_error_then_a_value_for_the_same_row_counts_as_a_value(
        job: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A retry that worked: the earlier copy recorded an error, the later one a value."""
    doc = json.loads((job / "results" / "results-1.json").read_text())
    failed = json.loads(json.dumps(doc))
    for r in failed["records"]:
        r.pop("luminance", None)
        r["error"] = "fetch: timed out after 3 attempt(s)"
    failed["digest"] = ckjob.results_digest(failed)
    (tmp_path / "attempt1").mkdir()
    (tmp_path / "attempt1" / "results-1.json").write_text(json.dumps(failed))
    tally("fault", 1, "an error copy before a value copy")
    _, base = aggregate_job(capsys, job)
    agg, rep = aggregate_job(capsys, job, str(tmp_path / "attempt1"), str(job / "results"))
    assert agg.code == 0
    assert (rep["found"], rep["errors"]) == (base["found"], base["errors"])
    assert_report_complete(rep, ROWS, errors=base["errors"])


def test_a_results_file_under_another_name_is_not_counted_for_other_rows(
        job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(job / "results" / "results-1.json", job / "results" / "results-9.json")
    tally("fault", 1, "results file renamed over another chunk's")
    agg, rep = aggregate_job(capsys, job)
    assert agg.code == 5 and rep["missing"] == "9-12"
    assert "file name says rows from 9" in agg.err


def test_results_cut_with_another_chunk_size_are_still_checked(
        job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Aggregating without the run's --chunk reads the chunk size from results-1.json, so the
    key check still applies: an edited row is stale, not charted."""
    (job / "condorkit.toml").write_text("chunk = 200\n")
    agg, rep = aggregate_job(capsys, job)
    assert agg.code == 0 and rep["missing"] == ""
    lines = (job / "manifest.txt").read_text().splitlines()
    url, year = lines[5].split()
    lines[5] = f"{url} {int(year) + 1}"
    (job / "manifest.txt").write_text("\n".join(lines) + "\n")
    agg, rep = aggregate_job(capsys, job)
    assert agg.code == 5 and rep["missing"] == "5-8" and "results-5.json: stale" in agg.err


def test_results_of_a_longer_manifest_do_not_count_beyond_this_one(
        job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The manifest shrank after the run: the cut chunk's results are for other rows (stale),
    so its remaining rows are missing until it runs again; no row past the end is charted."""
    lines = (job / "manifest.txt").read_text().splitlines()
    (job / "manifest.txt").write_text("\n".join(lines[:10]) + "\n")
    tally("fault", 1, "manifest shortened after the run")
    agg, rep = aggregate_job(capsys, job)
    assert agg.code == 5 and rep["expected"] == 10 and rep["missing"] == "9-10"
    assert "results-9.json: stale" in agg.err
    points, errors = page_rows(job)
    assert max(points | errors) == 8
    assert run_job(capsys, job).code == 0
    agg, rep = aggregate_job(capsys, job)
    assert agg.code == 0 and rep["found"] + rep["errors"] == 10


def test_results_of_an_edited_row_are_not_charted_as_current(
        job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Row 1's year changes after the run and nothing is re-run: the chart must not show the
    old year as if it were the manifest's (the results are for other inputs)."""
    lines = (job / "manifest.txt").read_text().splitlines()
    url, year = lines[0].split()
    lines[0] = f"{url} {int(year) + 1}"
    (job / "manifest.txt").write_text("\n".join(lines) + "\n")
    tally("fault", 1, "manifest row edited, results not re-run")
    agg, rep = aggregate_job(capsys, job)
    points = {p[2]: p[0] for p in read_page(job / "scatter.html").data["points"]}
    assert points.get(1) != int(year), "a stale result is charted as current"
    assert agg.code == 5
