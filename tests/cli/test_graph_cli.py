"""`condorkit graph` and `condorkit dag` on the command line (the local backend; no pool)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from condorkit.cli import main

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "examples" / "pkgbuild"
GMAKE_LINE = "devel/gmake audio/cdparanoia audio/abcde audio/id3v2 misc/mkcue"
BUILT = {"audio/cd-discid", "textproc/gsed", "audio/id3", "shells/bash", "devel/libtool-base",
         "audio/id3lib", "devel/m4", "devel/bison", "lang/f2c"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_pkgbuild_example_reports_exactly_the_dependents_of_gmake(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "graph", "-j", "3", str(PKG / "packages.txt"), "--",
                         str(PKG / "build.sh"))
    lines = out.splitlines()
    assert code == 8  # RunFailed: a task failed
    assert lines.count("failure") == 1 and lines.count("success") == 9
    assert lines[lines.index("failure") + 1] == GMAKE_LINE
    assert {x[len("build "):] for x in lines if x.startswith("build ")} == BUILT | {"devel/gmake"}
    assert "configure failed" in err  # the task's stderr passes through
    assert "14 task(s): 9 succeeded, 1 failed, 4 skipped" in err
    assert "1 task(s) failed: devel/gmake" in err


def test_tags_and_reorder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "graph", "-j", "2", "-l", "-r", "--reorder",
                       str(PKG / "packages.txt"), str(PKG / "build.sh"))
    lines = out.splitlines()
    assert code == 8
    nums = [int(x.split()[1]) for x in lines]
    assert nums == sorted(nums) and nums[0] == 1 and max(nums) == 14
    assert all(re.match(r"^[01] \d+ ", x) for x in lines)  # worker 0 or 1, then task number
    assert any(x.endswith(" 10 " + GMAKE_LINE) for x in lines)


def test_reorder_input_puts_tagged_output_back_in_task_order(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "graph", "-j", "3", "-l", str(PKG / "packages.txt"),
                    str(PKG / "build.sh"))
    tagged = tmp_path / "tagged.txt"
    tagged.write_text(out)
    code, ordered, _ = run(capsys, "graph", "--reorder-input", str(tagged))
    assert code == 0
    assert ordered.splitlines()[:4] == ["build audio/cd-discid", "success", "build textproc/gsed",
                                        "success"]
    assert sorted(ordered.splitlines()) == sorted(x.split(" ", 1)[1] for x in out.splitlines())


def test_json_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "graph", "--json", str(PKG / "packages.txt"),
                       str(PKG / "build.sh"))
    doc = json.loads(out)
    assert code == 8 and doc["backend"] == "local"
    status = {r["name"]: r["status"] for r in doc["results"]}
    assert {t for t, s in status.items() if s == "skipped"} == {
        "audio/cdparanoia", "audio/abcde", "audio/id3v2", "misc/mkcue"}


def test_all_good_exits_zero_and_stdin_mode(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    g = tmp_path / "g.txt"
    g.write_text("a b\nb c\n")
    code, out, _ = run(capsys, "graph", "--stdin", str(g), "--", "sed", "s/^/got /")
    assert code == 0 and out == "got a\nsuccess\ngot b\nsuccess\ngot c\nsuccess\n"


@pytest.mark.parametrize("text,code,pattern", [
    ("a b\nb a\n", 9, r"cycle: a -> b -> a \(lines 1, 2\)"),
    ("a b\na b\n", 9, r"g\.txt:2: duplicate edge a -> b"),
    ("a b c\n", 9, r"g\.txt:1: unknown line"),
])
def test_graph_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: int,
                      pattern: str) -> None:
    g = tmp_path / "g.txt"
    g.write_text(text)
    rc, out, err = run(capsys, "graph", str(g), "true")
    assert rc == code and out == "" and re.search(pattern, err)


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = tmp_path / "g.txt"
    g.write_text("a\n")
    assert run(capsys, "graph", str(g))[0] == 2
    assert run(capsys, "graph")[0] == 2
    assert run(capsys, "graph", str(g), str(tmp_path / "nope.sh"))[0] == 2


def test_graph_dag_is_written_for_the_pool(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "graph", "--dag", str(tmp_path / "run"),
                       str(PKG / "packages.txt"), str(PKG / "build.sh"))
    assert code == 0 and "condor_submit_dag graph.dag" in err
    text = (tmp_path / "run" / "graph.dag").read_text()
    assert text.count("\nJOB ") == 14 and text.count("\nPARENT ") == 16
    assert "PARENT t10 CHILD t4\n" in text  # devel/gmake (task 10) before audio/cdparanoia (4)


def test_dag_command_writes_the_job_dag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "manifest.txt").write_text("".join(f"/img{i}.jpg {1900 + i}\n" for i in range(7)))
    (job / "prog.py").write_text("print('x')\n")
    (job / "condorkit.toml").write_text('columns = ["url:url", "year:int"]\n')
    code, out, err = run(capsys, "dag", "-C", str(job), "--program", "prog.py", "--chunk", "3",
                         "--max-retries", "4", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["nodes"] == ["chunk-1", "chunk-4", "chunk-7"] and doc["final"] == "aggregate"
    assert "RETRY chunk-7 4" in (job / "condorkit.dag").read_text()
    assert "condor_submit_dag condorkit.dag" in err
    code, _, err = run(capsys, "dag", "-C", str(job), "--status")
    assert code == 7 and "no node status file" in err


def test_python_dash_m_runs_the_example(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "condorkit", "graph", "-j", "2",
                           "packages.txt", "./build.sh"], cwd=PKG, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 8 and GMAKE_LINE in proc.stdout.splitlines()
