"""The chart page ``scatter.html``: the "Google Charts sandwich".

Owns the page: the packaged header fragment (``condorkit/report/html/scatter_head.html``), the
summary and error tables written here (every value HTML-escaped), the data as escaped JSON in
``<script type="application/json" id="ck-data">``, and the packaged footer fragment
(``scatter_foot.html``), whose script draws the data with Google Charts' current loader or, when
that cannot load, as inline SVG. Also what the chart draws (:func:`pick_fields`: the fields given,
else the first two numeric ones), its data block (:func:`chart_data`: points, or density bins
above the threshold) and the axis helper. ``condorkit.report.aggregate`` collects the rows and
calls them.
"""

from __future__ import annotations

import html
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condorkit.model.results import load_results

if TYPE_CHECKING:
    from condorkit.report.aggregate import AggregateReport

INVALID_SHOWN = 100
DENSITY_COLUMNS = 100
DENSITY_ROWS = 60
#: value types that can be an axis (not bool)
_NUMBER_TYPES = {int, float}


_BIG = sys.float_info.max


def _clamp(x: float) -> float:
    return -_BIG if x < -_BIG else _BIG if x > _BIG else x


def nice_axis(lo: float, hi: float, *, integer: bool = False,
              target: int = 10) -> dict[str, Any]:
    """An axis covering [lo, hi] with a little padding and round tick marks.

    Any finite ``lo <= hi`` works, from 5e-324 to ±1.8e308 and mixed: differences are taken
    as ``hi/n - lo/n`` (never ``hi - lo``, which overflows), a span too small to divide (equal
    values, subnormal or below the doubles' resolution at that size) gets a fixed padding, and
    every tick is clamped to the finite doubles. Non-finite or reversed input gives 0..1.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        lo, hi = 0.0, 1.0
    lo, hi = float(lo), float(hi)
    size = max(abs(lo), abs(hi))
    half = hi / 2 - lo / 2  # half the span, never overflows
    if half <= max(size * 1e-12, 1e-290):  # equal, or no room for ticks between them
        pad = max(size * 0.05, 1.0 if integer else 0.05)
    else:
        pad = half * 0.06
    lo, hi = _clamp(lo - pad), _clamp(hi + pad)
    raw = hi / target - lo / target  # the span over target, without overflow
    mag = 10.0 ** math.floor(math.log10(raw))
    step = mag * 10
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if integer and m == 2.5:
            continue
        if raw <= m * mag:
            step = m * mag
            break
    if integer:
        step = max(1.0, float(round(step)))
    k0, k1 = math.floor(lo / step), math.ceil(hi / step)
    digits = max(0, -int(math.floor(math.log10(step))) + 1) if step < 1 else 0
    ticks: list[float] = []
    for k in range(k0, k1 + 1):
        t = _clamp(round(k * step, digits + 2) if step < 1 else k * step)
        if not ticks or t > ticks[-1]:
            ticks.append(t)
    return {"min": ticks[0], "max": ticks[-1], "ticks": ticks}


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``, U+2028/9."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fragment(name: str) -> str:
    return files("condorkit.report").joinpath("html", name).read_text(encoding="utf-8")


def _esc(value: object) -> str:
    """HTML text or attribute value; U+2028/9 (harmless in HTML) as references, none raw."""
    text = html.escape("" if value is None else str(value), quote=True)
    return text.replace("\u2028", "&#x2028;").replace("\u2029", "&#x2029;")


SAMPLE_COLUMNS = 12
CELL_CHARS = 200


def _cell(value: object) -> str:
    """One table cell: text as it is, anything else as JSON, cut to CELL_CHARS."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "\u2026"


def render_page(data: dict[str, Any], report: AggregateReport, *, title: str,
                allow_missing: bool = False) -> str:
    """The whole page: header fragment, summary and tables, data block, footer fragment."""
    head = _fragment("scatter_head.html").replace("{{title}}", _esc(title))
    parts = [head]
    rows = [
        ("Rows expected", f"{report.expected:,}"
         + ("" if report.expected_given else " (highest row seen; no manifest count given)")),
        ("Rows with a value", f"{report.found:,}"),
        ("Rows with an error", f"{report.errors:,}"),
        ("Rows missing", f"{report.missing_count:,}"
         + (f": {report.missing}" if report.missing else "")),
        ("Rows seen more than once (counted once)", f"{report.duplicates:,}"),
    ]
    if report.conflicts:
        rows.append(("Copies that disagree (first kept)", f"{report.conflicts:,}"))
    if report.uncharted:
        rows.append(("Results not on the chart (no numeric x and y)", f"{report.uncharted:,}"))
    if report.out_of_range:
        rows.append(("Records outside rows 1..expected (ignored)", f"{report.out_of_range:,}"))
    rows.append(("Results files read / invalid",
                 f"{report.files_read:,} / {len(report.invalid_files):,}"))
    parts.append('<table class="ck-summary" id="ck-summary">\n')
    for k, v in rows:
        parts.append(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>\n")
    parts.append("</table>\n")
    if report.missing_count:
        word = "allowed (--allow-missing)" if allow_missing else "the chart is incomplete"
        parts.append(f'<p class="ck-warn" id="ck-missing">{report.missing_count:,} rows have '
                     f"no results: {_esc(word)}.</p>\n")
    if data["mode"] == "density":
        parts.append(f'<p class="ck-note" id="ck-density">Density view: {report.found:,} '
                     f"points are more than {data['threshold']:,} and are drawn as "
                     "binned counts (darker cells hold more points), not one mark each.</p>\n")
    parts.append('<p class="ck-status" id="ck-status">Loading the chart&hellip;</p>\n'
                 '<div id="ck-chart" class="ck-chart"></div>\n')
    if data.get("note"):
        parts.append(f'<p class="ck-note" id="ck-chart-note">{_esc(data["note"])}.</p>\n')
    sample = data.get("sample") or []
    if sample:
        cols = list(dict.fromkeys(k for r in sample for k in r))[:SAMPLE_COLUMNS]
        parts.append(f'<h2>Results (first {len(sample)})</h2>\n<table class="ck-results" '
                     'id="ck-results">\n<tr>' + "".join(f"<th>{_esc(c)}</th>" for c in cols)
                     + "</tr>\n")
        for r in sample:
            parts.append("<tr>" + "".join(f"<td>{_esc(_cell(r.get(c)))}</td>" for c in cols)
                         + "</tr>\n")
        parts.append("</table>\n")
    if report.error_samples:
        shown = len(report.error_samples)
        parts.append(f'<h2>Recorded errors (first {shown} of {report.errors:,})</h2>\n'
                     '<table class="ck-errors" id="ck-errors">\n'
                     "<tr><th>Row</th><th>Input</th><th>Error</th></tr>\n")
        for r, u, e in report.error_samples:
            parts.append(f"<tr><td>{r}</td><td>{_esc(u)}</td><td>{_esc(e)}</td></tr>\n")
        parts.append("</table>\n")
    if report.invalid_files:
        parts.append('<h2>Invalid results files (their rows are not counted)</h2>\n'
                     '<ul class="ck-invalid" id="ck-invalid">\n')
        for p, q in report.invalid_files[:INVALID_SHOWN]:
            parts.append(f"<li><code>{_esc(p)}</code>: {_esc(q)}</li>\n")
        if len(report.invalid_files) > INVALID_SHOWN:
            parts.append(f"<li>... and {len(report.invalid_files) - INVALID_SHOWN} more</li>\n")
        parts.append("</ul>\n")
    parts.append('<script type="application/json" id="ck-data">')
    parts.append(json_for_script(data))
    parts.append("</script>\n")
    parts.append(_fragment("scatter_foot.html"))
    return "".join(parts)


# ---------------------------------------------------------------- what the chart draws

#: fields of every record that are bookkeeping, never chart axes
_NOT_AXES = {"row", "error"}
SAMPLE_ROWS = 20


@dataclass(frozen=True)
class ChartFields:
    """What the chart draws: x, y and the point label (``""``: none), with a sample of results
    for the page's table and a plain note when nothing can be drawn."""

    x: str
    y: str
    label: str
    sample: tuple[dict[str, Any], ...]
    note: str = ""


def pick_fields(paths: Sequence[Path], x: str = "", y: str = "", label: str = "") -> ChartFields:
    """The chart's fields: the ones given, else the first two numeric fields (in record order,
    not booleans) of the first result without an error (one numeric field: against the row),
    and its first text field as the label.

    Looks at the first valid files only (cheap); a sample of their results is kept for a table.
    """
    sample: list[dict[str, Any]] = []
    for p in paths[:20]:
        if p.is_dir() or p.suffix != ".json":
            continue
        rf = load_results(p)
        if not rf.valid:
            continue
        sample.extend(dict(r) for r in rf.records[:SAMPLE_ROWS] if r.get("error") is None)
        if len(sample) >= SAMPLE_ROWS:
            break
    first = sample[0] if sample else {}
    numeric = [k for k, v in first.items() if k not in _NOT_AXES and type(v) in _NUMBER_TYPES]
    text = [k for k, v in first.items() if k not in _NOT_AXES and isinstance(v, str)]
    if not x and not y and len(numeric) == 1:
        x, y = "row", numeric[0]  # one number per row: draw it against the row
    if not x:
        x = next((k for k in numeric if k != y), "")
    if not y:
        y = next((k for k in numeric if k != x), "")
    label = label or (text[0] if text else "")
    note = ""
    if not (x and y):
        have = ", ".join(k for k in first if k not in _NOT_AXES) or "none"
        note = (f"nothing to chart: the results have no two numeric fields (fields: {have}); "
                "choose them with --x and --y (or chart_x / chart_y in condorkit.toml)")
    return ChartFields(x, y, label, tuple(sample[:SAMPLE_ROWS]), note)


# ---------------------------------------------------------------- chart data


def chart_data(col: Any, last: int, report: AggregateReport, title: str,
                density: bool, fields: tuple[str, str]) -> dict[str, Any]:
    """The page's data block: axes, summary, error samples, and the points (or density bins)
    of the collector's valued rows up to ``last``."""
    xs, ys = col.xs, col.ys
    runs = list(col.valued_runs(last))
    if runs:
        xlo = min(min(xs[a:b]) for a, b in runs)
        xhi = max(max(xs[a:b]) for a, b in runs)
        ylo = min(min(ys[a:b]) for a, b in runs)
        yhi = max(max(ys[a:b]) for a, b in runs)
    else:
        xlo, xhi, ylo, yhi = 0.0, 1.0, 0.0, 1.0
    ax = nice_axis(xlo, xhi, integer=col.x_all_int)
    ay = nice_axis(ylo, yhi)
    data: dict[str, Any] = {
        "version": 1,
        "title": title,
        "x_label": fields[0].replace("_", " ").capitalize(),
        "y_label": fields[1].replace("_", " ").capitalize(),
        "mode": "density" if density else "points",
        "axes": {"x": ax, "y": ay},
        "count": report.points,
        "threshold": col.threshold,
        "summary": {k: v for k, v in report.to_dict().items()
                    if k in ("expected", "found", "errors", "duplicates", "missing_count")},
        "errors": [[r, u, e] for r, u, e in report.error_samples],
    }
    if not density:
        labels = col.labels or {}
        pts: list[list[Any]] = []
        for a, b in runs:
            for row in range(a, b):
                x = xs[row]
                pts.append([int(x) if col.x_all_int else x, ys[row], row, labels.get(row)])
        data["points"] = pts
        return data
    # spans as max/n - min/n: max - min overflows for axes near ±1.8e308
    if col.x_all_int:
        dx = float(max(1, math.ceil(ax["max"] / DENSITY_COLUMNS - ax["min"] / DENSITY_COLUMNS)))
        nx = max(1, min(DENSITY_COLUMNS, math.ceil(ax["max"] / dx - ax["min"] / dx)))
    else:
        nx = DENSITY_COLUMNS
        dx = ax["max"] / nx - ax["min"] / nx
    ny = DENSITY_ROWS
    dy = ay["max"] / ny - ay["min"] / ny
    x0, y0 = float(ax["min"]), float(ay["min"])
    counts = [0] * (nx * ny)
    ix_max, iy_max = nx - 1, ny - 1
    sx, sy = 1.0 / dx, 1.0 / dy
    ox, oy = x0 * sx, y0 * sy
    for a, b in runs:  # a plain loop: faster in CPython 3.11 than chains of map()
        for x, y in zip(xs[a:b], ys[a:b], strict=True):
            ix = int(x * sx - ox)  # x * sx - x0 * sx: no overflow, unlike (x - x0) * sx
            iy = int(y * sy - oy)
            ix = 0 if ix < 0 else ix if ix < ix_max else ix_max
            iy = 0 if iy < 0 else iy if iy < iy_max else iy_max
            counts[ix * ny + iy] += 1
    cells = [[i // ny, i % ny, c] for i, c in enumerate(counts) if c]
    data["bins"] = {"x0": x0, "dx": dx, "nx": nx, "y0": y0, "dy": dy, "ny": ny,
                    "max": max((c[2] for c in cells), default=0), "cells": cells}
    return data


