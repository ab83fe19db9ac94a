"""--container-image on the command line: mksubmit, dag and graph --dag place it (HTCondor's
parser reads the files back, and its submit turns the vanilla job into a container job); a
missing image file or a bad name is a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from condorkit.cli import main

MANIFEST = "".join(f"/img{i}.jpg {1900 + i}\n" for i in range(6))
TOML = 'program = "prog.py"\ncolumns = ["path:str", "year:int"]\n'


def make_job(d: Path, toml: str = TOML) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "prog.py").write_text("import sys\n")
    (d / "manifest.txt").write_text(MANIFEST)
    (d / "condorkit.toml").write_text(toml)
    return d


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_mksubmit_and_dag_place_the_image(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import htcondor2

    d = make_job(tmp_path / "job", TOML + 'container_image = "py.sif"\n')
    (d / "py.sif").write_bytes(b"SIF")
    code, out, err = run(capsys, "mksubmit", "-C", str(d), "3")
    assert code == 0, err
    sub = htcondor2.Submit(out)
    assert sub["container_image"] == "py.sif" and sub["universe"] == "vanilla"
    code, _, err = run(capsys, "dag", "-C", str(d), "--container-image", "docker://ckdemo:1")
    assert code == 0, err
    for name in ("dag-chunk.sub", "dag-aggregate.sub"):
        sub = htcondor2.Submit((d / ".condorkit" / name).read_text())
        assert sub["container_image"] == "docker://ckdemo:1"


def test_graph_dag_task_nodes_carry_the_image(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    graph = tmp_path / "g.txt"
    graph.write_text("a b\n")
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "graph", "--dag", str(out_dir), "--container-image",
                       "/cvmfs/img", str(graph), "--", "/bin/echo")
    assert code == 0, err
    assert "container_image         = /cvmfs/img\n" in (out_dir / "task.sub").read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--container-image", "missing.sif"], "option container_image (command line): "),
    (["--container-image", "a b.sif"], "option container_image (command line): 'a b.sif' is "
                                       "not a container image name"),
    (["--submit-cmd", "container_image=x.sif"], "container_image has its own condorkit option"),
])
def test_a_bad_image_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       args: list[str], message: str) -> None:
    d = make_job(tmp_path / "job")
    code, out, err = run(capsys, "mksubmit", "-C", str(d), *args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2
