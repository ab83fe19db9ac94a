"""examples/make_smaller: right way up for all 8 EXIF orientations, size limits, PSNR against the
slow full-size LANCZOS reference, both kernels, per-row errors and the tarball; the ``outputs``
job option it relies on."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from support.programs import load_program

from condorkit.demo import make_photo, write_corpus
from condorkit.errors import ConfigError
from condorkit.model.config import JobConfig

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "examples" / "make_smaller" / "make_smaller.py"
CKJOB = ROOT / "wrappers" / "ckjob.py"
FAST_DEPS = all(importlib.util.find_spec(m) for m in ("numpy", "simplejpeg", "cv2"))


M = load_program(PROGRAM, "make_smaller_prog")
KERNELS = ["fast", "pillow"] if FAST_DEPS else ["pillow"]


def shrink(kernel: str, data: bytes, max_side: int) -> tuple[bytes, tuple[int, int], tuple]:
    if kernel == "pillow":
        return M.shrink_pillow(data, max_side, 85)
    done = M.FastKernel().shrink(data, M.orientation_of(data), max_side, 85)
    assert done is not None, "the fast kernel refused a JPEG it should take"
    return done


def exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def luma(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def psnr(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    mse = float(np.mean((luma(a) - luma(b)) ** 2))
    return 10 * math.log10(255 ** 2 / mse) if mse else 99.0


def reference(src: bytes, size: tuple[int, int]) -> tuple[Image.Image, Image.Image]:
    """The slow way: full-size decode, EXIF transpose, LANCZOS; and that saved at quality 85."""
    with Image.open(io.BytesIO(src)) as im:
        up = ImageOps.exif_transpose(im).convert("RGB")
    ref = up if up.size == size else up.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    ref.save(buf, "JPEG", quality=85)
    return ref, Image.open(io.BytesIO(buf.getvalue()))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return make_photo(31, 480, 320)  # landscape, asymmetric content


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(photo: Image.Image, kernel: str,
                                                  orientation: int, mode: str) -> None:
    buf = io.BytesIO()
    photo.convert(mode).save(buf, "JPEG", quality=92, exif=exif(orientation))
    src = buf.getvalue()
    jpeg, (w, h), (sw, sh) = shrink(kernel, src, 200)
    out = Image.open(io.BytesIO(jpeg))
    assert (sw, sh) == (480, 320)
    upright = (133, 200) if orientation >= 5 else (200, 133)
    assert out.size == (w, h) == upright
    assert not out.getexif().get(0x0112)  # nothing left for a viewer to rotate again
    assert out.mode == mode
    ref, _ = reference(src, out.size)
    right = psnr(out, ref)
    # every other orientation of the same pixels is far worse: the picture is the right way up
    for t in Image.Transpose:
        wrong = ref.transpose(t)
        if wrong.size == out.size:
            assert right > psnr(out, wrong) + 6, (orientation, t)
    assert right > 30


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("max_side", [40, 60, 90, 120, 170, 240, 300, 480, 1024])
def test_size_limit_every_dct_scale(photo: Image.Image, kernel: str, max_side: int) -> None:
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=90)
    jpeg, (w, h), _ = shrink(kernel, buf.getvalue(), max_side)
    out = Image.open(io.BytesIO(jpeg))
    assert out.size == (w, h)
    assert max(w, h) == min(max_side, 480)  # the longest side hits the limit, never above
    assert abs(w / h - 1.5) < 0.02
    ref, _ = reference(buf.getvalue(), out.size)
    assert psnr(out, ref) > 30


def test_dct_scale_uses_only_the_fast_idcts() -> None:
    for width in range(1025, 9000, 37):
        tw, th = M.target_size(width, width * 3 // 4, 1024)
        m = M.dct_scale(width, width * 3 // 4, tw, th)
        assert m in (1, 2, 3, 4, 8)
        assert -(-width * m // 8) >= tw
        assert m == 1 or m == 8 and -(-width * 4 // 8) < tw or -(-width * (m - 1) // 8) < tw
    assert M.target_size(800, 600, 1024) == (800, 600)  # never enlarged


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> list:
    folder = tmp_path_factory.mktemp("smaller")
    return write_corpus(folder, 4, sizes=[(1600, 1200), (2048, 1536), (1200, 1600), (1920, 1080)],
                        seed=41, variants=["rgb", "progressive", "exif-rotated", "gray"])


@pytest.mark.parametrize("kernel", KERNELS)
def test_psnr_against_the_full_size_lanczos_reference(realistic: list, kernel: str) -> None:
    """PSNR-Y >= 41 dB against the reference output (full-size decode, EXIF transpose, LANCZOS to
    the same size, quality 85). Against the unencoded reference, quality 85 itself is the limit
    on grainy photos: ours must be within 0.6 dB of what the reference's own encoding keeps."""
    for f in realistic:
        src = f.path.read_bytes()
        jpeg, (w, h), _ = shrink(kernel, src, 1024)
        out = Image.open(io.BytesIO(jpeg))
        assert max(out.size) == 1024 and out.size == (w, h)
        with Image.open(f.path) as im:
            up_w, up_h = ImageOps.exif_transpose(im).size
        assert (w > h) == (up_w > up_h), f.path.name  # right way up
        ref, ref_jpeg = reference(src, out.size)
        assert psnr(out, ref_jpeg) >= 41.0, f.path.name
        assert psnr(out, ref) >= psnr(ref_jpeg, ref) - 0.6, f.path.name
        if f.variant == "gray":
            assert out.mode == "L"


def test_other_formats_and_cmyk_go_through_pillow(tmp_path: Path) -> None:
    files = write_corpus(tmp_path, 5, sizes=[(300, 200)], seed=9,
                         variants=["cmyk", "png", "webp", "gif", "palette-alpha"])
    for f in files:
        src = f.path.read_bytes()
        if FAST_DEPS:
            assert M.FastKernel().shrink(src, 1, 150, 85) is None
        jpeg, size, _ = M.shrink(src, 150)
        out = Image.open(io.BytesIO(jpeg))
        assert out.format == "JPEG" and out.size == size == (150, 100)
        assert out.mode == "RGB"


def _run_program(tmp_path: Path, urls: list[str], start: int = 5, **env: str) -> tuple[dict, Path]:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "make_smaller.py").write_bytes(PROGRAM.read_bytes())
    (scratch / "ckjob.py").write_bytes(CKJOB.read_bytes())
    header = {"format": "condorkit-rows/1", "start": start, "count": len(urls), "key": "k",
              "columns": ["url"]}
    lines = [json.dumps(header)] + [json.dumps({"row": start + i, "line": start + i, "url": u})
                                    for i, u in enumerate(urls)]
    (scratch / "rows.jsonl").write_text("\n".join(lines) + "\n")
    proc = subprocess.run([sys.executable, "make_smaller.py", "rows.jsonl", "out.json"],
                          cwd=scratch, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads((scratch / "out.json").read_text()), scratch


@pytest.mark.parametrize("kernel", ["auto", "pillow"])
def test_program_writes_one_tarball_and_records_errors(tmp_path: Path, kernel: str) -> None:
    files = write_corpus(tmp_path / "img", 6, sizes=[(640, 480), (480, 640)], seed=12,
                         variants=["exif-rotated", "truncated", "rgb", "text", "gray", "empty"])
    urls = [str(f.path) for f in files] + ["ftp://nowhere/x.jpg"]
    doc, scratch = _run_program(tmp_path, urls, SMALLER_MAX_SIDE="256", SMALLER_KERNEL=kernel)
    sys.path.insert(0, str(CKJOB.parent))
    import ckjob

    assert ckjob.check_results(doc, 5, len(urls), "k") == []
    assert doc["outputs"] == ["smaller-5.tar"] and doc["errors"] == 4
    assert not list(scratch.glob(".*.tmp"))  # the tarball appeared by rename
    with tarfile.open(scratch / "smaller-5.tar") as tar:
        names = tar.getnames()
        recs = {r["row"]: r for r in doc["records"]}
        good = [r for r in recs.values() if "error" not in r]
        assert sorted(names) == sorted(r["file"] for r in good)
        for r in good:
            assert r["archive"] == "smaller-5.tar"
            member = tar.extractfile(r["file"])
            assert member is not None
            im = Image.open(io.BytesIO(member.read()))
            assert im.size == (r["width"], r["height"]) and max(im.size) == 256
    rotated = recs[5]  # exif-rotated, stored 640x480 sideways: comes out portrait
    assert (rotated["source_width"], rotated["source_height"]) == (640, 480)
    assert (rotated["width"], rotated["height"]) == (192, 256)
    assert rotated["file"] == "5-img0000-exif-rotated.jpg"
    assert recs[6]["error"].startswith("decode: ") and recs[8]["error"].startswith("decode: ")
    assert recs[11]["error"].startswith("fetch: ")


def test_outputs_option_is_validated() -> None:
    assert JobConfig(outputs=("smaller-{start}.tar",)).outputs == ("smaller-{start}.tar",)
    for bad in ("smaller.tar", "out/{start}.tar", "a-{start}-{start}.tar", "{start} x.tar",
                ".hidden-{start}", "-{start}.tar", "x-{stop}.tar"):
        with pytest.raises(ConfigError, match="outputs"):
            JobConfig(outputs=(bad,))
