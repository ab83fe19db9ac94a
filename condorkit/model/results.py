"""Reading and validating results files, one at a time.

Owns the submit-side reading of ``results/results-START.json`` (format ``condorkit-results/1``,
written by the job-side module ``ckjob``) and of the OSG photodemo tutorial's LEGACY fragments.
The format itself, its digest and its checks live in ``ckjob`` and are reused from there; this
module never re-implements them.

A file is INVALID (and none of its rows count) when it is not valid JSON (e.g. truncated), its
digest does not match (hand edit), its records do not cover ``start..start+count-1`` exactly once,
or its name says another start than its content. Each problem is a sentence naming what is wrong.

Legacy fragments are what the tutorial's ``luminance2 OUT SKIP COUNT`` printed into
``results-SKIP.json`` (SKIP is the 0-based number of manifest lines skipped)::

    /* Running on host: HOST */
    [1880, 0.525493],
    [1919, 0.416121],
    /* 2 photos analyzed in 6.94s (3.47/s) */

The tutorial's ``aggregate.sh`` pasted these between two HTML halves. Here the rows are numbered
from the file name (row = SKIP + 1 + k), each ``[x, y],`` line may carry a trailing ``/* */`` or
``//`` comment, and a fragment without its closing "N photos analyzed" line (the job stopped early)
or whose N differs from its data lines is invalid.

Reading streams: :func:`load_results` reads one :class:`ResultsFile` at a time, so a caller holds
one file's records in memory at most.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from condorkit.model.fileio import NotRegularFile, read_regular
from condorkit.model.layout import RESULTS_NAME, name_start
from condorkit.wrappers import ckjob

CONDORKIT_FORMAT: str = ckjob.RESULTS_FORMAT
LEGACY_FORMAT = "photodemo-legacy-fragment"

MAX_ROW = ckjob.MAX_ROW
#: a results file larger than this is invalid and never read (bounds the memory of parsing it:
#: a chunk of 200 rows holds ~40 KB; 32 MiB leaves 160 KB per row)
MAX_RESULTS_BYTES = 32 << 20
_LEGACY_POINT = re.compile(
    r"^\[\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*,"
    r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\]\s*,?\s*"
    r"(?:/\*.*\*/|//.*)?\s*$"
)
_LEGACY_HOST = re.compile(r"^/\*\s*Running on host:\s*(.*?)\s*\*/\s*$")
_LEGACY_TRAILER = re.compile(
    r"^/\*\s*(\d+)\s+photos?\s+analy[sz]ed\s+in\s+([0-9.]+)s\b.*\*/\s*$"
)
_LEGACY_COMMENT = re.compile(r"^(?:/\*.*\*/|//.*)$")


@dataclass(frozen=True)
class ResultsFile:
    """One results file as read from disk.

    ``records`` are the file's records (dicts with ``row`` and either values or ``error``); they
    are empty when the file could not be parsed at all. ``problems`` is empty exactly when the
    file is valid; an invalid file's rows must not be counted.
    """

    path: Path
    format: str
    start: int | None
    count: int | None
    key: str | None
    host: str | None
    elapsed_s: float | None
    records: tuple[Mapping[str, Any], ...]
    problems: tuple[str, ...]

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def end(self) -> int | None:
        """Last row covered (inclusive), or None when unknown."""
        if self.start is None or self.count is None:
            return None
        return self.start + self.count - 1


def find_results(folder: str | Path) -> list[Path]:
    """The ``results-N.json`` files in ``folder``, in order of N (not of name)."""
    base = Path(folder)
    found = [p for p in base.iterdir() if RESULTS_NAME.match(p.name)]  # not only files: a
    # FIFO or a folder under a results name is reported invalid, never skipped in silence
    return sorted(found, key=lambda p: (name_start(p) or 0, p.name))


def _invalid(path: Path, fmt: str, problem: str) -> ResultsFile:
    return ResultsFile(path, fmt, None, None, None, None, None, (), (problem,))


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def load_results(
    path: str | Path,
    *,
    expect_start: int | None = None,
    expect_count: int | None = None,
    expect_key: str | None = None,
    legacy_fields: tuple[str, str] = ("year", "luminance"),
) -> ResultsFile:
    """Read and check one results file (condorkit JSON or a legacy tutorial fragment).

    Never raises for a bad file: what is wrong goes into ``problems``. ``legacy_fields`` names
    the two values of a legacy ``[x, y]`` line in the records built from it.
    """
    p = Path(path)
    try:  # only a regular file, never more than the cap: a FIFO or /dev/zero cannot hang us
        data = read_regular(p, MAX_RESULTS_BYTES)
    except FileNotFoundError:
        return _invalid(p, CONDORKIT_FORMAT, "file does not exist")
    except NotRegularFile as exc:
        return _invalid(p, CONDORKIT_FORMAT, f"{exc.strerror}; it is not read")
    except OSError as exc:
        return _invalid(p, CONDORKIT_FORMAT, f"cannot be read: {exc.strerror or exc}")
    head = data.lstrip()[:1]
    if head in (b"[", b"/"):
        rf = _load_legacy(p, data, legacy_fields)
        extra = []
        if expect_start is not None and rf.start != expect_start:
            extra.append(f"start is {rf.start}, expected {expect_start}")
        if expect_count is not None and rf.count != expect_count:
            extra.append(f"count is {rf.count}, expected {expect_count}")
        if expect_key is not None:
            extra.append("legacy fragment has no key: cannot tell which program made it")
        return replace(rf, problems=rf.problems + tuple(extra)) if extra else rf
    if not head:
        return _invalid(p, CONDORKIT_FORMAT, "file is empty (the job wrote nothing)")
    try:
        doc = json.loads(data)
    except UnicodeDecodeError:
        return _invalid(p, CONDORKIT_FORMAT, "not UTF-8 text")
    except json.JSONDecodeError as exc:
        where = "end of file" if exc.pos >= len(data.rstrip()) else f"line {exc.lineno}"
        return _invalid(p, CONDORKIT_FORMAT,
                        f"not valid JSON at {where} (truncated or corrupt): {exc.msg}")
    return check_document(p, doc, expect_start=expect_start, expect_count=expect_count,
                          expect_key=expect_key)


def read_valid(path: Path, start: int, count: int, key: str, rows_key: str | None = None
               ) -> tuple[dict[str, Any] | None, str]:
    """(document, "") when ``path`` holds valid results for exactly these rows and key, else
    (None, why). The one validity check of a chunk's results (local resume and scheduling, pool
    submit and monitoring); the rule itself is ``ckjob.check_results``. ``rows_key``: the key of
    the rows the results must have been computed from (required then). Only a regular file of at
    most ``MAX_RESULTS_BYTES`` is read: a FIFO or a link to /dev/zero is invalid at once."""
    try:
        doc = json.loads(read_regular(path, MAX_RESULTS_BYTES))
    except FileNotFoundError:
        return None, "no results file"
    except OSError as exc:
        return None, f"unreadable results file: {exc.strerror or exc}"
    except ValueError as exc:
        return None, f"unreadable results file: {exc}"
    try:
        problems = ckjob.check_results(doc, start, count, key, rows_key)
    except ValueError as exc:  # NaN/Infinity: no digest can be computed
        problems = [f"not canonical JSON: {exc}"]
    if problems:
        return None, "; ".join(problems)
    return doc, ""


def valid_result(path: Path, start: int, count: int, key: str) -> str | None:
    """None when ``path`` holds valid results for exactly these rows and key, else why not.
    Results that record the key of the rows they were computed from (``rows_key``, written by
    ckjob) must record this chunk's key."""
    doc, why = read_valid(path, start, count, key)
    if doc is not None and doc.get("rows_key", key) != key:
        return "computed from other rows than this chunk's (rows_key differs)"
    return why or None


def check_document(
    path: Path,
    doc: object,
    *,
    expect_start: int | None = None,
    expect_count: int | None = None,
    expect_key: str | None = None,
) -> ResultsFile:
    """Validate a parsed results document (digest and coverage via ``ckjob.check_results``)."""
    try:
        problems = list(ckjob.check_results(doc, expect_start, expect_count, expect_key))
    except ValueError:  # NaN or Infinity: the digest cannot even be computed
        return ResultsFile(path, CONDORKIT_FORMAT, None, None, None, None, None, (),
                           ("holds NaN or Infinity, which condorkit results never contain "
                            "(hand-edited or written by another tool)",))
    if not isinstance(doc, dict):
        return ResultsFile(path, CONDORKIT_FORMAT, None, None, None, None, None, (),
                           tuple(problems))
    start, count, records = doc.get("start"), doc.get("count"), doc.get("records")
    if not isinstance(start, int) or isinstance(start, bool):
        start = None
    if not isinstance(count, int) or isinstance(count, bool):
        count = None
    # check_results has verified that every record is an object with a distinct row number in
    # start..start+count-1 (anything else is a coverage problem), so records are usable as is.
    recs: tuple[Mapping[str, Any], ...] = ()
    if isinstance(records, list) and (not problems or all(isinstance(r, dict) for r in records)):
        recs = tuple(records)
    named = name_start(path)
    if named is not None and start is not None and named != start:
        problems.append(f"file name says rows from {named}, but the file holds rows from "
                        f"{start}; was it renamed or copied from another job?")
    key = doc.get("key")
    host = doc.get("host")
    elapsed = _num(doc.get("elapsed_s"))
    return ResultsFile(
        path=path,
        format=str(doc.get("format")),
        start=start,
        count=count,
        key=key if isinstance(key, str) else None,
        host=host if isinstance(host, str) else None,
        elapsed_s=elapsed,
        records=recs,
        problems=tuple(dict.fromkeys(problems)),
    )


def _load_legacy(path: Path, data: bytes, fields: tuple[str, str]) -> ResultsFile:
    """Parse a tutorial fragment; rows are numbered from the SKIP in ``results-SKIP.json``."""
    problems: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _invalid(path, LEGACY_FORMAT, "not UTF-8 text")
    skip = name_start(path)
    if skip is None:
        problems.append("legacy fragment: cannot tell which rows it holds; name it "
                        "results-SKIP.json with SKIP the number of manifest lines skipped")
    host: str | None = None
    trailer: tuple[int, float] | None = None
    points: list[tuple[float, float]] = []
    xf, yf = fields
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if trailer is not None:
            problems.append(f"line {lineno}: text after the closing 'photos analyzed' line")
            break
        m = _LEGACY_POINT.match(line)
        if m:
            x, y = float(m.group(1)), float(m.group(2))
            if not (math.isfinite(x) and math.isfinite(y)):
                problems.append(f"line {lineno}: value out of range")
            points.append((x, y))
            continue
        m = _LEGACY_HOST.match(line)
        if m:
            host = m.group(1)
            continue
        m = _LEGACY_TRAILER.match(line)
        if m:
            trailer = (int(m.group(1)), float(m.group(2)))
            continue
        if _LEGACY_COMMENT.match(line):
            continue
        problems.append(f"line {lineno}: not a '[year, luminance],' line: {line[:60]!r}")
        break
    if trailer is None:
        problems.append("legacy fragment has no closing 'N photos analyzed' line: the job "
                        "stopped early or the file is truncated")
    elif trailer[0] != len(points):
        problems.append(f"closing line says {trailer[0]} photos, but the file has "
                        f"{len(points)} data lines")
    start = None if skip is None else skip + 1
    records: tuple[Mapping[str, Any], ...] = ()
    if start is not None:
        records = tuple({"row": start + k, xf: (int(x) if x.is_integer() else x), yf: y}
                        for k, (x, y) in enumerate(points))
    return ResultsFile(
        path=path,
        format=LEGACY_FORMAT,
        start=start,
        count=len(points),
        key=None,
        host=host,
        elapsed_s=trailer[1] if trailer else None,
        records=records,
        problems=tuple(problems),
    )
