"""`mksubmit`: stdout is the submit file only, HTCondor parses it, every row in one chunk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob
from support.shared import shared_file

from condorkit.cli import main
from condorkit.condor.submit import expand_item, parse_items

REPO = Path(__file__).resolve().parents[2]


def make_job(folder: Path, manifest: str | bytes, toml: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "photodemo" / "luminance.py", folder / "luminance.py")
    data = manifest.encode() if isinstance(manifest, str) else manifest
    (folder / "manifest.txt").write_bytes(data)
    if toml:
        (folder / "condorkit.toml").write_text(toml)
    return folder


def mksubmit(job: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["mksubmit", "-C", str(job), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def synthetic_manifest(n: int) -> str:
    return "".join(f"http://127.0.0.1:1/img{i}.jpg {1880 + i % 140}\n" for i in range(n))


def rows_of_items(job: Path, text: str) -> list[int]:
    """Every row number the submit file's items reach, read from the files each job receives."""
    rows: list[int] = []
    for item in parse_items(text):
        ex = expand_item(text, item)
        rows_file = next(f for f in ex.transfer_input_files if f.startswith("chunks/rows-"))
        header, recs = ckjob.read_rows(str(Path(ex.initialdir) / rows_file))
        assert header["start"] == int(item["start"]) and header["count"] == int(item["count"])
        rows += [r["row"] for r in recs]
    return rows


def test_stdout_is_only_a_submit_file_htcondor_accepts(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", synthetic_manifest(45))
    code, out, err = mksubmit(job, "10", capsys=capsys)
    assert code == 0
    assert out.startswith("# condorkit") and out.rstrip().endswith(")")
    assert "45 rows" in err and "mksubmit" not in out.splitlines()[-1]
    items = parse_items(out)
    assert [(i["start"], i["count"]) for i in items] == [
        ("1", "10"), ("11", "10"), ("21", "10"), ("31", "10"), ("41", "5")]
    assert rows_of_items(job, out) == list(range(1, 46))


@pytest.mark.parametrize("chunk, n_chunks, last", [("200", 28, 176), ("7", 797, 4)])
def test_real_manifest_chunks(tmp_path: Path, capsys: pytest.CaptureFixture[str], chunk: str,
                              n_chunks: int, last: int) -> None:
    job = make_job(tmp_path / "job", shared_file("data/photodemo-manifest.txt").read_bytes())
    code, out, _ = mksubmit(job, chunk, capsys=capsys)
    items = parse_items(out)
    assert code == 0 and len(items) == n_chunks and items[-1]["count"] == str(last)
    if chunk == "200":
        assert rows_of_items(job, out) == list(range(1, 5577))


def test_max_caps_rows_without_an_empty_tail(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", synthetic_manifest(30))
    _, out, _ = mksubmit(job, "10", "25", capsys=capsys)
    assert [(i["start"], i["count"]) for i in parse_items(out)] == [
        ("1", "10"), ("11", "10"), ("21", "5")]
    _, out, _ = mksubmit(job, "10", "1000", capsys=capsys)
    assert len(parse_items(out)) == 3


def test_each_job_gets_only_its_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", synthetic_manifest(12))
    _, out, _ = mksubmit(job, "5", capsys=capsys)
    ex = expand_item(out, parse_items(out)[1])
    assert "manifest.txt" not in " ".join(ex.transfer_input_files)
    assert ex.arguments == ("luminance.py", "rows-6.jsonl", "results-6.json")
    assert ex.transfer_output_files == ("results-6.json",)


def test_options_from_project_file_env_and_flags(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    job = make_job(tmp_path / "job", synthetic_manifest(5), toml=(
        'request_memory = "3GB"\nrequest_cpus = 2\nmax_retries = 5\n'
        'requirements = \'OpSys == "LINUX"\'\nlog_dir = "mylogs"\ninput_files = ["extra.dat"]\n'))
    (job / "extra.dat").write_text("x")
    monkeypatch.setenv("CONDORKIT_REQUEST_CPUS", "3")
    _, out, _ = mksubmit(job, "2", "--request-disk", "7GB", capsys=capsys)
    from condorkit.condor.submit import _htcondor

    sub = _htcondor().Submit(out)
    assert sub["request_memory"] == "3GB" and sub["request_cpus"] == "3"
    assert sub["request_disk"] == "7GB" and sub["max_retries"] == "5"
    assert sub["requirements"] == 'OpSys == "LINUX"'
    assert sub["log"] == "mylogs/condorkit.log"
    assert "extra.dat" in sub["transfer_input_files"]


def test_bad_manifest_line_is_named_and_stdout_stays_empty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", "a.jpg 1900\nb.jpg nineteen\n")
    code, out, err = mksubmit(job, "10", capsys=capsys)
    assert code == 3 and out == ""
    assert f"{job / 'manifest.txt'}:2: year must be an integer" in err
    assert "Traceback" not in err


def test_unknown_option_in_project_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", "a.jpg 1900\n", toml="chunksize = 3\n")
    code, out, err = mksubmit(job, capsys=capsys)
    assert code == 2 and out == "" and "unknown option(s) chunksize" in err


def test_job_folder_with_spaces_quotes_and_dollars(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "it's a \"job\" $(HOME) folder", synthetic_manifest(4))
    _, out, _ = mksubmit(job, "2", capsys=capsys)
    ex = expand_item(out, parse_items(out)[0])
    assert ex.initialdir == str(job)
    assert ex.executable == str(job / ".condorkit" / "wrapper.sh")


def test_manifest_values_never_reach_the_submit_file(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    nasty = ["http://h/x.jpg?a=$(HOME)&b=`id`", "http://h/queue.jpg", "http://h/';rm%20-rf.jpg",
             "http://h/</script>.jpg", 'http://h/"q".jpg']
    job = make_job(tmp_path / "job", "".join(f"{u} 1999\n" for u in nasty))
    _, out, _ = mksubmit(job, "2", capsys=capsys)
    for u in nasty:
        assert u not in out
    assert len(parse_items(out)) == 3
    rows = [r["url"] for i in (1, 3, 5) for r in ckjob.read_rows(
        str(job / "chunks" / f"rows-{i}.jsonl"))[1]]
    assert rows == nasty


def test_template_override_by_name_and_strict_undefined(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job(tmp_path / "job", synthetic_manifest(3))
    (job / "templates").mkdir()
    (job / "templates" / "submit.sub.j2").write_text(
        "# custom\nexecutable = {{ executable }}\narguments = {{ arguments }}\n"
        "queue start,count from (\n{% for c in chunks %}{{ c.start }},{{ c.count }}\n"
        "{% endfor %})\n")
    code, out, _ = mksubmit(job, "2", capsys=capsys)
    assert code == 0 and out.startswith("# custom") and len(parse_items(out)) == 2
    (job / "templates" / "submit.sub.j2").write_text("x = {{ no_such_value }}\n")
    code, out, err = mksubmit(job, "2", capsys=capsys)
    assert code == 4 and out == "" and "no_such_value" in err


def test_mksubmit_entry_point_in_a_subprocess(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", synthetic_manifest(9))
    exe = Path(sys.executable).parent / "mksubmit"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c",
                                          "import sys; from condorkit.cli import mksubmit_main;"
                                          " sys.exit(mksubmit_main())"]
    proc = subprocess.run([*cmd, "4"], cwd=job, capture_output=True, text=True,
                          env={**os.environ, "CONDORKIT_CHUNK": "99"})
    assert proc.returncode == 0, proc.stderr
    assert len(parse_items(proc.stdout)) == 3
    assert json.loads((job / "chunks" / "rows-9.jsonl").read_text().splitlines()[0])["count"] == 1
