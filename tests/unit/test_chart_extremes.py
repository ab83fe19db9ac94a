"""The chart never crashes on a valid number (issue 15, class 5): every finite float, alone or
mixed with others (±1e308, the largest double, 0, the smallest subnormal 5e-324, tiny spans
around huge values), gives a written page with finite, ordered axes that contain every value,
in the points view and in the density view."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from condorkit.wrappers import ckjob
from hypothesis import given, settings
from hypothesis import strategies as st
from support.robust import read_page, tally

from condorkit.report.aggregate import aggregate
from condorkit.report.chart import nice_axis

BIG = sys.float_info.max
TINY = 5e-324
EXTREMES = [
    [1e308], [-1e308], [BIG], [-BIG], [0.0], [TINY], [-TINY], [0.0, TINY],
    [-1e308, 1e308], [-BIG, BIG], [BIG, BIG], [0.0, BIG], [TINY, BIG], [-BIG, TINY],
    [2.2250738585072014e-308, 2.2250738585072014e-308 * 3], [1e-300, 3e-300],
    [1e308, 1e308 * (1 + 2**-52)], [1.0, 1.0 + 2**-52], [-0.0, 0.0], [123456789.0] * 3,
    [1e-200, 3e-200], [-5.0, 1e-320, 7e300],
]


def check_axis(a: dict[str, Any], values: list[float]) -> None:
    ticks = a["ticks"]
    assert all(math.isfinite(t) for t in ticks), a
    assert len(ticks) >= 2 and ticks == sorted(ticks) and len(set(ticks)) == len(ticks), a
    assert a["min"] == ticks[0] and a["max"] == ticks[-1] and a["min"] < a["max"], a
    assert a["min"] <= min(values) and max(values) <= a["max"], (a, values)
    json.dumps(a, allow_nan=False)


# integer axes only ever get whole numbers: pair them with those cases only
AXIS_CASES = [(v, integer) for v in EXTREMES for integer in (False, True)
              if not integer or all(x.is_integer() for x in v)]


@pytest.mark.parametrize(("values", "integer"), AXIS_CASES,
                         ids=[",".join(f"{x:g}" for x in v) + ("-int" if i else "")
                              for v, i in AXIS_CASES])
def test_nice_axis_on_extreme_values(values: list[float], integer: bool) -> None:
    tally("input", 1, "chart axis values")
    check_axis(nice_axis(min(values), max(values), integer=integer), values)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4),
       st.booleans())
def test_nice_axis_on_any_finite_values(values: list[float], integer: bool) -> None:
    if integer:
        values = [float(math.floor(v)) for v in values]
    tally("input", 1, "generated chart axis values")
    check_axis(nice_axis(min(values), max(values), integer=integer), values)


def write(folder: Path, ys: list[float], xs: list[float] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    recs = [{"row": i + 1, "url": f"u{i}", "year": (xs[i] if xs else 2000 + i),
             "luminance": y} for i, y in enumerate(ys)]
    doc = ckjob.make_results({"start": 1, "count": len(recs), "key": "k"}, recs, 0.0, 1.0, "t")
    ckjob.write_results(str(folder / "results-1.json"), doc)


@pytest.mark.parametrize("density", [False, True])
@pytest.mark.parametrize("values", EXTREMES, ids=lambda v: ",".join(f"{x:g}" for x in v))
def test_the_page_is_written_for_extreme_values(tmp_path: Path, values: list[float],
                                                density: bool) -> None:
    """The values as luminance (y) and as year (x), both chart views."""
    tally("input", 1, "extreme values through aggregate")
    write(tmp_path / "results", values, xs=values)
    out = tmp_path / "scatter.html"
    report = aggregate([tmp_path / "results"], expected_rows=len(values), out_html=out,
                       density_threshold=0 if density else 1000, workers=1)
    assert report.found == len(values) and report.complete
    page = read_page(out)
    data = page.data
    assert data["mode"] == ("density" if density else "points")
    check_axis(data["axes"]["x"], values)
    check_axis(data["axes"]["y"], values)
    if density:
        bins = data["bins"]
        assert sum(c[2] for c in bins["cells"]) == len(values)
        assert all(0 <= c[0] < bins["nx"] and 0 <= c[1] < bins["ny"] for c in bins["cells"])
        assert all(math.isfinite(bins[k]) and bins[k] > 0 for k in ("dx", "dy"))
    else:
        assert [p[1] for p in data["points"]] == values
