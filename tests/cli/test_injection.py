"""Injection: hostile manifest values, folder names, file names and options change nothing in
the submit file (parsed back with HTCondor), in the shell the wrapper runs (canary files that
must not appear), or in scatter.html (parsed back: the data round-trips, no extra element).
A value that cannot be written safely is refused with a clear error instead."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from support.robust import (
    PROGRAM,
    aggregate_job,
    assert_nothing_lost,
    cli,
    dry_run_records,
    make_job,
    read_page,
    run_job,
    tally,
    unescape,
)

from condorkit.condor.submit import _htcondor, expand_item, parse_items
from condorkit.demo import write_corpus


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """$CANARY must never be created; $CANARY_DIR must never be removed. Both are in the
    environment every wrapper and program inherits, so any evaluated string can reach them."""
    made = tmp_path / "canary-made"
    kept = tmp_path / "canary-dir"
    kept.mkdir()
    (kept / "keep").write_text("x")
    monkeypatch.setenv("CANARY", str(made))
    monkeypatch.setenv("CANARY_DIR", str(kept))
    return made, kept


def assert_canary_untouched(canary: tuple[Path, Path]) -> None:
    made, kept = canary
    assert not made.exists(), "an injected command ran"
    assert (kept / "keep").is_file(), "an injected rm ran"


# manifest values: one whitespace-free token each (the manifest splits on whitespace)
HOSTILE_VALUES = [
    "queue",
    "queue\\",
    "$(touch${IFS}$CANARY)",
    "`touch${IFS}$CANARY`",
    "';touch${IFS}$CANARY;'",
    '";touch${IFS}$CANARY;"',
    ";rm${IFS}-rf${IFS}$CANARY_DIR;",
    "&&rm${IFS}-rf${IFS}$CANARY_DIR",
    "|touch${IFS}$CANARY",
    "$(DOLLAR)$$(start)$(start)$(count)",
    "http://h/x.jpg?$(touch${IFS}$CANARY)&a=`id`",
    "</script><script>alert(1)</script>",
    "<!--<script>",
    "]]></script>",
    "&lt;script&gt;",
    "\\u2028\\u003c/script\\u003e",
    "${IFS}",
    "-b",
]


def test_hostile_manifest_values_change_nothing(tmp_path: Path, canary: tuple[Path, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Same row count, benign vs hostile manifest: the submit files differ only in the
    manifest-hash tag; the run records each hostile row as an error; no command ran."""
    n = len(HOSTILE_VALUES)
    tally("input", n, "hostile manifest values")
    tally("fault", n, "injection attempts in manifest values")
    benign = make_job(tmp_path / "a" / "job", [f"/nope/benign{i}.jpg {1900 + i}" for i in range(n)])
    hostile = make_job(tmp_path / "b" / "job", [f"{v} {1900 + i}"
                                                for i, v in enumerate(HOSTILE_VALUES)])
    subs = []
    for job in (benign, hostile):
        res = cli(capsys, "mksubmit", "-C", str(job), "4")
        assert res.code == 0, res.err
        subs.append(res.out.replace(str(job.parent), "FOLDER"))
    diff = [(a, b) for a, b in zip(subs[0].splitlines(), subs[1].splitlines(), strict=True)
            if a != b]
    assert [a.split("=")[0].strip() for a, _ in diff] == ["My.CondorkitJob"], diff
    assert [(i["start"], i["count"]) for i in parse_items(subs[1])] == [
        (str(s), str(min(4, n - s + 1))) for s in range(1, n + 1, 4)]

    res = run_job(capsys, hostile)
    assert res.code == 0, res.err
    recs = assert_nothing_lost(hostile, [(v, 1900 + i) for i, v in enumerate(HOSTILE_VALUES)])
    assert all("error" in r for r in recs.values())  # none of these is an existing file
    assert_canary_untouched(canary)


def _nasty_page_rows(root: Path) -> list[tuple[str, int]]:
    """Existing image files whose plain paths carry HTML, script end tags and entities (a path
    component can hold anything but '/'), plus URLs that fail with them in the reason."""
    src = write_corpus(root / "src", 2, sizes=((40, 30),), seed=4, variants=("rgb",))
    names = ["a</script><script>alert(1)</script>b.jpg", "<!--x--><b>bold</b>.jpg",
             "&amp;&lt;\"q\"'s.jpg", "</SCRIPT/>x.jpg", "\u2603</script\u200b>.jpg"]
    rows = []
    for i, name in enumerate(names):
        p = root / "w" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src[i % 2].path, p)
        rows.append((str(p), 1950 + i))
    rows += [(str(root / "w" / "missing</script><b>x</b>.jpg"), 1990),
             ("http://127.0.0.1:1/</script><script>alert(2)</script>", 1991),
             ("&#x3C;/script&#x3E;", 1992)]
    return rows


def test_scatter_html_data_round_trips_and_gains_no_element(
        tmp_path: Path, canary: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    nasty = _nasty_page_rows(tmp_path / "n")
    tally("input", len(nasty), "HTML-hostile values")
    tally("fault", len(nasty), "HTML injection attempts")
    src = write_corpus(tmp_path / "plain", 5, sizes=((40, 30),), seed=4, variants=("rgb",))
    plain = [(str(f.path), 1950 + i) for i, f in enumerate(src)] + [
        (str(tmp_path / "missing.jpg"), 1990), ("http://127.0.0.1:1/x", 1991), ("nothing", 1992)]
    pages = []
    for name, rows in (("plain", plain), ("nasty", nasty)):
        job = make_job(tmp_path / name / "job", [f"{u} {y}" for u, y in rows], chunk=3)
        assert run_job(capsys, job).code == 0
        recs = assert_nothing_lost(job, rows)
        agg, report = aggregate_job(capsys, job)
        assert agg.code == 0 and report["found"] == 5 and report["errors"] == 3
        page = read_page(job / "scatter.html")
        pages.append(page)
        # the data block round-trips exactly: labels and reasons are the manifest's strings
        assert {p[2]: p[3] for p in page.data["points"]} == {
            n: rows[n - 1][0] for n, r in recs.items() if "luminance" in r}
        assert {e[0]: (e[1], e[2]) for e in page.data["errors"]} == {
            n: (r["url"], r["error"]) for n, r in recs.items() if "error" in r}
        # the error table shows the inputs as text
        for r in recs.values():
            if "error" in r:
                assert r["url"] in page.cells and r["error"] in page.cells
    plain_page, nasty_page = pages
    assert nasty_page.tags == plain_page.tags, "an element was injected"
    assert [a for a, _ in nasty_page.scripts] == [a for a, _ in plain_page.scripts]
    assert [body for a, body in nasty_page.scripts if a.get("id") != "ck-data"] == [
        body for a, body in plain_page.scripts if a.get("id") != "ck-data"]
    assert len(re.findall(r"(?i)<script", nasty_page.text)) == len(
        re.findall(r"(?i)<script", plain_page.text))
    assert_canary_untouched(canary)


def test_invalid_results_file_in_a_hostile_folder_is_listed_as_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The invalid-files list shows paths: a folder named like markup stays text."""
    src = write_corpus(tmp_path / "img", 2, sizes=((40, 30),), seed=4, variants=("rgb",))
    rows = [(str(f.path), 2000) for f in src]
    job = make_job(tmp_path / "<script>alert(3)<" / "job", [f"{u} {y}" for u, y in rows], chunk=1)
    tally("input", 1, "folder named like markup")
    tally("fault", 1, "markup in a results path")
    assert run_job(capsys, job).code == 0
    (job / "results" / "results-2.json").write_text('{"format": "condorkit-results/1", "x": 1}')
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 5 and report["missing"] == "2"
    page = read_page(job / "scatter.html")
    assert page.tags["script"] == sum(1 for _ in page.scripts)
    assert "<script>alert(3)<" not in page.text
    assert str(job / "results" / "results-2.json") in unescape(page.text)


# ----------------------------------------------------------------------------- paths and names

FOLDER_NAMES = [
    "q queue x",
    "$(touch $CANARY)",
    "`touch $CANARY`",
    "a;touch $CANARY;b",
    "; rm -rf $CANARY_DIR",
    "it's \"q\" 'x'",
    "<script>alert(1)<",
    "tab\there",
    "фото ✓ ünï",
    "$(DOLLAR)x",  # refused: cannot be written literally
    "$$(Memory)",  # refused
    "line\nqueue 5",  # refused: a submit value cannot hold a line break
    "ends\\",  # refused: a line continuation
    "trailing ",  # refused: the submit language strips it
]
REFUSED = {"$(DOLLAR)x": "DOLLAR", "$$(Memory)": "DOLLAR", "line\nqueue 5": "line break",
           "ends\\": "backslash", "trailing ": "white space"}


@pytest.mark.parametrize("name", FOLDER_NAMES, ids=lambda n: repr(n)[1:-1][:20])
def test_hostile_job_folder_names(tmp_path: Path, name: str, canary: tuple[Path, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = write_corpus(tmp_path / "img", 3, sizes=((40, 30),), seed=6, variants=("rgb",))
    rows = [(str(f.path), f.year) for f in src]
    job = make_job(tmp_path / name, [f"{u} {y}" for u, y in rows], chunk=2)
    tally("input", 1, f"job folder {name!r}")
    tally("fault", 1, "injection attempt in a folder name")
    res = cli(capsys, "mksubmit", "-C", str(job))
    if name in REFUSED:
        assert res.code == 4 and res.out == "" and REFUSED[name] in res.err, res
        assert "Traceback" not in res.err
        assert_canary_untouched(canary)
        return
    assert res.code == 0, res.err
    items = parse_items(res.out)
    assert [(i["start"], i["count"]) for i in items] == [("1", "2"), ("3", "1")]
    for item in items:
        ex = expand_item(res.out, item)
        s = item["start"]
        assert ex.initialdir == str(job)
        assert ex.executable == str(job / ".condorkit" / "wrapper.sh")
        assert ex.arguments == ("luminance.py", f"rows-{s}.jsonl", f"results-{s}.json")
        assert ex.transfer_input_files == ("luminance.py", ".condorkit/ckjob.py",
                                           f"chunks/rows-{s}.jsonl")
    sub = _htcondor().Submit(res.out)
    assert sub["log"] == "logs/condorkit.log" and sub["universe"] == "vanilla"
    # the wrapper runs exactly as the submit file says (in a scratch folder below the job's)
    recs = dry_run_records(capsys, job, 1)
    assert [(r["url"], r["year"]) for r in recs] == rows[2:] and "luminance" in recs[0]
    assert_canary_untouched(canary)


PROGRAM_NAMES = [
    "lum;touch${IFS}$CANARY;.py",
    "$(touch${IFS}$CANARY).py",
    "`touch${IFS}$CANARY`.py",
    "lum'\"q.py",  # refused: quotes cannot be in an HTCondor file list
    "lum queue.py",  # refused: spaces neither
    "lum,x.py",  # refused: commas neither
    "<script>.py",
    "-b.py",  # refused: a leading '-' would read as an option (the wrapper's -b)
]
PROGRAM_REFUSED = {"lum'\"q.py", "lum queue.py", "lum,x.py"}


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_hostile_program_and_input_file_names(tmp_path: Path, name: str,
                                              canary: tuple[Path, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    src = write_corpus(tmp_path / "img", 2, sizes=((40, 30),), seed=6, variants=("rgb",))
    rows = [(str(f.path), f.year) for f in src]
    job = make_job(tmp_path / "job", [f"{u} {y}" for u, y in rows], chunk=1)
    shutil.copy(PROGRAM, job / name)
    extra = "x" + name.replace(".py", ".dat")
    (job / extra).write_text("data")
    (job / "condorkit.toml").write_text("chunk = 1\n")
    tally("input", 1, f"program name {name!r}")
    tally("fault", 1, "injection attempt in a file name")
    args = [f"--program={name}", f"--input={extra}"]
    res = cli(capsys, "mksubmit", "-C", str(job), *args)
    if name in PROGRAM_REFUSED:
        assert res.code == 4 and res.out == "" and "file list" in res.err, res
        return
    if name.startswith("-"):
        assert res.code == 2 and res.out == "" and "starts with '-'" in res.err, res
        return
    assert res.code == 0, res.err
    ex = expand_item(res.out, parse_items(res.out)[1])
    assert ex.arguments == (name, "rows-2.jsonl", "results-2.json")
    assert ex.transfer_input_files == (name, ".condorkit/ckjob.py", "chunks/rows-2.jsonl", extra)
    recs = dry_run_records(capsys, job, 1, *args)
    assert [(r["url"], r["year"]) for r in recs] == rows[1:] and "luminance" in recs[0]
    assert_canary_untouched(canary)


@pytest.mark.parametrize("option, value, code, expect", [
    ("CONDORKIT_REQUIREMENTS", 'Memory > 1\nqueue 100', 4, "line break"),
    ("CONDORKIT_REQUIREMENTS", 'OpSys == "LINUX', 4, "unbalanced"),
    ("CONDORKIT_REQUEST_MEMORY", "1GB\nqueue 100", 2, "not a size"),
    ("CONDORKIT_REQUEST_DISK", "$(touch x)", 2, "not a size"),
    ("CONDORKIT_LOG_DIR", "logs;rm -rf x", 2, "simple relative folder"),
    ("CONDORKIT_LOG_DIR", "../../etc", 2, "simple relative folder"),
    ("CONDORKIT_TEMPLATE", "../x.j2", 2, "not a template name"),
    ("CONDORKIT_CHUNK", "3; queue", 2, "cannot use"),
])
def test_hostile_option_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], option: str,
                                           value: str, code: int, expect: str) -> None:
    job = make_job(tmp_path / "job", ["/x/a.jpg 1999"])
    monkeypatch.setenv(option, value)
    tally("input", 1, f"{option}={value!r}")
    tally("fault", 1, "injection attempt in an option")
    res = cli(capsys, "mksubmit", "-C", str(job))
    assert res.code == code and res.out == "" and expect in res.err, res


@pytest.mark.parametrize("expr", ['Machine != "queue 5"', 'Name =!= "$(touch x)"',
                                  'regexp("`id`;rm", Name)'])
def test_requirements_stay_one_literal_expression(tmp_path: Path, expr: str,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", [f"/x/{i}.jpg 1999" for i in range(5)])
    monkeypatch.setenv("CONDORKIT_REQUIREMENTS", expr)
    tally("input", 1, f"requirements {expr!r}")
    res = cli(capsys, "mksubmit", "-C", str(job), "2")
    assert res.code == 0, res.err
    assert _htcondor().Submit(res.out)["requirements"] == expr.replace("$", "$(DOLLAR)")
    assert _htcondor().Submit(res.out).expand("requirements") == expr
    assert len(parse_items(res.out)) == 3


def test_environment_of_the_test_is_clean() -> None:
    assert "CANARY" not in os.environ or not Path(os.environ["CANARY"]).exists()
