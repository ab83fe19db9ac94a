"""Never queue a chunk twice, also with late materialization: the jobs a cluster has not made
yet still count as queued for their chunks (condor/queueads.queued_chunks), so a second
`condorkit submit` is refused naming them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck, ck_json, switch

from condorkit.condor.queueads import UNMADE, queued_chunks

if TYPE_CHECKING:
    from conftest import Pool

pytestmark = pytest.mark.condor


def test_unmade_jobs_of_a_late_materializing_cluster_count_as_queued(
        pool: Pool, job: Callable[..., Path]) -> None:
    d = job("late", rows=12, chunk=3, extra_toml="max_materialize = 1\n")
    switch(d, "hang", 1, "60")  # the one job made first keeps its slot
    cluster = ck_json("submit", cwd=d)["record"]["cluster"]
    queued = queued_chunks(d)
    assert set(queued) == {1, 4, 7, 10}, queued
    assert all(queued[s].endswith(UNMADE) for s in (4, 7, 10)), queued
    assert queued[4].startswith(f"{cluster}.1 ")
    again = ck("submit", "--all", cwd=d)
    assert again.returncode == 2, again.stderr
    assert "4 chunk(s) still have a job in the queue" in again.stderr
