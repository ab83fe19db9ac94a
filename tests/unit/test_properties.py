"""Property tests (hypothesis) that fill the gaps left by the existing ones:

- a manifest written in any accepted layout (BOM, CRLF, blank lines, comments, any white space
  between fields) parses back to exactly its rows, numbered from 1, with the right line numbers;
- `mksubmit` puts every row of any manifest into exactly one rows file, in order, values intact,
  for any chunk size and MAX;
- shlex.join + the real wrapper: any file names reach the program unchanged and run nothing;
- aggregation accounting against a simple model: any mix of valid, duplicated, overlapping,
  disagreeing, error-then-value and damaged results files gives found + errors + missing ==
  expected, with exactly the model's missing rows and duplicates.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from condorkit.wrappers import ckjob
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.robust import PROGRAM, REPO, tally

from condorkit.cli import main
from condorkit.model.manifest import Columns, iter_rows
from condorkit.report.aggregate import aggregate

# the tutorial's columns (examples/photodemo/condorkit.toml)
PHOTO = Columns.parse(["url:url", "year:int"])

# a manifest field: no white space (str.split() separators), no control characters
_FIELD_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                             blacklist_characters="\x1c\x1d\x1e\x1f\x85\u2028\u2029")
paths = st.text(_FIELD_CHARS, min_size=1, max_size=12).map(lambda s: "/" + s)
urls = st.text(_FIELD_CHARS, min_size=0, max_size=12).map(lambda s: "http://h/" + s)
years = st.integers(-10**17, 10**17)
rows_st = st.lists(st.tuples(st.one_of(paths, urls), years), min_size=0, max_size=25)
seps = st.sampled_from([" ", "\t", "  ", " \t ", "\t\t"])
pads = st.sampled_from(["", " ", "\t", "  \t"])
fillers = st.sampled_from(["", "   ", "\t", "# a comment", "  # indented comment", "#"])


def _isspace_free(s: str) -> bool:
    return not any(c.isspace() for c in s)


@settings(max_examples=200, deadline=None)
@given(rows=rows_st, bom=st.booleans(), crlf=st.booleans(), final_newline=st.booleans(),
       data=st.data())
def test_any_accepted_layout_parses_back_to_its_rows(rows: list[tuple[str, int]], bom: bool,
                                                      crlf: bool, final_newline: bool,
                                                      data: st.DataObject) -> None:
    rows = [(u, y) for u, y in rows if _isspace_free(u)]
    tally("input", 1, "hypothesis: manifest layout")
    lines: list[str] = []
    want: list[tuple[int, int, tuple[str, int]]] = []
    for u, y in rows:
        for _ in range(data.draw(st.integers(0, 2))):
            lines.append(data.draw(fillers))
        lines.append(f"{data.draw(pads)}{u}{data.draw(seps)}{y}{data.draw(pads)}")
        want.append((len(want) + 1, len(lines), (u, y)))
    text = ("\r\n" if crlf else "\n").join(lines) + (("\r\n" if crlf else "\n")
                                                     if final_newline else "")
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "manifest.txt"
        p.write_bytes(raw)
        got = [(r.row, r.line, r.values) for r in iter_rows(p, PHOTO)]
    assert got == want


def _quiet_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(st.one_of(paths, urls), years), min_size=1, max_size=40),
       chunk=st.integers(1, 12), mx=st.one_of(st.none(), st.integers(1, 50)))
def test_mksubmit_puts_every_row_in_exactly_one_rows_file(rows: list[tuple[str, int]],
                                                          chunk: int, mx: int | None) -> None:
    rows = [(u, y) for u, y in rows if _isspace_free(u)] or [("/a", 1)]
    tally("input", 1, "hypothesis: manifest through mksubmit")
    with tempfile.TemporaryDirectory() as d:
        job = Path(d)
        shutil.copy(PROGRAM, job / "luminance.py")
        (job / "manifest.txt").write_text("".join(f"{u} {y}\n" for u, y in rows),
                                          encoding="utf-8")
        code, out, err = _quiet_main(["mksubmit", "-C", str(job), str(chunk)]
                                     + ([str(mx)] if mx else []))
        assert code == 0, err
        n = len(rows) if mx is None else min(len(rows), mx)
        seen: list[tuple[int, str, int]] = []
        starts = sorted(int(p.name[5:-6]) for p in (job / "chunks").glob("rows-*.jsonl"))
        for s in starts:
            header, recs = ckjob.read_rows(str(job / "chunks" / f"rows-{s}.jsonl"))
            assert header["start"] == s and 1 <= header["count"] <= chunk
            seen += [(r["row"], r["url"], r["year"]) for r in recs]
        assert seen == [(i, u, y) for i, (u, y) in enumerate(rows[:n], start=1)]
        assert out.count("\n") > 0 and f"{n} rows" in err


# file names: anything but '/' and NUL; not '.', '..'; the wrapper's own option '-b' is not a
# program name it can take as its first argument
_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                 min_size=1, max_size=24).filter(
    lambda s: s not in (".", "..", "-b") and len(s.encode()) < 200)

_ECHO_PROGRAM = """#!/bin/sh
# writes its first argument (the rows file name) into its second (the results file name)
printf '%s' "$1" > "$2"
"""


@settings(max_examples=60, deadline=None)
@given(names=st.lists(_names, min_size=3, max_size=3, unique=True).filter(
    lambda n: not n[0].endswith(".py")))  # a .py program would run under python
def test_any_file_names_pass_through_shell_quoting_and_the_wrapper(names: list[str]) -> None:
    program, rows, out = names
    tally("input", 1, "hypothesis: file names through shlex.join and the wrapper")
    tally("fault", 1, "arbitrary file names through a shell")
    wrapper = REPO / "wrappers" / "wrapper.sh"
    with tempfile.TemporaryDirectory() as d:
        scratch = Path(d) / "scratch"
        scratch.mkdir()
        canary = Path(d) / "canary"
        (scratch / program).write_text(_ECHO_PROGRAM)
        (scratch / rows).write_text("")
        line = shlex.join([str(wrapper), program, rows, out])
        env = {**os.environ, "CANARY": str(canary)}
        proc = subprocess.run(["bash", "-c", line], cwd=scratch, capture_output=True, env=env,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert (scratch / out).read_bytes() == rows.encode("utf-8", "surrogateescape")
        assert not canary.exists()
        assert sorted(os.listdir(scratch)) == sorted({program, rows, out})


# ----------------------------------------------------------------------------- aggregation


def _doc(start: int, rows: list[tuple[int, str, float | None]]) -> dict[str, Any]:
    recs: list[dict[str, Any]] = []
    for row, url, lum in rows:
        rec: dict[str, Any] = {"row": row, "url": url, "year": 1900 + row % 100}
        if lum is None:
            rec["error"] = "fetch: HTTP 404 Not Found"
        else:
            rec["luminance"] = lum
        recs.append(rec)
    return ckjob.make_results({"start": start, "count": len(rows), "key": "k"}, recs, 0.0, 1.0,
                              "luminance.py")


# one results file: a row range, per-row outcome (value / error), and a damage, if any
_file = st.tuples(st.integers(1, 30), st.integers(1, 8),
                  st.lists(st.sampled_from(["v", "v", "v", "e", "w"]), min_size=8, max_size=8),
                  st.sampled_from([None, None, None, "truncate", "edit", "empty"]))


@settings(max_examples=120, deadline=None)
@given(expected=st.integers(1, 30), files=st.lists(_file, max_size=10))
def test_aggregate_accounting_matches_a_model(expected: int,
                                              files: list[tuple[int, int, list[str], Any]]) -> None:
    """'v' is a value, 'w' a different value (a disagreeing copy), 'e' an error."""
    tally("input", 1, "hypothesis: results files to aggregate")
    tally("fault", sum(1 for f in files if f[3] is not None), "damaged results files")
    model_state: dict[int, str] = {}  # row -> "value" | "error"
    seen_valid: dict[int, int] = {}
    paths_: list[Path] = []
    with tempfile.TemporaryDirectory() as d:
        for k, (start, count, kinds, damage) in enumerate(files):
            rows = [(r, f"/img/{r}.jpg", {"v": 0.5, "w": 0.25, "e": None}[kinds[i]])
                    for i, r in enumerate(range(start, start + count))]
            folder = Path(d) / f"copy{k}"
            folder.mkdir()
            p = folder / f"results-{start}.json"
            ckjob.write_results(str(p), _doc(start, rows))
            if damage == "truncate":
                p.write_bytes(p.read_bytes()[:-10])
            elif damage == "edit":
                p.write_text(p.read_text().replace('"row": ', '"row": 1', 1))
            elif damage == "empty":
                p.write_bytes(b"")
            paths_.append(p)
            if damage is not None:
                continue
            for r, _, lum in rows:
                if r > expected:
                    continue
                seen_valid[r] = seen_valid.get(r, 0) + 1
                if lum is not None:
                    model_state[r] = "value"
                else:
                    model_state.setdefault(r, "error")
        rep = aggregate(paths_, expected_rows=expected, out_html=Path(d) / "s.html",
                        workers=1) if paths_ else None
        if rep is None:
            return
        page = (Path(d) / "s.html").read_text(encoding="utf-8")
    missing = [r for r in range(1, expected + 1) if r not in model_state]
    assert rep.found == sum(1 for s in model_state.values() if s == "value")
    assert rep.errors == sum(1 for s in model_state.values() if s == "error")
    assert rep.missing_count == len(missing)
    assert rep.found + rep.errors + rep.missing_count == expected
    assert rep.duplicates == sum(1 for n in seen_valid.values() if n > 1)
    assert len(rep.invalid_files) == sum(1 for f in files if f[3] is not None)
    assert _ranges(missing) == rep.missing
    data = json.loads(page.split('id="ck-data">', 1)[1].split("</script>", 1)[0])
    assert sorted(p[2] for p in data["points"]) == sorted(
        r for r, s in model_state.items() if s == "value")


def _ranges(rows: list[int]) -> str:
    runs: list[list[int]] = []
    for r in rows:
        if runs and runs[-1][1] == r - 1:
            runs[-1][1] = r
        else:
            runs.append([r, r])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
