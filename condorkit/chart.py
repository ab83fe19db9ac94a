"""The chart page ``scatter.html``: the "Google Charts sandwich".

Owns the page: the packaged header fragment (``condorkit.html/scatter_head.html``), the summary
and error tables written here (every value HTML-escaped), the data as escaped JSON in
``<script type="application/json" id="ck-data">``, and the packaged footer fragment
(``scatter_foot.html``), whose script draws the data with Google Charts' current loader or, when
that cannot load, as inline SVG. Also the axis helper the data is built with.
``condorkit.aggregate`` builds the data and calls :func:`render_page`.
"""

from __future__ import annotations

import json
import math
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aggregate import AggregateReport

INVALID_SHOWN = 100


def nice_axis(lo: float, hi: float, *, integer: bool = False,
              target: int = 10) -> dict[str, Any]:
    """An axis covering [lo, hi] with a little padding and round tick marks."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        lo, hi = 0.0, 1.0
    if lo == hi:
        pad = max(abs(lo) * 0.05, 1.0 if integer else 0.05)
    else:
        pad = (hi - lo) * 0.03
    lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / target
    mag = 10.0 ** math.floor(math.log10(raw))
    step = mag * 10
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if integer and m == 2.5:
            continue
        if (hi - lo) / (m * mag) <= target:
            step = m * mag
            break
    if integer:
        step = max(1.0, round(step))
    amin = math.floor(lo / step) * step
    amax = math.ceil(hi / step) * step
    n = int(round((amax - amin) / step))
    digits = max(0, -int(math.floor(math.log10(step))) + 1) if step < 1 else 0
    ticks = [round(amin + i * step, digits + 2) for i in range(n + 1)]
    return {"min": ticks[0], "max": ticks[-1], "ticks": ticks}


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>``, ``&``, U+2028/9."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _fragment(name: str) -> str:
    return files("condorkit.html").joinpath(name).read_text(encoding="utf-8")


# Escapes for HTML text and attribute values (as html.escape does). The stdlib module is not
# imported: the repository's top-level html/ folder shadows it when run from the repo root.
# U+2028/9 are harmless in HTML text but written as references so the page holds none raw.
_HTML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                               "'": "&#x27;", "\u2028": "&#x2028;", "\u2029": "&#x2029;"})


def _esc(value: object) -> str:
    return ("" if value is None else str(value)).translate(_HTML_ESCAPES)


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
