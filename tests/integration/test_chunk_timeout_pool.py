"""A chunk that hangs on the pool does not run for ever (issue 15, class 3): ``chunk_timeout``
becomes the submit file's ``allowed_job_duration``, HTCondor holds the job when it passes, and
``condorkit wait`` / ``status`` report the chunk as held with that reason; the other chunks'
rows all arrive, the hung chunk's rows are reported missing by name (nothing lost in silence),
and ``resubmit --missing`` completes the job."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck, ck_json, switch
from support.robust import tally

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor


def test_a_hanging_chunk_is_held_at_its_wall_clock_limit(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("deadline", rows=9, chunk=3, max_retries=0, extra_toml="chunk_timeout = 8\n")
    submit_text = ck("mksubmit", cwd=d).stdout
    assert "allowed_job_duration    = 8" in submit_text
    hang = switch(d, "hang", 4, "3600")  # the first attempt of chunk 4 would sleep an hour
    ck_json("submit", cwd=d)
    waited = ck("wait", "--timeout", "240", cwd=d)
    tally("fault", 1, "a pool chunk that hangs past chunk_timeout")
    assert waited.returncode == 8, waited.stderr
    assert "4 (held)" in waited.stderr, waited.stderr
    st = {c["start"]: c for c in ck_json("status", cwd=d)["chunks"]}
    held = st[4]
    assert held["state"] == "held", held
    assert "duration" in held["hold_reason"].lower(), held
    assert held["reason"].startswith("held: ")
    assert st[1]["state"] == st[7]["state"] == "done"
    agg = ck("aggregate", "--json", "-o", str(d / "scatter.html"), cwd=d)
    assert agg.returncode == 5 and json.loads(agg.stdout)["missing"] == "4-6"
    hang.unlink()
    again = ck_json("resubmit", "--missing", cwd=d)["record"]
    assert [c["start"] for c in again["chunks"]] == [4]
    assert ck_json("wait", "--timeout", "240", cwd=d)["ok"]
    agg = ck("aggregate", "--json", "-o", str(d / "scatter.html"), cwd=d)
    assert agg.returncode == 0 and json.loads(agg.stdout)["found"] == 9
