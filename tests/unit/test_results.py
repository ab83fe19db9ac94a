"""Reading and validating results files: condorkit-results/1 and the tutorial's fragments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob

from condorkit.model.results import (
    LEGACY_FORMAT,
    find_results,
    load_results,
)


def make_doc(start: int, count: int, *, key: str = "k1", error_rows: tuple[int, ...] = ()
             ) -> dict:
    records = []
    for row in range(start, start + count):
        rec: dict = {"row": row, "url": f"http://example.invalid/{row}.jpg",
                     "year": 1860 + row % 150}
        if row in error_rows:
            rec["error"] = "HTTPError: 404 Not Found"
        else:
            rec["luminance"] = round(0.1 + (row % 70) / 100, 6)
        records.append(rec)
    return ckjob.make_results({"start": start, "count": count, "key": key}, records,
                              1_700_000_000.0, 2.5, "luminance.py")


def write(folder: Path, doc: dict, name: str | None = None) -> Path:
    path = folder / (name or f"results-{doc['start']}.json")
    ckjob.write_results(str(path), doc)
    return path


def resign(doc: dict) -> dict:
    doc["digest"] = ckjob.results_digest(doc)
    return doc


def test_valid_file_loads_with_its_fields(tmp_path: Path) -> None:
    path = write(tmp_path, make_doc(201, 200, error_rows=(205,)))
    rf = load_results(path)
    assert rf.valid and rf.problems == ()
    assert (rf.start, rf.count, rf.end, rf.key) == (201, 200, 400, "k1")
    assert rf.elapsed_s == 2.5 and rf.host
    assert [r["row"] for r in rf.records] == list(range(201, 401))
    assert rf.records[4]["error"].startswith("HTTPError")
    assert rf.format == ckjob.RESULTS_FORMAT


def test_truncated_file_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, make_doc(1, 50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    rf = load_results(path)
    assert not rf.valid
    assert "not valid JSON" in rf.problems[0] and "truncated" in rf.problems[0]
    assert rf.records == ()


def test_hand_edited_value_breaks_the_digest(tmp_path: Path) -> None:
    doc = make_doc(1, 20)
    path = write(tmp_path, doc)
    edited = json.loads(path.read_text())
    edited["records"][3]["luminance"] = 0.999
    path.write_text(json.dumps(edited))
    rf = load_results(path)
    assert not rf.valid
    assert any("digest mismatch" in p for p in rf.problems)


def test_records_must_cover_rows_exactly_once(tmp_path: Path) -> None:
    doc = make_doc(1, 10)
    doc["records"][5] = dict(doc["records"][4])  # row 5 twice, row 6 missing
    path = write(tmp_path, resign(doc))
    rf = load_results(path)
    assert not rf.valid
    assert rf.problems == ("records do not cover rows 1..10 exactly once",)

    doc = make_doc(1, 10)
    del doc["records"][9]  # count says 10, only 9 records
    rf = load_results(write(tmp_path, resign(doc)))
    assert any("exactly once" in p for p in rf.problems)


def test_name_must_match_start(tmp_path: Path) -> None:
    path = write(tmp_path, make_doc(1, 10), name="results-11.json")
    rf = load_results(path)
    assert not rf.valid
    assert "file name says rows from 11" in rf.problems[0]
    # any other name is not checked
    assert load_results(write(tmp_path, make_doc(1, 10), name="copy.json")).valid


@pytest.mark.parametrize("content, expect", [
    (b"", "empty"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b'{"format": "other/1"}', "format is 'other/1'"),
    (b"[]", "not a '[year, luminance],' line"),  # starts like a legacy fragment
    (b"42", "not a JSON object"),
])
def test_garbage_is_reported_not_raised(tmp_path: Path, content: bytes, expect: str) -> None:
    path = tmp_path / "results-1.json"
    path.write_bytes(content)
    rf = load_results(path)
    assert not rf.valid
    assert any(expect in p for p in rf.problems), rf.problems


def test_nan_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path, make_doc(1, 3))
    path.write_text(path.read_text().replace('"luminance": 0.11', '"luminance": NaN', 1))
    rf = load_results(path)
    assert not rf.valid and "NaN" in rf.problems[0]


def test_absurd_row_numbers_are_invalid(tmp_path: Path) -> None:
    rf = load_results(write(tmp_path, make_doc(10**20, 2), name="x.json"))
    assert any("rows beyond" in p for p in rf.problems)
    doc = make_doc(1, 2)
    doc["records"][0]["row"] = 1.0  # compares equal to 1, but is not a row number
    rf = load_results(write(tmp_path, resign(doc)))
    assert rf.problems == ("row numbers must be integers",)


def test_missing_file_and_expectations(tmp_path: Path) -> None:
    rf = load_results(tmp_path / "results-1.json")
    assert rf.problems == ("file does not exist",)
    path = write(tmp_path, make_doc(1, 10, key="abc"))
    assert load_results(path, expect_key="abc", expect_start=1, expect_count=10).valid
    rf = load_results(path, expect_key="other", expect_count=20)
    assert "count is 10, expected 20" in rf.problems
    assert any("key differs" in p for p in rf.problems)


def test_find_results_orders_by_start_number(tmp_path: Path) -> None:
    for start in (1001, 1, 201, 11):
        write(tmp_path, make_doc(start, 1))
    (tmp_path / "results-x.json").write_text("{}")
    (tmp_path / ".results-1.json.abc.tmp").write_text("{")
    names = [p.name for p in find_results(tmp_path)]
    assert names == ["results-1.json", "results-11.json", "results-201.json",
                     "results-1001.json"]


# ------------------------------------------------------------------ legacy fragments

TUTORIAL_SAMPLE = """\
/* Running on host: login01.osgconnect.net */
[1880, 0.525493],
[1919, 0.416121],
[1919, 0.436667],
[1919, 0.461788],
[1945, 0.142712],
/* 5 photos analyzed in 6.94s (1.39/s) */
"""


def test_legacy_fragment_from_the_tutorial(tmp_path: Path) -> None:
    path = tmp_path / "results-0.json"
    path.write_text(TUTORIAL_SAMPLE)
    rf = load_results(path)
    assert rf.valid, rf.problems
    assert rf.format == LEGACY_FORMAT
    assert (rf.start, rf.count, rf.host, rf.elapsed_s) == (1, 5, "login01.osgconnect.net", 6.94)
    assert rf.records[0] == {"row": 1, "year": 1880, "luminance": 0.525493}
    assert rf.records[4] == {"row": 5, "year": 1945, "luminance": 0.142712}


def test_legacy_rows_follow_the_skip_in_the_name(tmp_path: Path) -> None:
    path = tmp_path / "results-200.json"
    path.write_text(TUTORIAL_SAMPLE)
    rf = load_results(path, legacy_fields=("x", "y"))
    assert [r["row"] for r in rf.records] == [201, 202, 203, 204, 205]
    assert rf.records[1] == {"row": 202, "x": 1919, "y": 0.416121}


def test_legacy_fragment_and_expectations(tmp_path: Path) -> None:
    path = tmp_path / "results-0.json"
    path.write_text(TUTORIAL_SAMPLE)
    assert load_results(path, expect_start=1, expect_count=5).valid
    rf = load_results(path, expect_start=201, expect_key="k")
    assert "start is 1, expected 201" in rf.problems
    assert any("no key" in p for p in rf.problems)


def test_legacy_lines_with_trailing_comments(tmp_path: Path) -> None:
    path = tmp_path / "results-10.json"
    path.write_text("[2001, 0.5], /* retried */\n"
                    "  [2015,0.25]  // last one\n"
                    "// a comment line\n"
                    "[1899.5, 1e-1],\n"
                    "/* 3 photos analyzed in 1.00s (1.00/s) */\n")
    rf = load_results(path)
    assert rf.valid, rf.problems
    assert [(r["row"], r["year"], r["luminance"]) for r in rf.records] == [
        (11, 2001, 0.5), (12, 2015, 0.25), (13, 1899.5, 0.1)]


@pytest.mark.parametrize("text, name, expect", [
    ("/* Running on host: h */\n[1880, 0.5],\n", "results-0.json", "stopped early"),
    ("[1880, 0.5],\n/* 2 photos analyzed in 1.00s (1/s) */\n", "results-0.json",
     "says 2 photos, but the file has 1"),
    ("[1880, 0.5],\nTraceback (most recent call last):\n", "results-0.json",
     "line 2: not a '[year, luminance],' line"),
    (TUTORIAL_SAMPLE, "photos.json", "cannot tell which rows"),
    (TUTORIAL_SAMPLE + "[1900, 0.1],\n", "results-0.json", "text after the closing"),
])
def test_broken_legacy_fragments_are_invalid(tmp_path: Path, text: str, name: str,
                                             expect: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    rf = load_results(path)
    assert not rf.valid
    assert any(expect in p for p in rf.problems), rf.problems


@pytest.mark.parametrize(("value", "synced"), [(None, 1), ("1", 1), ("0", 0)])
def test_results_reach_the_disk_unless_the_local_backend_says_not_to_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, synced: int) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    if value is None:
        monkeypatch.delenv(ckjob.FSYNC_VAR, raising=False)
    else:
        monkeypatch.setenv(ckjob.FSYNC_VAR, value)
    ckjob.atomic_write_bytes(str(tmp_path / "r.json"), b"{}\n")
    assert (tmp_path / "r.json").read_bytes() == b"{}\n" and len(calls) == synced
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize(("records", "problem"), [
    ([{"row": 1}, {"row": 2}, {"row": 3}], None),
    ([{"row": 3}, {"row": 1}, {"row": 2}], None),  # any order
    ([{"row": 1}, {"row": 2}, {"row": 2}], "exactly once"),
    ([{"row": 1}, {"row": 2}], "exactly once"),
    ([{"row": 1}, {"row": 2}, {"x": 3}], "exactly once"),
    ([{"row": 1}, {"row": 2}, [3]], "exactly once"),
    ([{"row": 1}, {"row": 2}, "row"], "exactly once"),
    ([{"row": 1}, {"row": 2}, None], "exactly once"),
    ([{"row": 1}, {"row": 2}, {"row": None}], "exactly once"),
    ([{"row": 1}, {"row": 2}, {"row": True}], "integers"),
    ([{"row": 1}, {"row": 2}, {"row": 3.0}], "integers"),
    ([{"row": 1}, {"row": 2}, {"row": "3"}], "integers"),
])
def test_row_coverage_rule(records: list, problem: str | None) -> None:
    doc = ckjob.make_results({"start": 1, "count": 3, "key": "k"}, [], 0.0, 1.0, "p")
    doc["records"] = records
    doc["digest"] = ckjob.results_digest(doc)
    problems = ckjob.check_results(doc, 1, 3, "k")
    assert (problems == []) if problem is None else (len(problems) == 1
                                                      and problem in problems[0])
