"""Helpers for the robustness suite (tests/cli/test_run_*.py, test_injection.py, ...): build a
photodemo job folder, drive it through the public CLI (``condorkit run`` / ``aggregate`` /
``mksubmit`` / ``dry-run``), and check the promise "every manifest row ends as a value or as a
recorded error with its reason" by reading the written artefacts back (results files, scatter.html).

``tally(kind, n)`` counts inputs tried, faults injected and rows checked: when the environment
variable ``CONDORKIT_ROBUST_TALLY`` names a file, one JSON line per call is appended to it (the
figures in docs/failure-modes.md come from a run with it set). Otherwise it does nothing.
"""

from __future__ import annotations

import html
import html.parser
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from condorkit.cli import main
from condorkit.model.results import load_results

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "examples" / "photodemo" / "luminance.py"
TALLY_ENV = "CONDORKIT_ROBUST_TALLY"


def tally(kind: str, n: int = 1, what: str = "") -> None:
    """Record ``n`` of ``kind`` ("input", "fault", "rows_checked", "rows_lost")."""
    path = os.environ.get(TALLY_ENV)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"kind": kind, "n": n, "what": what, "test": test}) + "\n")


# ----------------------------------------------------------------------------- job folders


def make_job(folder: Path, manifest: str | bytes | Sequence[str], *, chunk: int = 4,
             program: Path = PROGRAM, toml: str = "") -> Path:
    """A photodemo job folder: the packaged luminance.py, ``manifest.txt`` and condorkit.toml.

    ``manifest`` as bytes is written verbatim; a list of lines gets a "\\n" after each.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(program, folder / program.name)
    if isinstance(manifest, bytes):
        data = manifest
    elif isinstance(manifest, str):
        data = manifest.encode("utf-8")
    else:
        data = "".join(f"{line}\n" for line in manifest).encode("utf-8")
    (folder / "manifest.txt").write_bytes(data)
    (folder / "condorkit.toml").write_text(
        f'program = "{program.name}"\nchunk = {chunk}\n' + toml, encoding="utf-8")
    return folder


@dataclass(frozen=True)
class Cli:
    """One ``condorkit`` command run in-process: exit code, stdout, stderr."""

    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Cli:
    """Run ``condorkit ARGV`` through the public entry point and capture its output."""
    capsys.readouterr()
    code = main(list(argv))
    cap = capsys.readouterr()
    return Cli(code, cap.out, cap.err)


def run_job(capsys: pytest.CaptureFixture[str], job: Path, *extra: str) -> Cli:
    return cli(capsys, "run", "-C", str(job), "-j", "2", *extra)


def aggregate_job(capsys: pytest.CaptureFixture[str], job: Path, *extra: str,
                  html: Path | None = None) -> tuple[Cli, dict[str, Any]]:
    """``condorkit aggregate --json``; returns the result and the parsed JSON report."""
    html = html or job / "scatter.html"
    res = cli(capsys, "aggregate", "-C", str(job), "-o", str(html), "--json", *extra)
    report = json.loads(res.out) if res.out.strip() else {}
    return res, report


# ----------------------------------------------------------------------------- the promise


def results_by_row(job: Path, results_dir: str = "results") -> dict[int, dict[str, Any]]:
    """Every record of every results file of the job, by row. Every file must be valid and no
    row may appear twice."""
    by_row: dict[int, dict[str, Any]] = {}
    for path in sorted((job / results_dir).glob("results-*.json")):
        rf = load_results(path)
        assert rf.valid, f"{path}: {rf.problems}"
        for rec in rf.records:
            assert rec["row"] not in by_row, f"row {rec['row']} twice (again in {path})"
            by_row[rec["row"]] = dict(rec)
    return by_row


def outcome(rec: Mapping[str, Any]) -> str:
    """"value" or "error"; fails unless the record holds exactly one of them, well formed."""
    has_value, has_error = "luminance" in rec, "error" in rec
    assert has_value != has_error, f"row {rec.get('row')}: needs a value XOR an error: {rec}"
    if has_value:
        v = rec["luminance"]
        assert isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0, rec
        return "value"
    assert isinstance(rec["error"], str) and rec["error"].strip(), rec
    return "error"


def assert_nothing_lost(job: Path, expected: Sequence[tuple[str, int]],
                        results_dir: str = "results") -> dict[int, dict[str, Any]]:
    """Rows in == rows out: row n (1-based) of ``expected`` (url, year) has exactly one record
    with the same url and year and either a value or an error. Returns the records by row."""
    by_row = results_by_row(job, results_dir)
    lost = sorted(set(range(1, len(expected) + 1)) - set(by_row))
    extra = sorted(set(by_row) - set(range(1, len(expected) + 1)))
    tally("rows_checked", len(expected))
    tally("rows_lost", len(lost))
    assert not lost and not extra, f"rows lost {lost[:20]}, rows invented {extra[:20]}"
    for n, (url, year) in enumerate(expected, start=1):
        rec = by_row[n]
        assert (rec["url"], rec["year"]) == (url, year), f"row {n}: {rec} is not {url} {year}"
        outcome(rec)
    return by_row


def assert_report_complete(report: Mapping[str, Any], rows: int, errors: int) -> None:
    """The aggregate report counts every row once: values + errors == rows, nothing missing."""
    assert report["expected"] == rows
    assert report["found"] + report["errors"] == rows, report
    assert report["errors"] == errors, report
    assert report["missing_count"] == 0 and report["complete"], report


# ----------------------------------------------------------------------------- scatter.html


@dataclass(frozen=True)
class Page:
    """scatter.html read back: every <script> element (attributes, text) and the data block."""

    text: str
    scripts: tuple[tuple[dict[str, str | None], str], ...]
    data: dict[str, Any]
    element_ids: tuple[str, ...]
    tags: Counter[str]  # start tags by name: an injected element would change the counts
    cells: tuple[str, ...]  # the text of every <td>, entities decoded


def read_page(path: Path) -> Page:
    """Parse a written scatter.html with a real HTML tokenizer."""
    parser_mod = html.parser
    scripts: list[tuple[dict[str, str | None], str]] = []
    ids: list[str] = []
    tags: Counter[str] = Counter()
    cells: list[str] = []

    class P(parser_mod.HTMLParser):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.in_script: dict[str, str | None] | None = None
            self.buf: list[str] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            tags[tag] += 1
            if a.get("id"):
                ids.append(str(a["id"]))
            if tag == "script":
                self.in_script, self.buf = a, []
            if tag == "td":
                self.cell = []

        def handle_data(self, data: str) -> None:
            if self.in_script is not None:
                self.buf.append(data)
            if self.cell is not None:
                self.cell.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "script" and self.in_script is not None:
                scripts.append((self.in_script, "".join(self.buf)))
                self.in_script = None
            if tag == "td" and self.cell is not None:
                cells.append("".join(self.cell))
                self.cell = None

    text = path.read_text(encoding="utf-8")
    p = P()
    p.feed(text)
    p.close()
    blocks = [body for attrs, body in scripts if attrs.get("id") == "ck-data"]
    assert len(blocks) == 1, f"{path}: expected one #ck-data block, found {len(blocks)}"
    assert "<" not in blocks[0], "the data block holds a '<' (could end the script early)"
    return Page(text, tuple(scripts), json.loads(blocks[0]), tuple(ids), tags, tuple(cells))


def unescape(text: str) -> str:
    """HTML character references decoded (the standard library's html.unescape)."""
    return str(html.unescape(text))


def dry_run_records(capsys: pytest.CaptureFixture[str], job: Path, index: int,
                    *extra: str) -> list[dict[str, Any]]:
    """``condorkit dry-run --json INDEX``: the chunk runs exactly as the expanded submit file
    says; its results file (in the kept scratch folder) must be valid. Returns its records."""
    res = cli(capsys, "dry-run", "-C", str(job), "--json", str(index), *extra)
    assert res.code == 0, res.err
    info = json.loads(res.out)
    rf = load_results(Path(info["scratch"]) / info["outputs"][0])
    assert rf.valid, rf.problems
    assert [r["row"] for r in rf.records] == list(range(info["start"],
                                                         info["start"] + info["count"]))
    return [dict(r) for r in rf.records]
