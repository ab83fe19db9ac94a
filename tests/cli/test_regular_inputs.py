"""Only regular files are read as results or manifests (issue 15, class 4): a FIFO, a folder, a
socket or a link to /dev/zero in ``results/`` or as the manifest is a clear error or an invalid
file, never a hang; a results file over the cap is invalid without being read; a manifest line
without an end is refused after 1 MiB. Commands that could hang or exhaust memory on the code
before the fix run in a subprocess with a time limit and an address-space limit (RLIMIT_AS),
so a regression fails the test instead of the machine."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.robust import cli, make_job, tally

from condorkit.demo import write_corpus

ROWS = 6
LIMIT_AS = 1 << 30  # bytes of address space for the commands under test
TIMEOUT = 120


def condorkit(*args: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))

    return subprocess.run([sys.executable, "-m", "condorkit", *args], capture_output=True,
                          text=True, timeout=TIMEOUT, preexec_fn=limit,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from condorkit.cli import main

    base = tmp_path_factory.mktemp("inputs-job")
    files = write_corpus(base / "img", ROWS, sizes=((40, 30),), seed=8, variants=("rgb",))
    job = make_job(base / "job", [f"{f.path} {f.year}" for f in files], chunk=3)
    assert main(["run", "-C", str(job), "-j", "2"]) == 0
    return job


@pytest.fixture
def job(finished_job: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "job"
    shutil.copytree(finished_job, copy, symlinks=True)
    return copy


def plant(path: Path, what: str) -> None:
    if path.exists() or path.is_symlink():
        path.unlink()
    if what == "fifo":
        os.mkfifo(path)
    elif what == "dev-zero":
        path.symlink_to("/dev/zero")
    elif what == "folder":
        path.mkdir()
    elif what == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    elif what == "huge":  # 1 GiB, sparse: costs no disk
        with open(path, "wb") as fh:
            fh.truncate(1 << 30)
    else:
        raise AssertionError(what)


KINDS = {"fifo": "FIFO", "dev-zero": "character device", "folder": "folder",
         "socket": "socket", "huge": "larger than the"}


@pytest.mark.parametrize("what", list(KINDS))
def test_aggregate_reports_what_is_not_a_results_file(job: Path, what: str) -> None:
    plant(job / "results" / "results-4.json", what)
    res = condorkit("aggregate", "-C", str(job), "-o", str(job / "out.html"), "--json")
    tally("fault", 1, f"results-4.json is a {what} (aggregate)")
    assert res.returncode == 5, res.stderr  # rows 4-6 missing, named
    assert "Traceback" not in res.stderr
    assert "rows missing from the results: 4-6" in res.stderr
    line = [ln for ln in res.stderr.splitlines() if "INVALID" in ln]
    assert len(line) == 1 and KINDS[what] in line[0], res.stderr
    report = json.loads(res.stdout)
    assert report["found"] + report["errors"] == 3 and report["missing_count"] == 3


@pytest.mark.parametrize("what", list(KINDS))
def test_run_resumes_past_what_is_not_a_results_file(job: Path, what: str) -> None:
    """The resume check reads every results file: none of these may hang or blow it up; the
    chunk is computed again (our own results folder: the bad entry is replaced)."""
    plant(job / "results" / "results-4.json", what)
    if what == "folder":  # a folder cannot be replaced by a file: that is an error, one line
        res = condorkit("run", "-C", str(job), "-j", "1")
        tally("fault", 1, "results-4.json is a folder (run)")
        assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
        return
    res = condorkit("run", "-C", str(job), "-j", "1")
    tally("fault", 1, f"results-4.json is a {what} (run)")
    assert res.returncode == 0, res.stderr
    assert "1 already valid" in res.stderr, res.stderr
    agg = condorkit("aggregate", "-C", str(job), "-o", str(job / "out.html"))
    assert agg.returncode == 0, agg.stderr


@pytest.mark.parametrize("what", ["fifo", "dev-zero", "folder", "socket"])
@pytest.mark.parametrize("command", ["mksubmit", "run", "aggregate"])
def test_a_manifest_that_is_not_a_regular_file(job: Path, what: str, command: str) -> None:
    plant(job / "manifest.txt", what)
    extra = ["-o", str(job / "out.html")] if command == "aggregate" else []
    res = condorkit(command, "-C", str(job), *extra)
    tally("fault", 1, f"manifest is a {what} ({command})")
    assert res.returncode in (2, 3), res.stderr
    assert "Traceback" not in res.stderr and "does not exist" not in res.stderr, res.stderr
    assert "not a regular file" in res.stderr, res.stderr


@pytest.mark.parametrize("size", [(1 << 20) + 1, 8 << 20, 2 << 30])
def test_a_manifest_line_without_an_end_is_refused_after_1_mib(job: Path, size: int) -> None:
    """The 2 GiB case is a sparse file of NUL bytes with no line end: the reader stops at the
    cap (before this fix it held the whole line, several GiB)."""
    with open(job / "manifest.txt", "wb") as fh:
        fh.truncate(size)
    res = condorkit("mksubmit", "-C", str(job))
    tally("input", 1, f"manifest of one {size}-byte line")
    assert res.returncode == 3, res.stderr[-2000:]
    assert "manifest.txt:1: line longer than 1,048,576 bytes" in res.stderr, res.stderr[-2000:]


def test_a_manifest_line_of_exactly_the_cap_is_read(job: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    img = next((job.parent.parent / "img").glob("*")) if False else None  # noqa: F841
    url = "/" + "a" * ((1 << 20) - 6) + ".jpg"
    (job / "manifest.txt").write_text(f"{url[:-5]} 1999\n")
    assert len(url[:-5] + " 1999") <= 1 << 20
    res = cli(capsys, "mksubmit", "-C", str(job))
    tally("input", 1, "manifest line just under the cap")
    assert res.code == 0, res.err[-500:]


@pytest.mark.parametrize("what", ["fifo", "dev-zero", "folder"])
@pytest.mark.parametrize("which", ["program", "input file"])
def test_program_and_input_files_must_be_regular_files(job: Path, what: str,
                                                       which: str) -> None:
    if which == "program":
        plant(job / "luminance.py", what)
        args = ["mksubmit", "-C", str(job)]
    else:
        plant(job / "extra.dat", what)
        args = ["mksubmit", "-C", str(job), "--input", "extra.dat"]
    res = condorkit(*args)
    tally("fault", 1, f"{which} is a {what}")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{which} " in res.stderr and "not a regular file" in res.stderr, res.stderr
    assert res.stdout == ""
