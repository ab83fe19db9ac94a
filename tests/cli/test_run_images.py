"""Every image variant of the demo corpus (and a few more broken inputs) through the real
photodemo program, end to end: each row ends as a value or a recorded error, the chunk goes on,
rows in == rows out."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from support.robust import (
    aggregate_job,
    assert_nothing_lost,
    assert_report_complete,
    make_job,
    read_page,
    run_job,
    tally,
)

from condorkit.demo import DECODABLE_VARIANTS, VARIANTS, write_corpus

# what the recorded error must say for each broken input
BROKEN = {
    "truncated": "decode: OSError",
    "empty": "decode: UnidentifiedImageError",
    "text": "decode: UnidentifiedImageError",
    "bomb": "decode: DecompressionBombError",
}


def rms_luminance(path: Path) -> float:
    """The tutorial's formula, computed independently of the program."""
    with Image.open(path) as im:
        r, g, b = ImageStat.Stat(im.convert("RGB")).rms
    return math.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 256


@pytest.mark.parametrize("kernel", ["auto", "pillow"])
def test_every_corpus_variant_ends_as_a_value_or_a_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        kernel: str) -> None:
    """``auto`` uses the program's fast JPEG kernel when its packages are installed."""
    monkeypatch.setenv("PHOTODEMO_KERNEL", kernel)
    images = tmp_path / "images"
    files = write_corpus(images, 2 * len(VARIANTS), sizes=((64, 48), (40, 56)), seed=5,
                         variants=VARIANTS)
    extra = images / "extra"
    extra.mkdir()
    (extra / "a-folder.jpg").mkdir()  # a folder where a file should be
    garbage_tail = extra / "jpeg-with-garbage-after-EOI.jpg"
    garbage_tail.write_bytes(files[0].path.read_bytes() + os.urandom(3000))
    not_really_png = extra / "jpeg-named.png"
    not_really_png.write_bytes(files[0].path.read_bytes())
    header_only = extra / "header-only.jpg"
    header_only.write_bytes(files[0].path.read_bytes()[:200])
    dangling = extra / "dangling-link.jpg"
    dangling.symlink_to(extra / "nowhere.jpg")
    expected = [(str(f.path), f.year) for f in files] + [
        (str(extra / "a-folder.jpg"), 1990), (str(garbage_tail), 1991),
        (str(not_really_png), 1992), (str(header_only), 1993), (str(dangling), 1994)]
    tally("input", len(expected), "image files")
    tally("fault", 2 * len(BROKEN) + 3, "broken image files")
    job = make_job(tmp_path / "job", [f"{u} {y}" for u, y in expected], chunk=5)
    res = run_job(capsys, job)
    assert res.code == 0, res.err
    recs = assert_nothing_lost(job, expected)

    for n, f in enumerate(files, start=1):
        rec = recs[n]
        if f.variant in DECODABLE_VARIANTS:
            assert "luminance" in rec, (f.variant, rec)
            if f.variant in ("rgb", "progressive", "exif-rotated", "cmyk", "gif", "webp"):
                assert rec["luminance"] == pytest.approx(rms_luminance(f.path), rel=1e-9)
            assert rec["luminance"] > 0.01, (f.variant, rec)  # not a blank decode
        else:
            assert BROKEN[f.variant] in rec["error"], (f.variant, rec)
    k = len(files)
    assert "fetch: no such file" in recs[k + 1]["error"]  # the folder
    assert recs[k + 2]["luminance"] == recs[1]["luminance"]  # trailing garbage is ignored
    assert recs[k + 3]["luminance"] == recs[1]["luminance"]  # content, not extension, decides
    assert "decode:" in recs[k + 4]["error"]
    assert "fetch: no such file" in recs[k + 5]["error"]
    # the chunk goes on: in some chunk, a row after each kind of broken file has a value
    for variant in BROKEN:
        bad = [n for n, f in enumerate(files, start=1) if f.variant == variant]
        assert any("luminance" in recs[m] for n in bad
                   for m in range(n + 1, (n - 1) // 5 * 5 + 6) if m in recs), variant

    n_errors = sum(1 for r in recs.values() if "error" in r)
    assert n_errors == 2 * len(BROKEN) + 3
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 0, agg.err
    assert_report_complete(report, len(expected), errors=n_errors)
    page = read_page(job / "scatter.html")
    assert sorted(p[2] for p in page.data["points"]) == sorted(
        n for n, r in recs.items() if "luminance" in r)
    assert sorted(e[0] for e in page.data["errors"]) == sorted(
        n for n, r in recs.items() if "error" in r)


def test_a_chunk_of_only_broken_files_still_writes_its_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = write_corpus(tmp_path / "images", 4, seed=3, variants=("empty", "text", "bomb",
                                                                    "truncated"))
    expected = [(str(f.path), f.year) for f in files]
    tally("input", len(expected), "chunk of broken files only")
    job = make_job(tmp_path / "job", [f"{u} {y}" for u, y in expected], chunk=4)
    assert run_job(capsys, job).code == 0
    recs = assert_nothing_lost(job, expected)
    assert all("error" in r for r in recs.values())
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 0
    assert_report_complete(report, 4, errors=4)
