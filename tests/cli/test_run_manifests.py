"""Awkward and broken manifests, end to end through `condorkit run` and `condorkit aggregate`.

Accepted forms (BOM, CRLF, blank lines, comments, tabs, non-ASCII paths, file:// URLs with %20,
the same URL twice) give correct results for every row; malformed lines stop the job BEFORE
anything runs, with an error naming the file and the line (manifest.py's decisions).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.robust import (
    aggregate_job,
    assert_nothing_lost,
    assert_report_complete,
    cli,
    make_job,
    run_job,
    tally,
)

from condorkit.demo import CorpusFile, write_corpus


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[CorpusFile, ...]:
    folder = tmp_path_factory.mktemp("manifest-images")
    return tuple(write_corpus(folder, 3, sizes=((48, 32),), seed=8, variants=("rgb", "gray")))


def test_accepted_forms_give_a_result_for_every_row(tmp_path: Path, images: tuple[CorpusFile, ...],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = (f.path for f in images)
    uni = tmp_path / "ünïcödé-фото-写真"
    uni.mkdir()
    shutil.copy(a, uni / "ßild-ä.jpg")
    spaced = tmp_path / "my photos"
    spaced.mkdir()
    shutil.copy(b, spaced / "a b.jpg")
    literal_pct = tmp_path / "pct"
    literal_pct.mkdir()
    shutil.copy(c, literal_pct / "x%20y.jpg")  # a plain path is taken literally: no unquoting
    expected = [
        (str(a), 1880),
        (str(uni / "ßild-ä.jpg"), 1919),
        ((spaced / "a b.jpg").as_uri(), 2001),
        (str(a), 1880),  # the same URL twice: two rows, both processed
        (str(literal_pct / "x%20y.jpg"), -5),  # any integer year, even a strange one
        (str(tmp_path / "no-such.jpg"), 2020),  # a missing file: a recorded error, not a stop
        ("relative/img.jpg", 1999),  # relative paths do not exist in the job's scratch folder
        (str(b), +1936),
    ]
    lines = [
        "# photodemo manifest: URL-or-path year",
        "",
        f"{expected[0][0]}\t{expected[0][1]}",
        "   # an indented comment",
        f"  {expected[1][0]}   {expected[1][1]}  ",
        "\t",
        f"{expected[2][0]} {expected[2][1]}",
        f"{expected[3][0]} {expected[3][1]}",
        f"{expected[4][0]} {expected[4][1]}",
        f"{expected[5][0]} {expected[5][1]}",
        f"{expected[6][0]} {expected[6][1]}",
        "",
        f"{expected[7][0]} +1936",  # last line without a line end
    ]
    data = b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8")
    job = make_job(tmp_path / "job", data, chunk=3)
    tally("input", 1, "manifest with BOM, CRLF, blanks, comments, tabs, unicode, %20, duplicates")
    res = run_job(capsys, job)
    assert res.code == 0, res.err
    recs = assert_nothing_lost(job, expected)
    assert [recs[n]["luminance"] for n in (1, 4)] == [recs[1]["luminance"]] * 2
    assert {n for n, r in recs.items() if "error" in r} == {6, 7}
    assert "no such file" in recs[6]["error"] and "relative/img.jpg" in recs[7]["error"]
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 0, agg.err
    assert_report_complete(report, len(expected), errors=2)


BAD_LINES = [
    # (id, bytes of line 3, text the error must contain)
    ("one-field", b"/data/a.jpg", "expected 2 field(s) (URL-or-path year), found 1"),
    ("three-fields", b"/data/a.jpg 1999 extra", "found 3"),
    ("space-in-path", b"/my photos/a.jpg 1999", "found 3"),
    ("fullwidth-year", "/data/a.jpg \uff11\uff19\uff19\uff19".encode(), "year must be an integer"),
    ("form-feed", b"/data/a.jpg\x0c1999", "control character"),
    ("inline-comment", b"/data/a.jpg 1999 # scanned", "found 4"),
    ("year-word", b"/data/a.jpg nineteen", "year must be an integer, got 'nineteen'"),
    ("year-decimal", b"/data/a.jpg 1999.5", "year must be an integer"),
    ("year-huge", b"/data/a.jpg 1" + b"9" * 30, "year must be an integer"),
    ("latin-1", "/data/caf\u00e9.jpg 1999".encode("latin-1"), "not valid UTF-8"),
    ("nul", b"/data/a\x00.jpg 1999", "control character"),
    ("escape", b"/data/a\x1b[31m.jpg 1999", "control character"),
    ("lone-cr", b"/data/a.jpg 1999\r/data/b.jpg 2000", "control character"),
    ("u2028", "/data/a\u2028.jpg 1999".encode(), "control character"),
    ("ftp", b"ftp://host/a.jpg 1999", "unsupported URL scheme 'ftp'"),
    ("javascript", b"javascript:alert(1) 1999", "unsupported URL scheme 'javascript'"),
]


@pytest.mark.parametrize("line, expect", [pytest.param(b, e, id=i) for i, b, e in BAD_LINES])
def test_malformed_line_stops_every_command_naming_file_and_line(
        tmp_path: Path, images: tuple[CorpusFile, ...], capsys: pytest.CaptureFixture[str],
        line: bytes, expect: str) -> None:
    data = b"# header\n" + f"{images[0].path} 1900\n".encode() + line + b"\n"
    job = make_job(tmp_path / "job", data + f"{images[1].path} 1901\n".encode())
    manifest = job / "manifest.txt"
    tally("input", 1, f"malformed manifest line: {line!r}")
    for argv in (["run", "-C", str(job), "-j", "2"], ["mksubmit", "-C", str(job), "2"],
                 ["dry-run", "-C", str(job)],
                 ["aggregate", "-C", str(job), "-o", str(tmp_path / "s.html")]):
        res = cli(capsys, *argv)
        assert res.code == 3, (argv, res)
        assert f"{manifest}:3: " in res.err and expect in res.err, (argv, res.err)
        assert "hint:" in res.err and "Traceback" not in res.err
        assert res.out == ""
    # nothing half-done: no rows files, no results, no logs, no page
    assert not (job / "chunks").exists() and not (job / "results").exists()
    assert not (job / "logs").exists()
    assert not (tmp_path / "s.html").exists()


def test_space_in_path_error_says_how_to_write_it(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", "/my photos/a.jpg 1999\n")
    res = run_job(capsys, job)
    assert res.code == 3 and "file://" in res.err and "%20" in res.err


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"# only a comment\r\n\r\n   \n\t\n"],
                         ids=["zero-bytes", "bom-only", "comments-and-blanks"])
def test_empty_manifest_is_an_error_not_an_empty_success(
        tmp_path: Path, data: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", data)
    tally("input", 1, f"empty manifest {data!r}")
    for argv in (["run", "-C", str(job)], ["mksubmit", "-C", str(job)]):
        res = cli(capsys, *argv)
        assert res.code == 3 and f"{job / 'manifest.txt'}: the manifest has no data" in res.err, res
        assert "no data rows" in res.err and res.out == ""
    assert not (job / "results").exists()


def test_utf16_manifest_is_refused_at_line_one(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", "/data/a.jpg 1999\n".encode("utf-16"))
    tally("input", 1, "UTF-16 manifest")
    res = run_job(capsys, job)
    assert res.code == 3 and f"{job / 'manifest.txt'}:1: not valid UTF-8" in res.err


def test_missing_manifest_is_a_configuration_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", b"x 1\n")
    (job / "manifest.txt").unlink()
    tally("input", 1, "no manifest")
    res = run_job(capsys, job)
    assert res.code == 2 and "manifest" in res.err and "does not exist" in res.err


def test_rows_added_or_changed_after_a_run_are_never_silently_dropped(
        tmp_path: Path, images: tuple[CorpusFile, ...], capsys: pytest.CaptureFixture[str]) -> None:
    """Append rows and edit one after a complete run: aggregate reports the new rows and the
    edited row's (now stale) chunk missing (exit 5); the next run computes only what changed;
    then everything is there."""
    rows = [(str(f.path), 1900 + i) for i, f in enumerate(images * 2)]  # 6 rows
    job = make_job(tmp_path / "job", [f"{u} {y}" for u, y in rows], chunk=2)
    assert run_job(capsys, job).code == 0
    before = {p.name: p.stat().st_mtime_ns for p in (job / "results").iterdir()}
    rows += [(str(images[0].path), 2010), (str(images[1].path), 2011), (str(images[2].path), 2012)]
    rows[2] = (str(images[2].path), 1777)  # row 3 (chunk 3..4) changes its year
    (job / "manifest.txt").write_text("".join(f"{u} {y}\n" for u, y in rows))
    tally("fault", 1, "manifest edited and extended after a run")
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 5 and report["missing"] == "3-4, 7-9" and "rows missing" in agg.err
    assert "results-3.json: stale" in agg.err
    res = run_job(capsys, job)
    assert res.code == 0, res.err
    after = {p.name: p.stat().st_mtime_ns for p in (job / "results").iterdir()}
    assert after["results-1.json"] == before["results-1.json"]  # untouched chunk kept
    assert after["results-5.json"] == before["results-5.json"]
    assert after["results-3.json"] != before["results-3.json"]  # edited row: chunk recomputed
    assert_nothing_lost(job, rows)
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 0
    assert_report_complete(report, len(rows), errors=0)
