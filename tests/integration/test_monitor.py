"""Monitoring edge cases on the real test pool: wait's timeout, a run without an event log."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck, ck_json, switch

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor



def test_wait_times_out_while_a_chunk_still_runs(pool: Pool, job: Callable[..., Path]) -> None:
    d = job("timeout", rows=4, chunk=2)
    switch(d, "hang", 3, "600")
    rec = ck_json("submit", cwd=d)["record"]
    proc = ck("wait", "--timeout", "4", "--interval", "0.5", cwd=d)
    assert proc.returncode == 8, proc.stderr
    assert f"run {rec['cluster']} not finished after 4s" in proc.stderr
    assert "condorkit wait" in proc.stderr  # the hint
    st = ck_json("status", cwd=d)
    assert not st["finished"] and not st["ok"]
    states = {c["start"]: c["state"] for c in st["chunks"]}
    assert states[1] == "done" and states[3] in ("idle", "running")
    # a chunk is never run twice at once: submitting again is refused while its job is queued
    again = ck("submit", cwd=d)
    assert again.returncode == 2, again.stderr
    assert f"1 chunk(s) still have a job in the queue: 3 ({rec['cluster']}.1 " in again.stderr
    resub = ck("resubmit", "--missing", cwd=d)
    assert resub.returncode == 2 and "condorkit wait" in resub.stderr


def test_unwritable_log_folder_is_refused_before_submitting(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("nolog", rows=2, chunk=2)
    os.chmod(d / "logs", 0o755)  # the pool user could not write the event log or stdout/stderr
    sub = ck("submit", cwd=d)
    assert sub.returncode == 2, sub.stderr
    assert f"{d / 'logs'}: only root can write here" in sub.stderr
    assert "chmod 1777" in sub.stderr
    assert not pool.schedd().query(f'Iwd == "{d}"', projection=["ProcId"])
