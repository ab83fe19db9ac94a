"""Aggregation: coverage counting, duplicates, invalid files, legacy fragments, the page."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from condorkit.wrappers import ckjob

import condorkit.report.aggregate as agg
from condorkit.errors import ResultsError
from condorkit.report.aggregate import AggregateReport, aggregate
from condorkit.report.chart import json_for_script, nice_axis


def lum(row: int) -> float:
    return round(0.05 + (row * 37 % 90) / 100, 6)


def year(row: int) -> int:
    return 1860 + row * 7 % 156  # 1860..2015


def write_chunk(folder: Path, start: int, count: int, *, errors: tuple[int, ...] = (),
                value: Any = None, urls: dict[int, str] | None = None,
                name: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for row in range(start, start + count):
        url = (urls or {}).get(row, f"http://example.invalid/p/{row}.jpg")
        rec: dict[str, Any] = {"row": row, "url": url, "year": year(row)}
        if row in errors:
            rec["error"] = f"HTTPError: 404 for row {row}"
        else:
            rec["luminance"] = lum(row) if value is None else value(row)
        records.append(rec)
    doc = ckjob.make_results({"start": start, "count": count, "key": "k"}, records,
                             1_700_000_000.0, 1.0, "luminance.py")
    path = folder / (name or f"results-{start}.json")
    ckjob.write_results(str(path), doc)
    return path


class PageParser(HTMLParser):
    """Collects every <script> element (attributes and text) and the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._in_script: dict[str, str | None] | None = None
        self._buf: list[str] = []
        self.text: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if d.get("id"):
            self.ids.append(str(d["id"]))
        if tag == "script":
            self._in_script, self._buf = d, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._buf)))
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._buf.append(data)
        else:
            self.text.append(data)


def parse_page(path: Path) -> tuple[PageParser, dict[str, Any]]:
    p = PageParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    blocks = [t for a, t in p.scripts if a.get("id") == "ck-data"]
    assert len(blocks) == 1
    return p, json.loads(blocks[0])


def test_coverage_counts_and_missing_tail(tmp_path: Path) -> None:
    res = tmp_path / "results"
    for start in (1, 201, 401):
        write_chunk(res, start, 200, errors=(start + 3, start + 4))
    out = tmp_path / "scatter.html"
    rep = aggregate([res], expected_rows=650, out_html=out)
    assert (rep.expected, rep.found, rep.errors) == (650, 594, 6)
    assert (rep.missing, rep.missing_count) == ("601-650", 50)
    assert rep.found + rep.errors + rep.missing_count == rep.expected
    assert not rep.complete and rep.duplicates == 0 and rep.invalid_files == ()
    assert rep.points == 594 and not rep.density_mode and rep.html == out
    assert [e[0] for e in rep.error_samples] == [4, 5, 204, 205, 404, 405]
    assert rep.error_samples[0] == (4, "http://example.invalid/p/4.jpg",
                                    "HTTPError: 404 for row 4")
    _, data = parse_page(out)
    assert data["mode"] == "points" and len(data["points"]) == 594
    assert sorted(p[2] for p in data["points"]) == [
        r for r in range(1, 601) if r % 200 not in (4, 5)]
    assert all(p[1] == lum(p[2]) and p[0] == year(p[2]) for p in data["points"])


def test_missing_ranges_are_compact(tmp_path: Path) -> None:
    write_chunk(tmp_path, 201, 200)
    write_chunk(tmp_path, 577, 224)
    rep = aggregate([tmp_path], expected_rows=800, out_html=tmp_path / "s.html")
    assert rep.missing == "1-200, 401-576"
    assert rep.missing_count == 376 and rep.found == 424


def test_many_missing_ranges_are_cut_short(tmp_path: Path) -> None:
    for start in range(1, 400, 4):  # rows 1, 5, 9, ... present: 99 gaps
        write_chunk(tmp_path, start, 1)
    rep = aggregate([tmp_path], expected_rows=400, out_html=tmp_path / "s.html")
    assert rep.missing.startswith("2-4, 6-8, ")
    assert rep.missing.endswith(f"({100 - agg.MISSING_RANGES_SHOWN} more ranges)")
    assert rep.missing_count == 300


def test_duplicates_count_once(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_chunk(a, 1, 100)
    write_chunk(a, 101, 100)
    shutil.copytree(a, b)  # e.g. a speculative copy of every job
    write_chunk(b, 201, 50)
    rep = aggregate([a, b], expected_rows=250, out_html=tmp_path / "s.html")
    assert (rep.found, rep.duplicates, rep.conflicts, rep.missing_count) == (250, 200, 0, 0)
    assert rep.complete
    _, data = parse_page(tmp_path / "s.html")
    assert len(data["points"]) == 250


def test_disagreeing_copies_keep_the_first_and_are_recorded(tmp_path: Path) -> None:
    first = write_chunk(tmp_path / "a", 1, 10)
    second = write_chunk(tmp_path / "b", 1, 10, value=lambda r: 0.5 if r == 7 else lum(r))
    rep = aggregate([first, second], expected_rows=10, out_html=tmp_path / "s.html")
    assert (rep.found, rep.duplicates, rep.conflicts) == (10, 10, 1)
    row, kept, other, path = rep.conflict_samples[0]
    assert (row, kept, other, path) == (7, f"{year(7)}, {lum(7):g}", f"{year(7)}, 0.5",
                                        str(second))
    _, data = parse_page(tmp_path / "s.html")
    assert [p[1] for p in data["points"] if p[2] == 7] == [lum(7)]


def test_a_retry_value_replaces_an_earlier_error(tmp_path: Path) -> None:
    failed = write_chunk(tmp_path / "try1", 1, 5, errors=(2, 3))
    retry = write_chunk(tmp_path / "try2", 1, 5, errors=(3,))
    rep = aggregate([failed, retry], expected_rows=5, out_html=tmp_path / "s.html")
    assert (rep.found, rep.errors, rep.duplicates) == (4, 1, 5)
    assert [e[0] for e in rep.error_samples] == [3]
    # and the other way round: a later error never hides an earlier value
    rep = aggregate([retry, failed], expected_rows=5, out_html=tmp_path / "s.html")
    assert (rep.found, rep.errors) == (4, 1)


def test_truncated_and_hand_edited_files_are_excluded(tmp_path: Path) -> None:
    write_chunk(tmp_path, 1, 100)
    cut = write_chunk(tmp_path, 101, 100)
    cut.write_bytes(cut.read_bytes()[:-300])
    edited = write_chunk(tmp_path, 201, 100)
    doc = json.loads(edited.read_text())
    doc["records"][0]["luminance"] = 0.9999
    edited.write_text(json.dumps(doc))
    rep = aggregate([tmp_path], expected_rows=300, out_html=tmp_path / "s.html")
    assert rep.found == 100
    assert rep.missing == "101-300" and rep.missing_count == 200
    problems = dict(rep.invalid_files)
    assert "truncated" in problems[str(cut)]
    assert "digest mismatch" in problems[str(edited)]
    assert dict(rep.to_dict()["invalid_files"]) == problems  # (path, problem) pairs
    parser, data = parse_page(tmp_path / "s.html")
    assert len(data["points"]) == 100
    assert "ck-invalid" in parser.ids and "ck-missing" in parser.ids


def test_legacy_fragments_aggregate_with_new_files(tmp_path: Path) -> None:
    (tmp_path / "results-0.json").write_text(
        "/* Running on host: worker7 */\n[1880, 0.525493],\n[1919, 0.416121],\n"
        "/* 2 photos analyzed in 0.50s (0.25/s) */\n")
    (tmp_path / "results-2.json").write_text("[2015, 0.3],\n")  # no trailer: stopped early
    write_chunk(tmp_path, 5, 2)
    rep = aggregate([tmp_path], expected_rows=6, out_html=tmp_path / "s.html")
    assert (rep.found, rep.missing) == (4, "3-4")
    assert len(rep.invalid_files) == 1 and "stopped early" in rep.invalid_files[0][1]
    _, data = parse_page(tmp_path / "s.html")
    assert [p[:3] for p in data["points"][:2]] == [[1880, 0.525493, 1], [1919, 0.416121, 2]]


def test_expected_defaults_to_highest_row_seen(tmp_path: Path) -> None:
    write_chunk(tmp_path, 11, 5)
    rep = aggregate([tmp_path], expected_rows=None, out_html=tmp_path / "s.html")
    assert (rep.expected, rep.expected_given, rep.missing) == (15, False, "1-10")


def test_rows_beyond_expected_are_ignored(tmp_path: Path) -> None:
    write_chunk(tmp_path, 1, 10)
    rep = aggregate([tmp_path], expected_rows=8, out_html=tmp_path / "s.html")
    assert (rep.found, rep.out_of_range, rep.missing_count) == (8, 2, 0)


def test_no_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no results files"):
        aggregate([tmp_path], expected_rows=5, out_html=tmp_path / "s.html")


def test_records_without_a_number_are_results_not_on_the_chart(tmp_path: Path) -> None:
    write_chunk(tmp_path, 1, 3, value=lambda r: "bright" if r == 2 else lum(r))
    rep = aggregate([tmp_path], expected_rows=3, out_html=tmp_path / "s.html",
                    x_field="year", y_field="luminance")
    assert (rep.found, rep.errors, rep.points, rep.uncharted) == (3, 0, 2, 1)
    assert "1 result(s) have no numeric 'year' and 'luminance'" in rep.chart_note
    assert rep.complete


@pytest.mark.parametrize("reverse", [False, True])
def test_odd_values_and_record_order(tmp_path: Path, reverse: bool) -> None:
    path = write_chunk(tmp_path, 1, 6)
    doc = json.loads(path.read_text())
    doc["records"][1]["luminance"] = True  # a boolean is not a number here
    doc["records"][2]["luminance"] = 10**400  # valid JSON, too large for a float
    doc["records"][3]["year"] = None
    if reverse:
        doc["records"].reverse()  # any order is fine
    doc["digest"] = ckjob.results_digest(doc)
    ckjob.write_results(str(path), doc)
    rep = aggregate([tmp_path], expected_rows=6, out_html=tmp_path / "s.html",
                    x_field="year", y_field="luminance")
    # results all, but only three can be drawn; none is an error of the program
    assert (rep.found, rep.errors, rep.missing_count) == (6, 0, 0)
    assert (rep.points, rep.uncharted) == (3, 3)
    _, data = parse_page(tmp_path / "s.html")
    assert [p[2] for p in data["points"]] == [1, 5, 6]
    assert all(p[1] == lum(p[2]) for p in data["points"])


def test_axes_cover_every_point(tmp_path: Path) -> None:
    years = {1: 1865, 2: 2001, 3: 2015}
    path = write_chunk(tmp_path, 1, 3)
    doc = json.loads(path.read_text())
    for rec in doc["records"]:
        rec["year"] = years[rec["row"]]
    doc["digest"] = ckjob.results_digest(doc)
    ckjob.write_results(str(path), doc)
    aggregate([tmp_path], expected_rows=3, out_html=tmp_path / "s.html")
    _, data = parse_page(tmp_path / "s.html")
    ax, ay = data["axes"]["x"], data["axes"]["y"]
    assert ax["min"] < 1865 and ax["max"] > 2015
    assert all(ay["min"] < p[1] < ay["max"] for p in data["points"])
    assert ax["ticks"] == sorted(ax["ticks"]) and all(float(t).is_integer() for t in ax["ticks"])


@pytest.mark.parametrize("lo, hi, integer", [
    (1860, 2015, True), (0.142, 0.525, False), (5, 5, True), (0.3, 0.3, False),
    (-3.5, 1e6, False), (2001, 2001, True)])
def test_nice_axis(lo: float, hi: float, integer: bool) -> None:
    a = nice_axis(lo, hi, integer=integer)
    assert a["min"] < lo and a["max"] > hi
    assert a["ticks"][0] == a["min"] and a["ticks"][-1] == a["max"]
    assert 2 <= len(a["ticks"]) <= 12


def test_density_mode_above_threshold(tmp_path: Path) -> None:
    write_chunk(tmp_path, 1, 300, errors=(9,))
    out = tmp_path / "s.html"
    rep = aggregate([tmp_path], expected_rows=300, out_html=out, density_threshold=100)
    assert rep.density_mode and rep.points == 299
    parser, data = parse_page(out)
    assert data["mode"] == "density" and "points" not in data
    bins = data["bins"]
    assert sum(c[2] for c in bins["cells"]) == 299
    assert bins["max"] == max(c[2] for c in bins["cells"])
    assert all(0 <= c[0] < bins["nx"] and 0 <= c[1] < bins["ny"] for c in bins["cells"])
    assert "ck-density" in parser.ids
    assert "Density view: 299 points" in "".join(parser.text)
    # every point falls in the cell it was counted in
    for row in (1, 2, 150, 300):
        ix = int((year(row) - bins["x0"]) / bins["dx"])
        iy = int((lum(row) - bins["y0"]) / bins["dy"])
        assert any(c[0] == ix and c[1] == iy for c in bins["cells"])


NASTY = '</script><script>alert(1)</script> "quoted" \'single\' & amp; \u2028line\u2029sep <!--'


def test_injection_is_escaped_and_round_trips(tmp_path: Path) -> None:
    urls = {1: "http://example.invalid/a.jpg?q=" + NASTY, 2: "file:///tmp/" + NASTY}
    path = write_chunk(tmp_path, 1, 3, errors=(2,), urls=urls)
    doc = json.loads(path.read_text())
    doc["records"][1]["error"] = "ValueError: " + NASTY
    doc["digest"] = ckjob.results_digest(doc)
    ckjob.write_results(str(path), doc)
    out = tmp_path / "s.html"
    title = "Luminance </title><script>alert(2)</script> & more"
    aggregate([tmp_path], expected_rows=3, out_html=out, title=title)
    raw = out.read_text(encoding="utf-8")
    assert "<script>alert" not in raw
    assert "\u2028" not in raw and "\u2029" not in raw
    parser, data = parse_page(out)
    # exactly the two scripts the page ships: the data block and the footer's drawing code
    assert [a.get("id") or a.get("type") for a, _ in parser.scripts] == ["ck-data", None]
    assert parser.scripts[0][0].get("type") == "application/json"
    assert "alert" not in parser.scripts[1][1]
    # the JSON round-trips exactly
    assert data["points"][0][3] == urls[1]
    assert data["errors"] == [[2, urls[2], "ValueError: " + NASTY]]
    assert data["title"] == title
    # and the visible tables show the values as text
    text = "".join(parser.text)
    assert urls[2] in text and "ValueError: " + NASTY in text and title in text


def test_json_for_script_escapes() -> None:
    value = {"k": "</script>&<!--\u2028\u2029"}
    text = json_for_script(value)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == value


def test_report_to_dict_is_json(tmp_path: Path) -> None:
    write_chunk(tmp_path, 1, 4, errors=(2,))
    rep = aggregate([tmp_path], expected_rows=5, out_html=tmp_path / "s.html")
    assert set(rep.to_dict()) == {f for f in AggregateReport.__dataclass_fields__} | {"complete"}
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["expected"] == 5 and d["found"] == 3 and d["errors"] == 1
    assert d["missing"] == "5" and d["complete"] is False
    assert d["error_samples"] == [[2, "http://example.invalid/p/2.jpg", "HTTPError: 404 for row 2"]]
    assert d["html"].endswith("s.html") and d["invalid_files"] == []
    with pytest.raises(AttributeError):
        rep.found = 7  # type: ignore[misc]
    assert rep.found == 3  # the report is frozen: the failed assignment changed nothing


def test_worker_processes_give_the_same_report(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    res = tmp_path / "results"
    for start in range(1, 241, 8):
        write_chunk(res, start, 8, errors=(start + 1,))
    bad = write_chunk(res, 241, 8)
    bad.write_text("{")
    dup = write_chunk(tmp_path / "dup", 1, 8, value=lambda r: 0.123)
    monkeypatch.setattr(agg, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setattr(agg, "BATCH_FILES", 3)
    reports = []
    for workers in (1, 2):
        out = tmp_path / f"s{workers}.html"
        rep = aggregate([res, dup], expected_rows=260, out_html=out, workers=workers)
        reports.append((rep.to_dict() | {"html": None}, parse_page(out)[1]))
    assert reports[0] == reports[1]
    d = reports[0][0]
    assert (d["found"], d["errors"], d["conflicts"], d["missing"]) == (211, 29, 7, "241-260")


def _write_generic(folder: Path, start: int, recs: list[dict[str, object]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"format": "condorkit-results/1", "start": start, "count": len(recs),
           "records": [{"row": start + i, **r} for i, r in enumerate(recs)]}
    doc["digest"] = ckjob.results_digest(doc)
    ckjob.write_results(str(folder / f"results-{start}.json"), doc)


def test_a_program_without_chart_columns_gets_coverage_and_a_table(tmp_path: Path) -> None:
    res = tmp_path / "results"
    _write_generic(res, 1, [{"url": f"u{i}", "size": "big"} for i in range(3)])
    rep = aggregate([res], expected_rows=3, out_html=tmp_path / "s.html")
    assert (rep.found, rep.errors, rep.points, rep.missing_count) == (3, 0, 0, 0)
    assert rep.x_field == "" and rep.chart_note.startswith("nothing to chart")
    assert "fields: url, size" in rep.chart_note
    page, data = parse_page(tmp_path / "s.html")
    assert data["points"] == [] and len(data["sample"]) == 3
    assert "ck-results" in (tmp_path / "s.html").read_text()


def test_the_first_two_numeric_fields_are_charted_or_the_chosen_ones(tmp_path: Path) -> None:
    res = tmp_path / "results"
    _write_generic(res, 1, [{"name": "a", "size": 3, "ms": 1.5, "flag": True},
                            {"name": "b", "size": 4, "ms": 2.5, "flag": False}])
    rep = aggregate([res], expected_rows=2, out_html=tmp_path / "s.html")
    assert (rep.x_field, rep.y_field, rep.points) == ("size", "ms", 2)
    _, data = parse_page(tmp_path / "s.html")
    assert [p[:4] for p in data["points"]] == [[3, 1.5, 1, "a"], [4, 2.5, 2, "b"]]
    rep = aggregate([res], expected_rows=2, out_html=tmp_path / "s.html", x_field="ms",
                    y_field="size")
    assert (rep.x_field, rep.y_field) == ("ms", "size")
