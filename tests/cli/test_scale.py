"""Scale: the chart stays usable above the density threshold, and (slow) a 1,000,000-row job:
`mksubmit` covers every row exactly once and `aggregate` counts 1,000,000 result rows, both with
memory that does not grow with the row count beyond the data itself (stream, don't slurp).
Timings are measured in bench/scale_bench.py, never asserted here."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob
from support.robust import make_job, read_page, tally

from condorkit.condor.submit import parse_items
from condorkit.model.config import load_config
from condorkit.model.job import prepare


def write_job(folder: Path, rows: int, chunk: int, seed: int = 3) -> Path:
    """A job folder with an N-row manifest and N result rows (1 % errors) in chunk files."""
    rnd = random.Random(seed)
    years = [rnd.randint(1860, 2015) for _ in range(rows)]
    lines = [f"http://archive.invalid/p/img-{i}.jpg {y}\n" for i, y in enumerate(years, 1)]
    job = make_job(folder, "".join(lines), chunk=chunk)
    # the current job's chunk keys, so that aggregate takes these results as the job's own
    keys = prepare(job, load_config(job), write=False).keys
    res = job / "results"
    res.mkdir()
    for index, start in enumerate(range(1, rows + 1, chunk)):
        recs: list[dict[str, object]] = []
        for row in range(start, min(start + chunk, rows + 1)):
            rec: dict[str, object] = {"row": row, "url": f"http://archive.invalid/p/img-{row}.jpg",
                                      "year": years[row - 1]}
            if row % 100 == 0:
                rec["error"] = "fetch: HTTP 404 Not Found"
            else:
                rec["luminance"] = 0.2 + 0.5 * rnd.random()
            recs.append(rec)
        doc = ckjob.make_results({"start": start, "count": len(recs), "key": keys[index]}, recs,
                                 time.time(), 1.0, "photodemo/luminance.py")
        ckjob.write_results(str(res / f"results-{start}.json"), doc)
    return job


def test_density_view_above_the_threshold(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from condorkit.cli import main

    rows = 25_000
    job = write_job(tmp_path / "job", rows, 1000)
    tally("input", 1, "25,000-row job (density view)")
    capsys.readouterr()
    assert main(["aggregate", "-C", str(job), "-o", str(job / "scatter.html"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["found"] + report["errors"] == rows and report["density_mode"]
    page = read_page(job / "scatter.html")
    assert page.data["mode"] == "density" and "points" not in page.data
    assert "ck-density" in page.element_ids  # the page says it is a density view
    assert sum(c[2] for c in page.data["bins"]["cells"]) == report["found"]
    assert len(page.text) < 1_000_000


MEASURE = r"""
import json, resource, subprocess, sys
out = open(sys.argv[1], "wb")
code = subprocess.run(sys.argv[2:], stdout=out).returncode
print(json.dumps({"exit": code,
                  "kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def peak_rss_kib(argv: list[str], stdout: Path) -> int:
    """Peak RSS of ``argv`` alone: it runs as the only child of a fresh measuring process."""
    res = subprocess.run([sys.executable, "-c", MEASURE, str(stdout), *argv],
                         capture_output=True, text=True, check=True)
    fig = json.loads(res.stdout)
    assert fig["exit"] == 0, argv
    return int(fig["kib"])


@pytest.mark.slow
def test_a_million_rows_stream_through_mksubmit_and_aggregate(tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "condorkit"]
    peaks: dict[str, dict[int, int]] = {"mksubmit": {}, "aggregate": {}}
    for rows in (100_000, 1_000_000):
        job = write_job(tmp_path / f"job-{rows}", rows, 200)
        tally("input", 1, f"{rows:,}-row job")
        sub = tmp_path / f"submit-{rows}.sub"
        peaks["mksubmit"][rows] = peak_rss_kib([*cli, "mksubmit", "-C", str(job), "200"], sub)
        text = sub.read_text()
        items = parse_items(text)
        assert len(items) == rows // 200
        assert [int(i["start"]) for i in items] == list(range(1, rows + 1, 200))
        # every row in exactly one rows file (headers, and one line per row)
        total = 0
        for i in items:
            path = job / "chunks" / f"rows-{i['start']}.jsonl"
            with open(path, "rb") as fh:
                header = json.loads(fh.readline())
                n = sum(1 for _ in fh)
            assert header["start"] == int(i["start"]) == total + 1 and header["count"] == n
            total += n
        assert total == rows
        out = tmp_path / f"agg-{rows}.json"
        peaks["aggregate"][rows] = peak_rss_kib(
            [*cli, "aggregate", "-C", str(job), "-o", str(job / "scatter.html"), "--json"], out)
        report = json.loads(out.read_text())
        assert report["found"] + report["errors"] == rows and report["missing_count"] == 0
        assert report["errors"] == rows // 100
        page = read_page(job / "scatter.html")
        assert page.data["mode"] == "density" and len(page.text) < 1_000_000
        tally("rows_checked", rows)
        shutil.rmtree(job / "chunks")
    # memory per extra row: the data itself is a flag byte and two doubles per row (17 B) for
    # aggregate and nothing for mksubmit; slurping the rows as Python objects costs ~1 KB each
    for what, limit in (("mksubmit", 40), ("aggregate", 120)):
        per_row = (peaks[what][1_000_000] - peaks[what][100_000]) * 1024 / 900_000
        assert per_row < limit, (what, per_row, peaks)
