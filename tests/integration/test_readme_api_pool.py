"""The public Python API's pool part as the README shows it: submit, wait, aggregate."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import remove_leftovers, write_job
from support.readme import python_block

if TYPE_CHECKING:
    from conftest import Pool


@pytest.mark.condor
def test_readme_pool_api_example_runs(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = pool.job_dir("readme-api")
    job_dir = write_job(parent / "my-job", rows=7, chunk=3)
    job_dir.chmod(0o1777)
    monkeypatch.chdir(parent)
    scope: dict[str, object] = {}
    try:
        exec(compile(python_block("condorkit API: pool"), "README.md", "exec"), scope)
    finally:
        remove_leftovers(job_dir, pool.schedd())
    sub, status, chart = scope["sub"], scope["status"], scope["chart"]
    for obj in (sub, status, chart):
        assert dataclasses.is_dataclass(obj)
    assert sub.submitted is not None and len(sub.submitted.record.chunks) == 3  # type: ignore
    assert chart.found == 7 and not chart.missing  # type: ignore[attr-defined]
    assert Path(job_dir / "scatter.html").is_file()
