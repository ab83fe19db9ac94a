"""The make_smaller example end to end: `condorkit run` brings each chunk's tarball back into
results/ next to its results file (the ``outputs`` option), the submit file transfers and remaps
it, `condorkit dry-run` finds it; pictures come out the right way up."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from condorkit.cli import main
from condorkit.condor.submit import expand_item, parse_items
from condorkit.demo import write_corpus

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "make_smaller"


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list]:
    for k in list(os.environ):
        if k.startswith(("CONDORKIT_", "SMALLER_", "PHOTODEMO_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("SMALLER_MAX_SIDE", "200")  # small outputs keep the test quick
    folder = tmp_path / "job"
    folder.mkdir()
    shutil.copy(EXAMPLE / "make_smaller.py", folder)
    toml = (EXAMPLE / "condorkit.toml").read_text()
    (folder / "condorkit.toml").write_text(toml.replace("chunk = 100", "chunk = 2"))
    files = write_corpus(tmp_path / "images", 5, sizes=[(480, 360), (360, 480)], seed=21,
                         variants=["exif-rotated", "rgb", "gray", "progressive", "truncated"])
    (folder / "manifest.txt").write_text("".join(f"{f.path}\n" for f in files))
    return folder, files


def upright_landscape(path: Path) -> bool:
    with Image.open(path) as im:
        w, h = ImageOps.exif_transpose(im).size
    return w > h


@pytest.mark.parametrize("granularity", ["chunk", "auto"])
def test_run_returns_every_chunks_tarball(job: tuple[Path, list], granularity: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder, files = job
    assert main(["run", "-C", str(folder), "-j", "2", "--granularity", granularity,
                 "--no-speculate"]) == 0
    capsys.readouterr()
    results = folder / "results"
    docs = [json.loads(p.read_text()) for p in sorted(results.glob("results-*.json"))]
    assert [d["start"] for d in docs] == [1, 3, 5]
    records = {r["row"]: r for d in docs for r in d["records"]}
    assert sorted(records) == [1, 2, 3, 4, 5]
    assert "error" in records[5] and records[5]["error"].startswith("decode: ")
    for row in range(1, 5):
        rec = records[row]
        tar_path = results / rec["archive"]
        assert tar_path.is_file(), rec
        with tarfile.open(tar_path) as tar:
            member = tar.extractfile(rec["file"])
            assert member is not None
            im = Image.open(io.BytesIO(member.read()))
        assert max(im.size) == 200 and im.size == (rec["width"], rec["height"])
        assert (im.width > im.height) == upright_landscape(files[row - 1].path), rec
    assert not list((folder / ".condorkit" / "scratch").glob("*/smaller-*.tar"))


def test_submit_file_transfers_and_remaps_the_tarball(job: tuple[Path, list],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = job
    assert main(["mksubmit", "-C", str(folder)]) == 0
    text = capsys.readouterr().out
    line = [x for x in text.splitlines() if x.startswith("transfer_output_files")][0]
    assert line.split("=", 1)[1].split(",") == [" results-$(start).json", " smaller-$(start).tar"]
    remaps = [x for x in text.splitlines() if x.startswith("transfer_output_remaps")][0]
    assert "smaller-$(start).tar=results/smaller-$(start).tar" in remaps
    items = parse_items(text)
    ex = expand_item(text, items[1])  # HTCondor's own expansion of the second chunk
    assert ex.transfer_output_files == ("results-3.json", "smaller-3.tar")


def test_dry_run_finds_the_tarball(job: tuple[Path, list],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = job
    assert main(["dry-run", "-C", str(folder), "1"]) == 0
    err = capsys.readouterr().err
    assert "smaller-3.tar" in err and "MISSING" not in err


def test_missing_output_fails_the_chunk(job: tuple[Path, list],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    folder, _ = job
    toml = (folder / "condorkit.toml").read_text()
    (folder / "condorkit.toml").write_text(toml.replace(
        '"smaller-{start}.tar"', '"smaller-{start}.tar", "extra-{start}.bin"'))
    code = main(["run", "-C", str(folder), "-j", "2", "--granularity", "chunk", "--retries", "0",
                 "--no-speculate"])
    assert code != 0
    assert "missing output extra-1.bin" in capsys.readouterr().err
    assert not list((folder / "results").glob("results-*.json"))
