"""Pool options and extra submit commands on the command line: mksubmit, dag and graph --dag
place them (checked by HTCondor's parser); a bad one is a one-line error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from condorkit.cli import main
from condorkit.condor.submit import parse_items

MANIFEST = "".join(f"http://127.0.0.1:1/img{i}.jpg {1900 + i}\n" for i in range(12))
HEAD = 'program = "prog.py"\ncolumns = ["url:url", "year:int"]\n'
TOML = (HEAD + 'request_memory = "256MB"\nmax_materialize = 50\n\n'
        '[submit]\n"+DESIRED_Sites" = "\\"SiteA\\""\n')


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


def test_mksubmit_places_options_table_and_cli_commands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import htcondor2

    d = make_job(tmp_path / "job")
    code, out, err = run(capsys, "mksubmit", "-C", str(d), "5", "--project-name", "Lab",
                         "--max-idle", "20", "--submit-cmd", "periodic_remove=NumJobStarts > 4",
                         "--memory-retry", "1GB")
    assert code == 0, err
    sub = htcondor2.Submit(out)
    assert sub["My.ProjectName"] == '"Lab"'
    assert sub["max_idle"] == "20" and sub["max_materialize"] == "50"
    assert sub["MY.DESIRED_Sites"] == '"SiteA"'
    assert sub["periodic_remove"] == "NumJobStarts > 4"
    assert "HoldReasonCode == 34" in sub["periodic_release"]
    assert sub["request_memory"].startswith("ifThenElse(MemoryUsage")
    assert out.count("request_memory") == 1
    assert len(parse_items(out)) == 3  # the queue statement is intact


@pytest.mark.parametrize(("args", "message"), [
    (["--submit-cmd", "executable=/bin/sh"], "[submit] executable (command line): condorkit "
                                             "writes executable itself"),
    (["--submit-cmd", "+Bad=1 +"], "[submit] +Bad (command line)"),
    (["--submit-cmd", "novalue"], "--submit-cmd 'novalue' is not KEY=VALUE"),
    (["--accounting-group", "a b"], "option accounting_group (command line)"),
    (["--request-memory", "max({1,"], "request_memory"),
])
def test_a_bad_command_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    d = make_job(tmp_path / "job")
    code, out, err = run(capsys, "mksubmit", "-C", str(d), *args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err


def test_a_bad_table_entry_names_the_file(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    d = make_job(tmp_path / "job", HEAD + "[submit]\nqueue = 5\n")
    code, _, err = run(capsys, "mksubmit", "-C", str(d))
    assert code == 2 and "[submit] queue" in err and "condorkit.toml" in err


def test_dag_node_files_carry_the_commands_but_not_the_throttles(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_job(tmp_path / "job")
    code, _, err = run(capsys, "dag", "-C", str(d), "--chunk", "5", "--project-name", "Lab")
    assert code == 0, err
    for name in ("dag-chunk.sub", "dag-aggregate.sub"):
        text = (d / ".condorkit" / name).read_text()
        assert 'My.ProjectName          = "Lab"' in text and '"SiteA' in text
        assert "max_materialize" not in text


def test_graph_dag_task_nodes_carry_the_commands(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = tmp_path / "g.txt"
    graph.write_text("a b\n")
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, "graph", "--dag", str(out_dir), "--project-name", "Lab",
                       "--submit-cmd", "+Tag=\"x\"", str(graph), "--", "/bin/echo")
    assert code == 0, err
    text = (out_dir / "task.sub").read_text()
    assert 'My.ProjectName          = "Lab"' in text and 'My.Tag                  = "x"' in text
    code, _, err = run(capsys, "graph", "--dag", str(out_dir), "--submit-cmd", "log=x",
                       str(graph), "--", "/bin/echo")
    assert code == 2 and "condorkit writes log itself" in err


def test_target_minutes_sizes_chunks_from_a_measured_dry_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    d = make_job(tmp_path / "job", HEAD)
    (d / "manifest.txt").write_text("".join(f"http://127.0.0.1:1/i{i}.jpg {1900 + i}\n"
                                            for i in range(400)))
    (d / "prog.py").write_text("import sys, time, ckjob\n"
                               "ckjob.map_rows(sys.argv[1], sys.argv[2], "
                               "lambda r: time.sleep(0.02) or {'x': 1})\n")
    code, out, err = run(capsys, "mksubmit", "-C", str(d), "--target-minutes", "0.02")
    assert code == 0, err
    m = re.search(r"a dry-run of 20 row\(s\) took ([\d.]+)s .*chunk = (\d+) rows", err)
    assert m, err
    chunk = int(m.group(2))
    assert 1 <= chunk <= 60  # 1.2 s at >= 0.02 s per row
    items = parse_items(out)
    assert int(items[0]["count"]) == chunk and sum(int(i["count"]) for i in items) == 400
    code, _, err = run(capsys, "mksubmit", "-C", str(d), "--target-minutes", "0")
    assert code == 2 and "must be positive" in err
