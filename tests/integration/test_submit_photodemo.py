"""The tutorial's path on the real pool: `mksubmit 200 > submit.sub`, then the REAL `condor_submit`
(inside the pool) runs the photodemo with its bundle on real JPEGs served over HTTP; every results
file comes back and `condorkit aggregate` covers every row."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from condorkit.wrappers import ckjob
from support.pooljobs import ck, ck_json, remove_leftovers, write_photodemo

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = [pytest.mark.condor, pytest.mark.slow]

ROWS = 450  # 200 + 200 + 50: three jobs, the last one short


def test_condor_submit_runs_the_photodemo_and_aggregate_covers_every_row(
        pool: Pool, env_bundle: Any, photo_corpus: Any,
        http_server: Callable[..., Any]) -> None:
    server = http_server(photo_corpus[0].path.parent)
    d = write_photodemo(pool.job_dir("photodemo"), list(photo_corpus), server.base_url,
                        rows=ROWS, chunk=50, bundle=env_bundle.path)
    try:
        mk = ck("mksubmit", "200", cwd=d)
        assert mk.returncode == 0, mk.stderr
        (d / "submit.sub").write_text(mk.stdout)
        assert "queue start,count from (\n1,200\n201,200\n401,50\n)" in mk.stdout

        t0 = time.monotonic()
        sub = pool.exec(["condor_submit", "submit.sub"], cwd=d)
        assert sub.returncode == 0, sub.stderr + sub.stdout
        m = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)\.", sub.stdout)
        assert m and m.group(1) == "3", sub.stdout
        cluster = m.group(2)

        # condorkit follows the cluster condor_submit made (adopted from its job ads)
        done = ck_json("wait", "--cluster", cluster, "--timeout", "600", cwd=d, timeout=700)
        elapsed = time.monotonic() - t0
        print(f"\nphotodemo on the pool: {ROWS} rows, condor_submit -> all done in "
              f"{elapsed:.1f}s", file=sys.stderr)
        assert done["ok"], done
        assert [(c["start"], c["count"]) for c in done["chunks"]] == [
            (1, 200), (201, 200), (401, 50)]

        for start, count in ((1, 200), (201, 200), (401, 50)):
            doc = json.loads((d / "results" / f"results-{start}.json").read_text())
            assert ckjob.check_results(doc, start, count) == []
            assert doc["python"] == env_bundle.python  # the bundle's Python, not the worker's
            assert doc["errors"] == 0
        assert server.count(f"/{photo_corpus[0].path.name}") >= ROWS // len(photo_corpus)

        agg = ck("aggregate", "--json", "-o", str(d / "scatter.html"), cwd=d)
        assert agg.returncode == 0, agg.stderr
        report = json.loads(agg.stdout)
        assert (report["expected"], report["found"], report["errors"], report["missing_count"],
                report["duplicates"]) == (ROWS, ROWS, 0, 0, 0)
        assert (d / "scatter.html").stat().st_size > 0
    finally:
        remove_leftovers(d, pool.schedd())
