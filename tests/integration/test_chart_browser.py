"""The written scatter.html in real headless Chromium, with no network.

The chart library cannot load (all traffic goes to a dead proxy), so the page must fall back to
its inline SVG: one circle per point, or binned rectangles above the density threshold. A
screenshot must show a drawn chart, not a blank page. Skipped only when Chromium is absent and
not in CI (CI=true makes a missing Chromium a failure).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from condorkit.wrappers import ckjob
from PIL import Image, ImageStat

from condorkit.report.aggregate import aggregate

pytestmark = pytest.mark.browser

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("headless Chromium is required in CI: apt-get install -y chromium")
    pytest.skip("headless Chromium not installed (apt-get install -y chromium)")


def run_chromium(binary: str, tmp: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    args = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
        "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
        "--virtual-time-budget=15000", "--window-size=1200,1000", *extra,
        page.resolve().as_uri(),
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)


def dump_dom(binary: str, tmp: Path, page: Path) -> str:
    res = run_chromium(binary, tmp, page, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "</html>" in res.stdout, res.stderr[-2000:]
    return res.stdout


PAYLOAD = "</script><script>document.documentElement.setAttribute('data-pwned','1')</script>"


def make_results(folder: Path, rows: int, chunk: int = 100) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(1, rows + 1, chunk):
        records: list[dict[str, Any]] = []
        for row in range(start, min(start + chunk, rows + 1)):
            y = 1860 + row * 7 % 156  # every year 1860..2015 (2001 and 2015 too) by row 156
            rec: dict[str, Any] = {"row": row, "url": f"http://example.invalid/{row}.jpg",
                                   "year": y}
            if row == 3:
                rec["url"] += "?" + PAYLOAD + "\u2028&\"'"
            if row % 97 == 0:
                rec["error"] = "HTTPError: 404 " + PAYLOAD
            else:
                rec["luminance"] = round(0.15 + (row * 31 % 60) / 100 + (y - 1860) / 1000, 6)
            records.append(rec)
        doc = ckjob.make_results({"start": start, "count": len(records), "key": "k"},
                                 records, 0.0, 1.0, "luminance.py")
        ckjob.write_results(str(folder / f"results-{start}.json"), doc)


def page_data(page: Path) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="ck-data">(.*?)</script>',
                  page.read_text(encoding="utf-8"), re.S)
    assert m
    return json.loads(m.group(1))


def test_offline_fallback_draws_one_circle_per_point(chromium: str, tmp_path: Path) -> None:
    make_results(tmp_path / "results", 400)
    page = tmp_path / "scatter.html"
    rep = aggregate([tmp_path / "results"], expected_rows=420, out_html=page)
    assert rep.points == 396 and not rep.density_mode
    dom = dump_dom(chromium, tmp_path, page)
    assert len(re.findall(r'<circle[^>]*class="ck-point"', dom)) == rep.points == 396
    assert 'data-renderer="svg"' in dom
    assert "Drawn offline as SVG" in dom
    assert not re.search(r"<html[^>]*data-pwned", dom)  # the payload never ran
    assert "data-pwned" in dom  # ... but is shown, escaped, in tooltips and the table
    # axis labels computed from the data reach past 2015
    ticks = [int(t) for t in re.findall(r'class="ck-tick"[^>]*>(\d{4})</text>', dom)]
    assert min(ticks) <= 1860 and max(ticks) >= 2015
    years = {p[0] for p in page_data(page)["points"]}
    assert {1860, 2001, 2015} <= years
    # every circle lies inside the plot area
    plot = re.search(r'<rect class="ck-plot" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
                     r'height="([\d.]+)"', dom)
    assert plot
    x0, y0, w, h = (float(v) for v in plot.groups())
    centers = [(float(a), float(b)) for a, b in
               re.findall(r'<circle class="ck-point" cx="([-\d.]+)" cy="([-\d.]+)"', dom)]
    assert len(centers) == 396
    assert all(x0 < cx < x0 + w and y0 < cy < y0 + h for cx, cy in centers)
    # errors table shows the payload as text
    assert "HTTPError: 404 &lt;/script&gt;&lt;script&gt;" in dom


def test_density_view_above_threshold(chromium: str, tmp_path: Path) -> None:
    make_results(tmp_path / "results", 600)
    page = tmp_path / "scatter.html"
    rep = aggregate([tmp_path / "results"], expected_rows=600, out_html=page,
                    density_threshold=200)
    assert rep.density_mode
    cells = page_data(page)["bins"]["cells"]
    dom = dump_dom(chromium, tmp_path, page)
    assert 'class="ck-point"' not in dom
    assert len(re.findall(r'<rect[^>]*class="ck-bin"', dom)) == len(cells) > 10
    assert "Density view:" in dom and "density view:" in dom
    assert not re.search(r"<html[^>]*data-pwned", dom)


def test_screenshot_is_not_blank(chromium: str, tmp_path: Path) -> None:
    make_results(tmp_path / "results", 300)
    page = tmp_path / "scatter.html"
    aggregate([tmp_path / "results"], expected_rows=300, out_html=page)
    png = tmp_path / "shot.png"
    res = run_chromium(chromium, tmp_path, page, f"--screenshot={png}")
    assert res.returncode == 0 and png.exists(), res.stderr[-2000:]
    with Image.open(png) as im:
        rgb = im.convert("RGB")
        stddev = ImageStat.Stat(rgb.convert("L")).stddev[0]
        # the chart region (below the summary) holds many point-blue pixels
        w, h = rgb.size
        chart = rgb.crop((0, int(h * 0.25), w, int(h * 0.8)))
        px = chart.tobytes()
        blue = sum(1 for r, b in zip(px[0::3], px[2::3], strict=True)
                   if b > 150 and r < 140 and b - r > 60)
    assert stddev > 10
    assert blue > 2000
