"""Injection on the real HTCondor pool: a job folder and a program whose names hold quotes,
spaces, `$(...)`, backticks, `;`, `queue` and markup, over a manifest of hostile values, runs to
completion through the schedd, the file transfer, the starter and the wrapper. Had anything
evaluated a name, the `exit 9` inside it would have failed the job (or the file would not be
found); every row must come back with its own value."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck, remove_leftovers, write_job
from support.robust import results_by_row, tally

from condorkit.condor.submit import expand_item, parse_items

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor

FOLDER = "it's \"q\" $(exit 9) `exit 9`; queue <b>фото"
PROGRAM = "prog;$(exit${IFS}9)`exit${IFS}9`<q>.py"
VALUES = ["queue", "$(exit${IFS}9)", "`exit${IFS}9`", "';rm${IFS}-rf${IFS}x;'",
          "</script><script>alert(1)</script>", "$(DOLLAR)$$(x)", "ends\\"]


def test_hostile_names_and_values_run_on_the_pool(pool: Pool) -> None:
    d = pool.job_dir("robust") / FOLDER
    d.mkdir()
    os.chmod(d, 0o1777)  # the pool user writes below it
    write_job(d, rows=len(VALUES), chunk=3, max_retries=0)
    shutil.move(d / "faultprog.py", d / PROGRAM)
    (d / "manifest.txt").write_text("".join(f"{v} {1900 + i}\n" for i, v in enumerate(VALUES)))
    tally("input", 1, "hostile folder + program + values on the pool")
    tally("fault", 2 + len(VALUES), "injection attempts on the pool")
    try:
        sub = ck("submit", f"--program={PROGRAM}", "--json", cwd=d)
        assert sub.returncode == 0, sub.stderr
        text = Path(json.loads(sub.stdout)["record"]["submit_file"]).read_text()
        ex = expand_item(text, parse_items(text)[0])
        assert ex.initialdir == str(d.resolve()) and ex.arguments[0] == PROGRAM
        wait = ck("wait", "--timeout", "240", cwd=d, timeout=300)
        assert wait.returncode == 0, wait.stderr
        recs = results_by_row(d)
        assert sorted(recs) == list(range(1, len(VALUES) + 1))
        assert [recs[n]["url"] for n in sorted(recs)] == VALUES
        assert all("luminance" in r for r in recs.values())
        agg = ck("aggregate", "-o", str(d / "scatter.html"), cwd=d)
        assert agg.returncode == 0, agg.stderr
    finally:
        remove_leftovers(d, pool.schedd())
