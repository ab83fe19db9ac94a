"""Aggregating results files into one coverage report and the chart page ``scatter.html``.

Owns counting (which rows have a value, an error, a duplicate, or nothing) and collecting the
charted values row by row; :mod:`condorkit.report.chart` picks the fields, builds the chart's data
(points, or binned counts above the density threshold) and the page.

Rules:
- rows are 1..expected (``expected`` is the manifest's data-row count; when not given, the
  highest row seen);
- a row seen twice (a retry, a speculative copy) counts once; a value beats an error (a retry
  that worked); between two values the first one read wins and a disagreement is recorded;
- an invalid file (see :mod:`condorkit.model.results`) counts none of its rows;
- files are read in the order given (folders expand to their ``results-N.json`` in order of N).

Memory: files are read one at a time; per row the collector keeps one flag byte and two doubles
(x, y), plus labels only while the page can still show single points. The library never prints;
the CLI renders :class:`AggregateReport`.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from array import array
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condorkit.errors import ResultsError
from condorkit.model.fileio import check_output, write_output
from condorkit.model.host import cores
from condorkit.model.results import ResultsFile, find_results, load_results, name_start
from condorkit.report.chart import chart_data, pick_fields, render_page

ERROR_SAMPLE = 100
CONFLICT_SAMPLE = 100
DENSITY_THRESHOLD = 20_000
MAX_ROWS = 100_000_000
MISSING_RANGES_SHOWN = 50
DEFAULT_TITLE = "Results"
PARALLEL_MIN_FILES = 400
BATCH_FILES = 25

_VAL, _ERR, _DUP, _RES = 1, 2, 4, 8  # charted value, error, seen twice, result not charted
_HAS = _VAL | _RES
_ABSENT = re.compile(rb"\x00+")
_VALUED = re.compile(rb"[\x01\x05]+")


@dataclass(frozen=True)
class AggregateReport:
    """What aggregation found. ``found + errors + missing_count == expected``."""

    expected: int
    expected_given: bool
    found: int
    errors: int
    error_samples: tuple[tuple[int, str | None, str], ...]
    duplicates: int
    conflicts: int
    conflict_samples: tuple[tuple[int, str, str, str], ...]
    invalid_files: tuple[tuple[str, str], ...]
    files_read: int
    missing: str
    missing_count: int
    out_of_range: int
    points: int
    html: Path
    density_mode: bool
    x_field: str = ""  # the charted fields ("" when nothing could be charted)
    y_field: str = ""
    uncharted: int = 0  # results (no error) without numeric x and y: counted, not drawn
    chart_note: str = ""  # why nothing (or not everything) is charted, in plain words

    @property
    def complete(self) -> bool:
        """Every expected row has a value or a recorded error."""
        return self.missing_count == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (for ``--json``): the fields as they are, tuples as lists
        (``invalid_files`` is ``[[path, problem], ...]``, ``error_samples`` is
        ``[[row, url, error], ...]``, ``conflict_samples`` is ``[[row, kept, other, file], ...]``),
        plus ``complete``."""
        return {
            "expected": self.expected,
            "expected_given": self.expected_given,
            "found": self.found,
            "errors": self.errors,
            "error_samples": [list(t) for t in self.error_samples],
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "conflict_samples": [list(t) for t in self.conflict_samples],
            "invalid_files": [list(t) for t in self.invalid_files],
            "files_read": self.files_read,
            "missing": self.missing,
            "missing_count": self.missing_count,
            "out_of_range": self.out_of_range,
            "points": self.points,
            "html": str(self.html),
            "density_mode": self.density_mode,
            "x_field": self.x_field,
            "y_field": self.y_field,
            "uncharted": self.uncharted,
            "chart_note": self.chart_note,
            "complete": self.complete,
        }


@dataclass(frozen=True)
class _Compact:
    """One results file reduced to what aggregation needs (cheap to pass between processes).

    ``ok[i]`` is 0 for a record with an error, 1 when it has numeric, finite x and y (a point),
    2 for a result without them (counted, not charted); ``errors`` maps the row of every error
    record to its (label, reason); ``labels`` is None unless asked for.
    """

    path: str
    problems: tuple[str, ...]
    end: int | None
    rows: array
    xs: array
    ys: array
    ok: bytes
    errors: dict[int, tuple[str | None, str]]
    labels: tuple[str | None, ...] | None
    start: int | None = None
    count: int | None = None
    key: str | None = None


_NUMBER_TYPES = {int, float}
_OK_TO_FLAG = bytes.maketrans(b"\x00\x01\x02", bytes((_ERR, _VAL, _RES)))


def _fits_float(v: Any) -> bool:
    try:
        float(v)
    except OverflowError:
        return False
    return True


def _compact(rf: ResultsFile, fields: tuple[str, str, str], want_labels: bool) -> _Compact:
    """Reduce a file to arrays, with as few Python-level steps per record as possible."""
    xf, yf, lf = fields
    rows, xs, ys = array("q"), array("d"), array("d")
    ok = b""
    errors: dict[int, tuple[str | None, str]] = {}
    labels: tuple[str | None, ...] | None = None
    if not rf.valid:
        return _Compact(str(rf.path), rf.problems, rf.end, rows, xs, ys, ok, errors, labels,
                        rf.start, rf.count, rf.key)
    recs = rf.records
    rows = array("q", [r["row"] for r in recs])
    xl: list[Any] = [r.get(xf) for r in recs]
    yl: list[Any] = [r.get(yf) for r in recs]
    # A valid file holds no NaN or infinity (its digest could not have been computed), so a
    # record counts when it has no error and both values are numbers (not booleans).
    bad = [i for i, r in enumerate(recs) if r.get("error") is not None]
    for i in bad:
        xl[i] = yl[i] = 0.0
    plain: set[int] = set()  # results without a point
    if not (set(map(type, xl)) <= _NUMBER_TYPES and set(map(type, yl)) <= _NUMBER_TYPES):
        plain = {i for i, (x, y) in enumerate(zip(xl, yl, strict=True))
                 if type(x) not in _NUMBER_TYPES or type(y) not in _NUMBER_TYPES}
        for i in plain:
            xl[i] = yl[i] = 0.0
    try:
        xs, ys = array("d", xl), array("d", yl)
    except OverflowError:  # an integer too large for a float: a result, not a point
        big = {i for i, (x, y) in enumerate(zip(xl, yl, strict=True))
               if not (_fits_float(x) and _fits_float(y))}
        for i in big:
            xl[i] = yl[i] = 0.0
        plain |= big
        xs, ys = array("d", xl), array("d", yl)
    okb = bytearray(b"\x01") * len(recs)
    for i in plain:
        okb[i] = 2
    for i in bad:
        okb[i] = 0
        rec = recs[i]
        label = rec.get(lf)
        errors[rec["row"]] = (label if isinstance(label, str) else None, str(rec.get("error")))
    ok = bytes(okb)
    if want_labels:
        labels = tuple(v if type(v) is str else None for v in (r.get(lf) for r in recs))
    return _Compact(str(rf.path), rf.problems, rf.end, rows, xs, ys, ok, errors, labels,
                    rf.start, rf.count, rf.key)


def _load_batch(paths: Sequence[Path], fields: tuple[str, str, str],
                want_labels: bool) -> list[_Compact]:
    return [_compact(load_results(p, legacy_fields=fields[:2]), fields, want_labels)
            for p in paths]


@dataclass
class _Collector:
    """Compact per-row state: one flag byte and two doubles per row."""

    expected: int | None
    threshold: int
    flags: bytearray = field(default_factory=bytearray)
    xs: array = field(default_factory=lambda: array("d"))
    ys: array = field(default_factory=lambda: array("d"))
    labels: dict[int, str] | None = field(default_factory=dict)
    errs: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    conflict_samples: list[tuple[int, str, str, str]] = field(default_factory=list)
    found: int = 0
    points: int = 0
    errors: int = 0
    duplicates: int = 0
    conflicts: int = 0
    out_of_range: int = 0
    x_all_int: bool = True

    def __post_init__(self) -> None:
        if self.expected is not None:
            self._grow(self.expected)

    def _grow(self, last_row: int) -> None:
        have = len(self.flags)
        want = last_row + 1
        if want <= have:
            return
        if self.expected is None:
            want = max(want, 2 * have)
        extra = want - have
        self.flags.extend(bytes(extra))
        self.xs.frombytes(bytes(8 * extra))
        self.ys.frombytes(bytes(8 * extra))

    def add(self, c: _Compact) -> None:
        """Count one valid file's records."""
        if self.expected is None and c.end is not None:
            self._grow(c.end)
        limit = self.expected if self.expected is not None else len(self.flags) - 1
        flags, xs, ys = self.flags, self.xs, self.ys
        labels = c.labels
        n = len(c.rows)
        first = c.rows[0] if n else 0
        end = first + n
        if (n and 1 <= first and end - 1 <= limit and flags.count(0, first, end) == n
                and c.rows == array("q", range(first, end))):
            # the common case: a whole file of rows not seen before, in row order
            flags[first:end] = c.ok.translate(_OK_TO_FLAG)
            xs[first:end] = c.xs
            ys[first:end] = c.ys
            valued = n - c.ok.count(0)
            self.found += valued
            self.points += c.ok.count(1)
            self.errors += n - valued
            for row, why in c.errors.items():
                if len(self.errs) >= ERROR_SAMPLE:
                    break
                self.errs[row] = why
            if self.x_all_int and not all(map(float.is_integer, c.xs)):
                self.x_all_int = False
            if self.labels is not None:
                if self.found > self.threshold:
                    self.labels = None
                elif labels is not None:
                    self.labels.update((first + i, v) for i, v in enumerate(labels)
                                       if v and c.ok[i] == 1)
            return
        for i, row, x, y, good in zip(range(len(c.rows)), c.rows, c.xs, c.ys, c.ok,
                                      strict=True):
            if row < 1 or row > limit:
                self.out_of_range += 1
                continue
            st = flags[row]
            if st:
                if not st & _DUP:
                    flags[row] = st | _DUP
                    self.duplicates += 1
                if st & _HAS:
                    if good == 1 and st & _VAL and (xs[row] != x or ys[row] != y):
                        self._conflict(row, x, y, c.path)
                    continue
                if not good:
                    continue
                # a retry produced the value that an earlier copy recorded as an error
                self.errors -= 1
                self.errs.pop(row, None)
                flags[row] = (_VAL if good == 1 else _RES) | _DUP
            elif good:
                flags[row] = _VAL if good == 1 else _RES
            else:
                flags[row] = _ERR
                self.errors += 1
                if len(self.errs) < ERROR_SAMPLE:
                    self.errs[row] = c.errors[row]
                continue
            self.found += 1
            if good != 1:
                continue
            self.points += 1
            xs[row] = x
            ys[row] = y
            if self.x_all_int and not x.is_integer():
                self.x_all_int = False
            if self.labels is not None:
                if self.found > self.threshold:
                    self.labels = None
                elif labels is not None and labels[i] is not None:
                    self.labels[row] = labels[i]  # type: ignore[assignment]

    def _conflict(self, row: int, x: float, y: float, path: str) -> None:
        self.conflicts += 1
        if len(self.conflict_samples) < CONFLICT_SAMPLE:
            kept = f"{self.xs[row]:g}, {self.ys[row]:g}"
            self.conflict_samples.append((row, kept, f"{x:g}, {y:g}", path))

    def last_row(self) -> int:
        if self.expected is not None:
            return self.expected
        nz = len(self.flags.rstrip(b"\x00"))
        return max(nz - 1, 0)

    def missing(self, last: int) -> tuple[str, int]:
        ranges: list[str] = []
        total = 0
        runs = 0
        for m in _ABSENT.finditer(self.flags, 1, last + 1):
            a, b = m.start(), m.end() - 1
            total += b - a + 1
            runs += 1
            if len(ranges) < MISSING_RANGES_SHOWN:
                ranges.append(str(a) if a == b else f"{a}-{b}")
        text = ", ".join(ranges)
        if runs > MISSING_RANGES_SHOWN:
            text += f", ... ({runs - MISSING_RANGES_SHOWN} more ranges)"
        return text, total

    def valued_runs(self, last: int) -> Iterable[tuple[int, int]]:
        for m in _VALUED.finditer(self.flags, 1, last + 1):
            yield m.start(), m.end()


def _expand(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        # a folder named like a results file is a bad results file, not a folder to search
        out.extend(find_results(path) if path.is_dir() and name_start(path) is None
                   else [path])
    return out


def _iter_compact(paths: list[Path], fields: tuple[str, str, str], workers: int,
                  col: _Collector) -> Iterator[_Compact]:
    """Load files in the order given; with many files, parse and check them in workers.

    Workers are forked (only from a single-threaded process, where forking is safe; a caller
    with threads reads in-process). At most ``2 * workers`` batches are in flight, so memory
    stays bounded however many files there are.
    """
    if (workers <= 1 or len(paths) < PARALLEL_MIN_FILES or threading.active_count() > 1
            or "fork" not in multiprocessing.get_all_start_methods()):
        for p in paths:
            yield _compact(load_results(p, legacy_fields=fields[:2]), fields,
                           col.labels is not None)
        return
    batches = [paths[i:i + BATCH_FILES] for i in range(0, len(paths), BATCH_FILES)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque[Future[list[_Compact]]] = deque()
        todo = iter(batches)
        for batch in todo:
            pending.append(pool.submit(_load_batch, batch, fields, True))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(_load_batch, nxt, fields, col.labels is not None))
            yield from done


def _stale(c: _Compact, expected_keys: Mapping[int, tuple[int, str]]) -> str | None:
    """Why a valid file does not belong to the current job, or None.

    Only a file whose start is a chunk start of the current job can be checked (legacy files
    and files cut with another chunk size cannot); it is stale when its row count or its key
    differs: it was made for other rows, another program or other options.
    """
    if c.key is None or c.start is None or c.start not in expected_keys:
        return None
    if expected_keys[c.start] != (c.count, c.key):
        return ("stale: the results are for other rows, program or options than the current "
                "job; run this chunk again (`condorkit run` or `condorkit resubmit --missing`)")
    return None


def aggregate(
    paths: Iterable[str | Path],
    *,
    expected_rows: int | None,
    out_html: Path,
    allow_missing: bool = False,
    title: str = "",
    x_field: str = "",
    y_field: str = "",
    label_field: str = "",
    density_threshold: int = DENSITY_THRESHOLD,
    workers: int | None = None,
    expected_keys: Mapping[int, tuple[int, str]] | None = None,
) -> AggregateReport:
    """Read every results file (streaming), count coverage, write ``out_html``.

    ``paths`` are results files or folders holding ``results-N.json``. ``expected_rows`` is the
    manifest's data-row count (rows 1..expected); None means "the highest row seen".
    ``allow_missing`` only changes the page's wording: the CLI decides the exit code from
    :attr:`AggregateReport.complete`. Raises :class:`ResultsError` when no file is given.
    ``workers``: processes that parse and check files when there are many (default: one per
    available core; 1 reads everything in this process). ``expected_keys`` maps each chunk
    start of the current job to its (count, key): a file made for other rows, program or
    options is then invalid ("stale") and none of its rows count.
    """
    if expected_rows is not None and not 0 <= expected_rows <= MAX_ROWS:
        raise ResultsError(f"expected rows must be 0..{MAX_ROWS}, not {expected_rows}",
                           "pass the manifest's data-row count")
    check_output(out_html, "the page")
    files_list = _expand(paths)
    if not files_list:
        raise ResultsError("no results files to aggregate",
                           "run the jobs first, or point at the job's results/ folder")
    chosen = pick_fields(files_list, x_field, y_field, label_field)
    x_field, y_field, label_field = chosen.x or "\0x", chosen.y or "\0y", chosen.label
    title = title or (f"{chosen.y} vs. {chosen.x}" if chosen.x and chosen.y else DEFAULT_TITLE)
    col = _Collector(expected_rows, density_threshold)
    invalid: list[tuple[str, str]] = []
    nworkers = cores() if workers is None else workers
    for c in _iter_compact(files_list, (x_field, y_field, label_field), nworkers, col):
        stale = None if c.problems or expected_keys is None else _stale(c, expected_keys)
        if c.problems:
            invalid.append((c.path, "; ".join(c.problems)))
        elif stale:
            invalid.append((c.path, stale))
        elif expected_rows is None and c.end is not None and c.end > MAX_ROWS:
            invalid.append((c.path, f"rows beyond {MAX_ROWS:,}; pass the expected row count"))
        else:
            col.add(c)
    last = col.last_row()
    missing_text, missing_count = col.missing(last)
    density = col.points > density_threshold
    note = chosen.note
    if not note and col.found > col.points:
        note = (f"{col.found - col.points:,} result(s) have no numeric {chosen.x!r} and "
                f"{chosen.y!r} and are not on the chart")
    report = AggregateReport(
        expected=last,
        expected_given=expected_rows is not None,
        found=col.found,
        errors=col.errors,
        error_samples=tuple((r, u, e) for r, (u, e) in sorted(col.errs.items())),
        duplicates=col.duplicates,
        conflicts=col.conflicts,
        conflict_samples=tuple(col.conflict_samples),
        invalid_files=tuple(invalid),
        files_read=len(files_list),
        missing=missing_text,
        missing_count=missing_count,
        out_of_range=col.out_of_range,
        points=col.points,
        html=Path(out_html),
        density_mode=density,
        x_field=chosen.x if chosen.y else "",
        y_field=chosen.y if chosen.x else "",
        uncharted=col.found - col.points,
        chart_note=note,
    )
    data = chart_data(col, last, report, title, density, (chosen.x, chosen.y))
    data["note"] = note
    data["sample"] = [dict(r) for r in chosen.sample] if (note or not col.points) else []
    page = render_page(data, report, title=title, allow_missing=allow_missing)
    write_output(out_html, page.encode("utf-8"), "the page")
    return report
