"""Parity between the local backend and HTCondor: the same executable, arguments and input files
for every chunk (HTCondor's own expansion of the submit file, and the schedd's job ads)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.pooljobs import ck_json, remove_leftovers, write_job

from condorkit.condor.render import render_submit
from condorkit.condor.submit import expand_item, parse_items
from condorkit.model.config import load_config
from condorkit.model.job import ChunkTask, Job, prepare
from condorkit.model.scratch import ScratchSpec

if TYPE_CHECKING:
    from conftest import Pool


def _job(folder: Path) -> Job:
    """A job with an extra input file and a bundle, so every kind of input is transferred."""
    write_job(folder, rows=11, chunk=4)
    (folder / "lookup.csv").write_text("a,b\n")
    with tarfile.open(folder / "env.tar.gz", "w:gz") as tar:  # a tarball, never unpacked here
        tar.add(folder / "lookup.csv", "lookup.csv")
    cfg = load_config(folder, {"input_files": ("lookup.csv",), "bundle": "env.tar.gz"})
    return prepare(folder, cfg)


def task_spec(job: Job, task: ChunkTask) -> ScratchSpec:
    """What the local scheduler runs for a whole chunk (its wrapper, arguments and inputs)."""
    return ScratchSpec(job.wrapper, task.arguments, task.inputs,
                       (task.output, *job.outputs(task.chunk.start)), f"chunk-{task.chunk.start}")


def test_local_tasks_equal_htcondors_expansion_of_the_submit_file(tmp_path: Path) -> None:
    job = _job(tmp_path / "job")
    text = render_submit(job)
    items = parse_items(text)
    assert [(int(i["start"]), int(i["count"])) for i in items] == [
        (c.start, c.count) for c in job.chunks]
    for task, item in zip(job.tasks(), items, strict=True):
        spec = task_spec(job, task)
        ex = expand_item(text, item)
        base = Path(ex.initialdir)
        assert base == job.dir
        assert Path(ex.executable) == spec.executable
        assert ex.arguments == spec.arguments
        assert ex.arguments[:3] == ("-b", "env.tar.gz", "-k")
        assert tuple(base / f for f in ex.transfer_input_files) == spec.inputs
        assert {p.name for p in spec.inputs} == {
            "faultprog.py", "ckjob.py", f"rows-{task.chunk.start}.jsonl", "lookup.csv",
            "env.tar.gz"}
        assert ex.transfer_output_files == spec.outputs == (task.output,)


@pytest.fixture
def pool_dir(pool: Pool) -> Iterator[Path]:
    d = pool.job_dir("parity")
    yield d
    remove_leftovers(d, pool.schedd())


@pytest.mark.condor
def test_schedd_job_ads_equal_the_local_tasks(pool: Pool, pool_dir: Path) -> None:
    write_job(pool_dir, rows=11, chunk=4)
    (pool_dir / "lookup.csv").write_text("a,b\n")
    job = prepare(pool_dir, load_config(pool_dir, {"input_files": ("lookup.csv",)}))
    rec = ck_json("submit", "--input", "lookup.csv", cwd=pool_dir)["record"]
    assert ck_json("wait", "--timeout", "180", cwd=pool_dir)["ok"]

    ads = pool.schedd().history(
        f"ClusterId == {rec['cluster']}",
        projection=["ProcId", "Cmd", "Arguments", "Iwd", "TransferInput", "TransferOutput",
                    "CondorkitStart", "CondorkitCount", "CondorkitJob", "JobLeaseDuration"])
    by_proc = {int(ad["ProcId"]): ad for ad in ads}
    assert sorted(by_proc) == [c["proc"] for c in rec["chunks"]]
    for entry, task in zip(rec["chunks"], job.tasks(), strict=True):
        ad = by_proc[entry["proc"]]
        spec = task_spec(job, task)
        assert (ad["CondorkitStart"], ad["CondorkitCount"]) == (task.chunk.start, task.chunk.count)
        assert ad["CondorkitJob"] == job.manifest.sha256[:16]
        assert Path(ad["Iwd"]) == job.dir
        assert Path(ad["Cmd"]) == spec.executable
        assert tuple(ad["Arguments"].split()) == spec.arguments
        assert tuple(job.dir / f for f in ad["TransferInput"].split(",")) == spec.inputs
        assert ad["TransferOutput"] == task.output
        assert ad["JobLeaseDuration"] == 20
