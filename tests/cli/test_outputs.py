"""Outputs never replace what is not ours, and failures to write are one line (issue 15,
classes 1 and 8), through the public CLI: ``aggregate -o``, ``run --joblog``, ``dag --name``
at device nodes, FIFOs, sockets, folders and links; a full disk (a real, small tmpfs) while
rows files are written or a scratch folder is filled; a read-only ``results/`` (a read-only
mount); a missing output folder; negative retries and pauses.

Device nodes are made with mknod in the test's own folder (never the system's /dev/null: the
code before this fix would have replaced it)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.robust import assert_nothing_lost, cli, make_job, run_job, tally

from condorkit.demo import write_corpus

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="mknod and mount need root")
ROWS = 6


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from condorkit.cli import main

    base = tmp_path_factory.mktemp("outputs-job")
    files = write_corpus(base / "img", ROWS, sizes=((40, 30),), seed=3, variants=("rgb",))
    job = make_job(base / "job", [f"{f.path} {f.year}" for f in files], chunk=3)
    assert main(["run", "-C", str(job), "-j", "2"]) == 0
    (job / "expected.json").write_text(json.dumps([[str(f.path), f.year] for f in files]))
    return job


@pytest.fixture
def job(finished_job: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "job"
    shutil.copytree(finished_job, copy, symlinks=True)
    return copy


def expected(job: Path) -> list[tuple[str, int]]:
    return [(u, y) for u, y in json.loads((job / "expected.json").read_text())]


def one_line_error(res: object, code: int, *words: str) -> str:
    assert res.code == code, (res.code, res.err)  # type: ignore[attr-defined]
    err = res.err  # type: ignore[attr-defined]
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, err)
    return lines[0]


def snapshot(p: Path) -> tuple[int, int, int]:
    st = os.lstat(p)
    return st.st_mode, st.st_ino, st.st_rdev


def make_node(p: Path, what: str) -> None:
    if what == "fifo":
        os.mkfifo(p)
    elif what == "null":
        os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    elif what == "chardev":
        os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 8))  # like /dev/random
    elif what == "blockdev":
        os.mknod(p, stat.S_IFBLK | 0o600, os.makedev(7, 250))  # like a loop device
    elif what == "folder":
        p.mkdir()
    elif what == "dangling":
        p.symlink_to(p.parent / "nowhere" / "x.html")
    elif what == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()
    else:
        raise AssertionError(what)


REFUSED = ["fifo", "chardev", "blockdev", "folder", "dangling", "socket"]


# ----------------------------------------------------------------------------- aggregate -o


@needs_root
@pytest.mark.parametrize("what", REFUSED)
def test_aggregate_never_replaces_what_is_not_a_regular_file(
        job: Path, capsys: pytest.CaptureFixture[str], what: str) -> None:
    target = job / "out.html"
    make_node(target, what)
    before = snapshot(target)
    res = cli(capsys, "aggregate", "-C", str(job), "-o", str(target))
    tally("fault", 1, f"aggregate -o at a {what}")
    line = one_line_error(res, 10, str(target))
    assert "not a regular file" in line or "does not exist" in line, line
    assert snapshot(target) == before  # untouched: same kind, same inode


@needs_root
@pytest.mark.parametrize("via_link", [False, True])
def test_aggregate_writes_through_a_null_device(job: Path, capsys: pytest.CaptureFixture[str],
                                                via_link: bool) -> None:
    null = job / "null"
    make_node(null, "null")
    target = null
    if via_link:
        target = job / "link.html"
        target.symlink_to(null)
    before = snapshot(null), snapshot(target)
    res = cli(capsys, "aggregate", "-C", str(job), "-o", str(target))
    tally("input", 1, "aggregate -o a null device" + (" via a link" if via_link else ""))
    assert res.code == 0, res.err
    assert (snapshot(null), snapshot(target)) == before


def test_aggregate_through_a_link_keeps_the_link(job: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    real = job / "pages" / "real.html"
    real.parent.mkdir()
    real.write_text("old")
    link = job / "scatter-link.html"
    link.symlink_to(real)
    res = cli(capsys, "aggregate", "-C", str(job), "-o", str(link))
    tally("input", 1, "aggregate -o a link to a regular file")
    assert res.code == 0, res.err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "ck-data" in real.read_text()
    assert not [p for p in real.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("where", ["missing/out.html", "missing/deeper/out.html",
                                   "file.txt/out.html"])
def test_aggregate_into_a_missing_folder_is_one_line(job: Path, where: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (job / "file.txt").write_text("a file, not a folder")
    res = cli(capsys, "aggregate", "-C", str(job), "-o", str(job / where))
    tally("fault", 1, f"aggregate -o {where}")
    one_line_error(res, 10, "cannot write the page")
    assert not (job / "missing").exists()


# ----------------------------------------------------------------------------- run --joblog


def test_joblog_fifo_is_refused_without_hanging(job: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "joblog.fifo"
    os.mkfifo(fifo)
    shutil.rmtree(job / "results")
    proc = subprocess.run([sys.executable, "-m", "condorkit", "run", "-C", str(job), "-j", "1",
                           "--joblog", str(fifo)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    tally("fault", 1, "--joblog at a FIFO without a reader")
    assert proc.returncode == 10, proc.stderr
    assert "Traceback" not in proc.stderr and "FIFO" in proc.stderr, proc.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@needs_root
@pytest.mark.parametrize("what", ["chardev", "blockdev", "folder", "dangling", "socket"])
def test_joblog_refuses_what_is_not_a_regular_file(job: Path, what: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    target = job / "joblog.tsv"
    make_node(target, what)
    before = snapshot(target)
    res = run_job(capsys, job, "--joblog", str(target))
    tally("fault", 1, f"--joblog at a {what}")
    one_line_error(res, 10, str(target))
    assert snapshot(target) == before


@pytest.mark.parametrize("where", ["file.txt/joblog.tsv", "file.txt/sub/joblog.tsv"])
def test_unwritable_joblog_is_one_line(job: Path, where: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    (job / "file.txt").write_text("a file, not a folder")
    res = run_job(capsys, job, "--joblog", str(job / where))
    tally("fault", 1, f"--joblog {where}")
    one_line_error(res, 10, "joblog")


@needs_root
def test_joblog_through_a_null_device_and_a_link(job: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    null = tmp_path / "null"
    make_node(null, "null")
    before = snapshot(null)
    shutil.rmtree(job / "results")
    assert run_job(capsys, job, "--joblog", str(null)).code == 0
    assert snapshot(null) == before
    real = tmp_path / "real.tsv"
    real.write_text("")
    (tmp_path / "link.tsv").symlink_to(real)
    shutil.rmtree(job / "results")
    assert run_job(capsys, job, "--joblog", str(tmp_path / "link.tsv")).code == 0
    assert (tmp_path / "link.tsv").is_symlink() and real.read_text().startswith("Seq\tHost")
    assert "done" in (tmp_path / "link-condorkit.tsv").read_text()  # condorkit's own columns
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("null")) == ["null"]
    tally("input", 2, "--joblog null device, link to a file")
    assert_nothing_lost(job, expected(job))


# ----------------------------------------------------------------------------- dag --name


@needs_root
@pytest.mark.parametrize("what", ["fifo", "chardev", "folder", "dangling"])
def test_dag_file_never_replaces_what_is_not_a_regular_file(
        job: Path, what: str, capsys: pytest.CaptureFixture[str]) -> None:
    target = job / "my.dag"
    make_node(target, what)
    before = snapshot(target)
    res = cli(capsys, "dag", "-C", str(job), "--name", "my.dag")
    tally("fault", 1, f"dag --name at a {what}")
    one_line_error(res, 10, "my.dag")
    assert snapshot(target) == before


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("args", [["--retries", "-1"], ["--retries", "-100"],
                                  ["--backoff", "-1"], ["--backoff", "nan"],
                                  ["--speculate-after", "-5"], ["--speculate-after", "nan"]])
def test_negative_retries_and_pauses_are_refused(job: Path, args: list[str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(job / "results")
    res = run_job(capsys, job, *args)
    tally("input", 1, f"run {' '.join(args)}")
    one_line_error(res, 2, args[0].lstrip("-").split("-")[0])
    assert not list((job / "results").glob("results-*.json"))


@pytest.mark.parametrize("args", [["--retries", "-1"], ["-j", "0"], ["--task-timeout", "-1"]])
def test_graph_numbers_are_checked(tmp_path: Path, args: list[str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    g = tmp_path / "g.txt"
    g.write_text("a b\n")
    res = cli(capsys, "graph", *args, str(g), "true")
    tally("input", 1, f"graph {' '.join(args)}")
    one_line_error(res, 2)


# ----------------------------------------------------------------------------- real mounts


@contextlib.contextmanager
def mounted(where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_up(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


def small_job(folder: Path, rows: int, chunk: int) -> Path:
    """A job in ``folder`` whose images live outside it (next to the mount point)."""
    img = folder.parent.parent / "img"
    files = write_corpus(img, 2, sizes=((40, 30),), seed=4, variants=("rgb",))
    lines = [f"{files[i % 2].path} {1900 + i % 100}" for i in range(rows)]
    return make_job(folder, lines, chunk=chunk)


@needs_root
@pytest.mark.parametrize("command", ["mksubmit", "run", "dry-run", "dag"])
def test_disk_full_while_writing_rows_files(tmp_path: Path, command: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with mounted(tmp_path / "disk", "size=256k") as disk:
        job = small_job(disk / "job", rows=2000, chunk=10)  # 200 rows files, ~250 KB of rows
        extra = ["-j", "1"] if command == "run" else []
        res = cli(capsys, command, "-C", str(job), *extra)
        tally("fault", 1, f"disk full during {command} (rows files)")
        one_line_error(res, 10, "No space left on device")
        chunks = job / "chunks"  # rows files are staged: none half-written anywhere
        assert not chunks.exists() or not [p for p in chunks.iterdir() if p.name.endswith(".tmp")]
        assert not (job / ".condorkit" / "rows-staging").exists()
        scratch = job / ".condorkit" / "scratch"
        assert not scratch.exists() or not list(scratch.iterdir())


@needs_root
def test_disk_full_while_filling_a_scratch_folder(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with mounted(tmp_path / "disk", "size=1m") as disk:
        job = small_job(disk / "job", rows=4, chunk=2)
        assert cli(capsys, "mksubmit", "-C", str(job)).code == 0
        fill_up(disk)
        res = run_job(capsys, job, "--granularity", "chunk")
        tally("fault", 1, "disk full while copying the wrapper into a scratch folder")
        one_line_error(res, 10, "No space left on device")
        assert not list((job / ".condorkit" / "scratch").iterdir())  # nothing left behind
        (disk / "filler").unlink()
        res = run_job(capsys, job)
        assert res.code == 0, res.err  # and the next run works
        files = write_corpus(tmp_path / "img", 2, sizes=((40, 30),), seed=4, variants=("rgb",))
        assert_nothing_lost(job, [(str(files[i % 2].path), 1900 + i) for i in range(4)])


@needs_root
@pytest.mark.parametrize("folder", ["results", "logs"])
def test_read_only_folders_are_one_line(job: Path, folder: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(job / "results")
    with mounted(job / folder, "ro", "size=64k"):
        res = run_job(capsys, job)
        tally("fault", 1, f"read-only {folder}/")
        one_line_error(res, 10, "Read-only file system", folder)


@pytest.mark.parametrize("target", ["results/results-1.json", "manifest.txt", "condorkit.toml",
                                    "chunks/rows-1.jsonl", "luminance.py", "link-to-manifest",
                                    ".condorkit/ckjob.py"])
def test_the_page_never_replaces_a_file_of_the_job(job: Path, target: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (job / "link-to-manifest").symlink_to(job / "manifest.txt")
    real = (job / target).resolve()
    before = real.read_bytes()
    res = cli(capsys, "aggregate", "-C", str(job), "-o", str(job / target))
    tally("fault", 1, f"aggregate -o {target}")
    one_line_error(res, 2, "would replace a file of the job")
    assert real.read_bytes() == before


@pytest.mark.parametrize("what", ["fifo", "folder", "dangling"])
def test_a_project_file_that_is_not_a_regular_file(job: Path, what: str) -> None:
    (job / "condorkit.toml").unlink()
    make_node(job / "condorkit.toml", what)
    proc = subprocess.run([sys.executable, "-m", "condorkit", "mksubmit", "-C", str(job)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    tally("fault", 1, f"condorkit.toml is a {what}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "condorkit.toml is" in proc.stderr and proc.stdout == ""
