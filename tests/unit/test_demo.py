"""Tests for condorkit.demo: photo-like images, corpus variants, manifests, the demo job."""

from __future__ import annotations

import io
import math
import random
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from condorkit.demo import (
    DECODABLE_VARIANTS,
    JPEG_VARIANTS,
    VARIANTS,
    YEAR_MAX,
    YEAR_MIN,
    CorpusFile,
    make_demo_job,
    make_photo,
    write_corpus,
    write_manifest,
)
from condorkit.errors import UsageError
from condorkit.model.manifest import Columns, iter_rows

# the tutorial's columns (examples/photodemo/condorkit.toml)
PHOTO = Columns.parse(["url:url", "year:int"])

# ------------------------------------------------------------------ "photo-like" measures


def entropy_bits(im: Image.Image) -> float:
    """Shannon entropy of the luminance histogram (bits): 0 for flat, ~7-7.7 for photos."""
    hist = im.convert("L").histogram()
    n = sum(hist)
    return -sum(c / n * math.log2(c / n) for c in hist if c)


def jpeg_bytes_per_pixel(im: Image.Image, quality: int = 90) -> float:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return len(buf.getvalue()) / (im.width * im.height)


def fine_detail_ratio(im: Image.Image) -> float:
    """RMS of what an 8x down-and-up scaling loses, over the luminance stddev.

    Near 1 for pure noise (all variation is pixel-scale), well below 1 for images with structure.
    """
    lum = im.convert("L")
    small = lum.resize((max(1, lum.width // 8), max(1, lum.height // 8)), Image.Resampling.BOX)
    back = small.resize(lum.size, Image.Resampling.BILINEAR)
    residual = ImageStat.Stat(ImageChops.difference(lum, back)).rms[0]
    return residual / ImageStat.Stat(lum).stddev[0]


def is_photo_like(im: Image.Image) -> bool:
    rgb = im.convert("RGB")
    return (
        min(ImageStat.Stat(rgb).stddev) > 12
        and entropy_bits(rgb) > 6.0
        and 0.05 < jpeg_bytes_per_pixel(rgb) < 0.8
        and 0.08 < fine_detail_ratio(rgb) < 0.6
    )


def test_the_measures_reject_flat_colour_and_pure_noise() -> None:
    flat = Image.new("RGB", (320, 240), (90, 120, 150))
    gradient = Image.radial_gradient("L").resize((320, 240)).convert("RGB")
    noise = Image.frombytes("RGB", (320, 240), random.Random(1).randbytes(320 * 240 * 3))
    assert not is_photo_like(flat)
    assert not is_photo_like(gradient)
    assert fine_detail_ratio(gradient) < 0.05  # smooth: no texture at all
    assert not is_photo_like(noise)
    assert fine_detail_ratio(noise) > 0.9  # all variation is pixel-scale
    assert jpeg_bytes_per_pixel(noise) > 0.8


@pytest.mark.parametrize("seed", range(8))
def test_photos_are_photo_like(seed: int) -> None:
    im = make_photo(seed, 320, 240)
    assert im.mode == "RGB" and im.size == (320, 240)
    assert min(ImageStat.Stat(im).stddev) > 12
    assert entropy_bits(im) > 6.0
    assert 0.05 < jpeg_bytes_per_pixel(im) < 0.8
    assert 0.08 < fine_detail_ratio(im) < 0.6


def test_large_photo_is_photo_like() -> None:
    im = make_photo(5, 1600, 1200)  # composed at a reduced size, grain added at full size
    assert im.size == (1600, 1200)
    assert is_photo_like(im)


def test_photos_are_deterministic_per_seed() -> None:
    a, b = make_photo(42, 200, 150), make_photo(42, 200, 150)
    assert a.tobytes() == b.tobytes()
    assert make_photo(43, 200, 150).tobytes() != a.tobytes()


def test_seeds_give_varied_pictures() -> None:
    means = {round(ImageStat.Stat(make_photo(s, 96, 72).convert("L")).mean[0]) for s in range(12)}
    assert len(means) >= 6


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_photo_modes(mode: str) -> None:
    im = make_photo(3, 120, 90, mode=mode)
    assert im.mode == mode
    assert im.size == (120, 90)


def test_bad_arguments_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="too small"):
        make_photo(1, 4, 100)
    with pytest.raises(UsageError, match="mode"):
        make_photo(1, 64, 64, mode="P")
    with pytest.raises(UsageError, match="unknown image variant"):
        write_corpus(tmp_path, 1, variants=("rgb", "tiff"))


# ------------------------------------------------------------------ corpus variants


@pytest.fixture(scope="module")
def every_variant(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CorpusFile]:
    folder = tmp_path_factory.mktemp("variants")
    files = write_corpus(folder, len(VARIANTS), sizes=((160, 120),), seed=7, variants=VARIANTS)
    return {f.variant: f for f in files}


def test_corpus_names_and_sizes(every_variant: dict[str, CorpusFile]) -> None:
    assert set(every_variant) == set(VARIANTS)
    for i, v in enumerate(VARIANTS):
        f = every_variant[v]
        assert f.path.is_absolute() and f.path.name.startswith(f"img{i:04d}-{v}.")
    for v in ("empty", "text", "truncated") + JPEG_VARIANTS:
        assert every_variant[v].path.suffix == ".jpg"


@pytest.mark.parametrize("variant", DECODABLE_VARIANTS)
def test_decodable_variants_decode(every_variant: dict[str, CorpusFile], variant: str) -> None:
    f = every_variant[variant]
    with Image.open(f.path) as opened:
        opened.load()
        im: Image.Image = opened
        assert im.size == (f.width, f.height) == (160, 120)
        expected_format = {"png": "PNG", "png16": "PNG", "palette-alpha": "PNG", "gif": "GIF",
                           "webp": "WEBP"}.get(variant, "JPEG")
        assert im.format == expected_format
        expected_mode = {"gray": "L", "cmyk": "CMYK", "png16": "I;16", "gif": "P",
                         "palette-alpha": "P"}.get(variant, "RGB")
        assert im.mode == expected_mode
        if im.mode == "I;16":  # Pillow's I;16 -> L conversion clips instead of scaling
            im = im.convert("I").point(lambda v: v * (1 / 257))
        assert ImageStat.Stat(im.convert("L")).stddev[0] > 8  # a picture, not a blank


def test_progressive_and_baseline(every_variant: dict[str, CorpusFile]) -> None:
    with Image.open(every_variant["progressive"].path) as im:
        assert im.info.get("progressive")
    with Image.open(every_variant["rgb"].path) as im:
        assert not im.info.get("progressive")


def test_exif_rotated_has_orientation(every_variant: dict[str, CorpusFile]) -> None:
    with Image.open(every_variant["exif-rotated"].path) as im:
        assert im.getexif().get(0x0112) in (6, 8)
        upright = ImageOps.exif_transpose(im)
        assert upright.size == (120, 160)
    with Image.open(every_variant["rgb"].path) as im:
        assert im.getexif().get(0x0112, 1) == 1


def test_png16_uses_sixteen_bits(every_variant: dict[str, CorpusFile]) -> None:
    with Image.open(every_variant["png16"].path) as im:
        lo, hi = im.getextrema()
        assert isinstance(hi, int) and hi > 255  # values beyond 8 bits
        assert len(set(im.tobytes()[0::2])) > 200  # and real low bytes (little-endian)


def test_palette_alpha_has_transparent_pixels(every_variant: dict[str, CorpusFile]) -> None:
    with Image.open(every_variant["palette-alpha"].path) as im:
        assert "transparency" in im.info
        alpha = im.convert("RGBA").getchannel("A")
        assert alpha.getextrema() == (0, 255)


def test_truncated_fails_on_load(every_variant: dict[str, CorpusFile]) -> None:
    with Image.open(every_variant["truncated"].path) as im:
        assert im.format == "JPEG"  # the header is intact
        with pytest.raises(OSError, match="truncated"):
            im.load()


@pytest.mark.parametrize("variant", ["empty", "text"])
def test_not_images_fail_on_open(every_variant: dict[str, CorpusFile], variant: str) -> None:
    f = every_variant[variant]
    assert (f.width, f.height) == (0, 0)
    assert (f.path.stat().st_size == 0) == (variant == "empty")
    with pytest.raises(Image.UnidentifiedImageError):
        Image.open(f.path)


def test_bomb_is_small_but_raises(every_variant: dict[str, CorpusFile]) -> None:
    f = every_variant["bomb"]
    assert f.path.stat().st_size < 100_000
    assert f.width * f.height > 2 * (Image.MAX_IMAGE_PIXELS or 0)
    with pytest.raises(Image.DecompressionBombError):
        with Image.open(f.path) as im:
            im.load()


def test_corpus_is_deterministic(tmp_path: Path) -> None:
    variants = ("rgb", "gray", "png16", "truncated", "palette-alpha")
    a = write_corpus(tmp_path / "a", 5, sizes=((64, 48), (48, 64)), seed=3, variants=variants)
    b = write_corpus(tmp_path / "b", 5, sizes=((64, 48), (48, 64)), seed=3, variants=variants)
    assert [(f.variant, f.width, f.height, f.year) for f in a] == \
           [(f.variant, f.width, f.height, f.year) for f in b]
    assert [f.path.read_bytes() for f in a] == [f.path.read_bytes() for f in b]
    assert [(f.width, f.height) for f in a[:2]] == [(64, 48), (48, 64)]
    c = write_corpus(tmp_path / "c", 5, sizes=((64, 48), (48, 64)), seed=4, variants=variants)
    assert a[0].path.read_bytes() != c[0].path.read_bytes()


def test_years_are_deterministic_and_in_range(tmp_path: Path) -> None:
    files = write_corpus(tmp_path, 40, sizes=((16, 16),), seed=9, variants=("empty",))
    years = [f.year for f in files]
    assert all(YEAR_MIN <= y <= YEAR_MAX for y in years)
    assert {2001, 2015} <= set(years)
    assert sum(y > 2000 for y in years) >= 2 and sum(y < 1950 for y in years) >= 2
    again = write_corpus(tmp_path / "again", 40, sizes=((16, 16),), seed=9, variants=("empty",))
    assert [f.year for f in again] == years


# ------------------------------------------------------------------ manifests and the demo job


def test_manifest_with_absolute_paths(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "imgs", 4, sizes=((32, 24),), variants=("rgb", "gray"))
    manifest = tmp_path / "manifest.txt"
    assert write_manifest(manifest, files) == 4
    lines = manifest.read_text().splitlines()
    assert lines == [f"{f.path} {f.year}" for f in files]
    rows = list(iter_rows(manifest, PHOTO))  # the project's own parser accepts it
    assert [r.values for r in rows] == [(str(f.path), f.year) for f in files]


def test_manifest_with_urls(tmp_path: Path) -> None:
    files = write_corpus(tmp_path, 3, sizes=((32, 24),))
    manifest = tmp_path / "manifest.txt"
    assert write_manifest(manifest, files, url_base="http://127.0.0.1:8123") == 3
    first = manifest.read_text().splitlines()[0]
    assert first == f"http://127.0.0.1:8123/{files[0].path.name} {files[0].year}"
    assert len(list(iter_rows(manifest, PHOTO))) == 3


def test_manifest_path_with_space_becomes_file_url(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "my photos", 2, sizes=((32, 24),))
    manifest = tmp_path / "manifest.txt"
    write_manifest(manifest, files)
    rows = list(iter_rows(manifest, PHOTO))
    assert len(rows) == 2
    url = str(rows[0].values[0])
    assert url.startswith("file:///") and "%20" in url
    assert Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)) == files[0].path


def test_make_demo_job(tmp_path: Path) -> None:
    job = make_demo_job(tmp_path / "job", n_images=6, seed=1)
    assert job.folder == tmp_path / "job"
    assert job.images == job.folder / "images" and job.manifest == job.folder / "manifest.txt"
    assert len(job.files) == 6 and {f.variant for f in job.files} <= set(JPEG_VARIANTS)
    rows = list(iter_rows(job.manifest, PHOTO))
    assert len(rows) == 6
    for row, f in zip(rows, job.files, strict=True):
        path = Path(str(row.values[0]))
        assert path.is_absolute() and path.parent == job.images and path == f.path
        with Image.open(path) as im:
            im.load()
            assert is_photo_like(im)


def test_photo_corpus_fixture(photo_corpus: tuple[CorpusFile, ...]) -> None:
    assert len(photo_corpus) == 12
    assert {f.variant for f in photo_corpus} == set(JPEG_VARIANTS)
    assert len({f.path.parent for f in photo_corpus}) == 1
    assert {2001, 2015} <= {f.year for f in photo_corpus}
    for f in photo_corpus:
        with Image.open(f.path) as im:
            assert im.format == "JPEG" and im.size == (f.width, f.height)
