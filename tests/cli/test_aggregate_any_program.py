"""`condorkit aggregate` for a program that is not the photodemo (issue 11): the README's own
`map_rows` example gets a coverage report and a chart of what it returns, not "all errors"."""

from __future__ import annotations

from pathlib import Path

import pytest

from condorkit.cli import main

README_PROGRAM = '''import sys, ckjob
ckjob.map_rows(sys.argv[1], sys.argv[2], lambda row: {"size": len(row["url"])})
'''


def _job(folder: Path, program: str, second: str = "year:int") -> Path:
    folder.mkdir()
    (folder / "prog.py").write_text(program)
    lines = (f"http://example.invalid/{'x' * i}.jpg {1900 + i}\n" for i in range(1, 27))
    (folder / "manifest.txt").write_text("".join(lines))
    (folder / "condorkit.toml").write_text('program = "prog.py"\nchunk = 10\n'
                                           f'columns = ["url:url", "{second}"]\n')
    return folder


def test_readme_map_rows_example_charts_its_numbers(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = _job(tmp_path / "job", README_PROGRAM)
    assert main(["run", "-C", str(job), "-j", "2"]) == 0
    capsys.readouterr()
    assert main(["aggregate", "-C", str(job), "-o", str(job / "scatter.html")]) == 0
    err = capsys.readouterr().err
    assert "found 26, errors 0" in err
    assert "chart of size against year: 26 point(s)" in err  # the row's fields come along


def test_results_with_only_text_are_listed_and_said_to_be_unchartable(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = _job(tmp_path / "job", README_PROGRAM.replace('len(row["url"])', 'row["url"][-6:]'),
               "tag:str")
    assert main(["run", "-C", str(job), "-j", "2"]) == 0
    capsys.readouterr()
    assert main(["aggregate", "-C", str(job), "-o", str(job / "s.html")]) == 0
    err = capsys.readouterr().err
    assert "found 26, errors 0" in err
    assert "nothing to chart" in err and "the page lists the results in a table" in err
    assert 'id="ck-results"' in (job / "s.html").read_text()


def test_the_user_picks_x_and_y(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = README_PROGRAM.replace('{"size": len(row["url"])}',
                                     '{"size": len(row["url"]), "year2": row["year"] * 2}')
    job = _job(tmp_path / "job", program)
    assert main(["run", "-C", str(job), "-j", "2"]) == 0
    capsys.readouterr()
    assert main(["aggregate", "-C", str(job), "-o", str(job / "s.html"), "--x", "year2",
                 "--y", "size"]) == 0
    assert "chart of size against year2: 26 point(s)" in capsys.readouterr().err


def test_one_number_per_row_is_charted_against_the_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = _job(tmp_path / "job", README_PROGRAM, "tag:str")
    assert main(["run", "-C", str(job), "-j", "2"]) == 0
    capsys.readouterr()
    assert main(["aggregate", "-C", str(job), "-o", str(job / "s.html")]) == 0
    assert "chart of size against row: 26 point(s)" in capsys.readouterr().err
