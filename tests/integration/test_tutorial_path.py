"""The tutorial's way on the real test pool (issue 11): `mksubmit > submit.sub`, then plain
`condor_submit submit.sub` as the pool user, then `condorkit status/wait/history/where` with no
flags find that cluster in the job folder's event log and adopt it; a job folder the jobs' owner
cannot write is refused up front with a clear message."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck, ck_json

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor


def test_condor_submit_then_status_wait_history_where_without_flags(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("tutorial", rows=8, chunk=3)
    made = ck("mksubmit", "3", cwd=d)
    assert made.returncode == 0, made.stderr
    assert "warning" not in made.stderr
    (d / "submit.sub").write_text(made.stdout)
    sub = pool.exec(["condor_submit", "submit.sub"], cwd=d)
    assert sub.returncode == 0, sub.stderr
    assert "3 job(s) submitted" in sub.stdout
    cluster = int(sub.stdout.split("submitted to cluster")[1].strip(" .\n"))

    st = ck_json("status", cwd=d)  # no run record yet: adopted from the event log
    assert st["cluster"] == cluster and sum(st["counts"].values()) == 3
    assert (d / ".condorkit" / "runs" / f"{cluster}.json").is_file()
    done = ck_json("wait", "--timeout", "180", cwd=d)
    assert done["ok"] and done["rows_done"] == 8
    hist = ck_json("history", cwd=d)
    assert hist["cluster"] == cluster
    where = ck_json("where", cwd=d)
    assert sum(h["chunks"] for h in where["hosts"]) == 3

    # a second tutorial submission of the same folder is the newer run and is followed
    again = pool.exec(["condor_submit", "submit.sub"], cwd=d)
    assert again.returncode == 0, again.stderr
    assert ck_json("status", cwd=d)["cluster"] > cluster
    assert ck_json("wait", "--timeout", "180", cwd=d)["ok"]


def test_a_folder_only_root_can_write_is_refused_up_front(
        pool: Pool, job: Callable[..., Path]) -> None:
    if os.geteuid() != 0:
        pytest.fail("the test pool runs as root (see scripts/condor-pool)")
    d = job("shut", rows=3, chunk=3)
    os.chmod(d / "results", 0o755)
    made = ck("mksubmit", cwd=d)
    assert made.returncode == 0 and made.stdout.startswith("#")
    assert "mksubmit: warning:" in made.stderr and "chmod 1777" in made.stderr
    refused = ck("submit", cwd=d)
    assert refused.returncode == 2, refused.stderr
    assert "only root can write here" in refused.stderr and "--spool" in refused.stderr
    assert not (d / ".condorkit" / "current-run.json").exists()
