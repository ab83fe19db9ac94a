"""Figure 3: make_smaller per core against the tutorial's djpeg|cjpeg and other shrinkers.

    python3 bench/perf_make_smaller.py [--quick] [--repeats N]

Every contender turns each corpus JPEG into a quality-85 JPEG file (needs libjpeg-turbo-progs for
djpeg/cjpeg; pyvips is skipped when it does not import):
  djpeg|cjpeg          the tutorial's job: full size, no resize (one shell pipeline per image)
  djpeg-scale|cjpeg    ``djpeg -scale M/8`` with the smallest M keeping the longest side >= 1024
                       (no exact size, no EXIF orientation)
  pillow-draft         Pillow draft + LANCZOS + EXIF transpose + save (make_smaller's fallback)
  pyvips-thumbnail     pyvips ``thumbnail`` (shrink-on-load, auto-rotate) + jpegsave Q=85
  make_smaller         examples/make_smaller/make_smaller.py's kernel (file read + shrink + write)
Untimed checks per contender: outputs with the longest side <= 1024, outputs the right way up
(EXIF-rotated inputs), and PSNR of the luma (BT.601) against the slow reference: full-size decode,
EXIF transpose, LANCZOS to the contender's output size. Two PSNRs: against that reference saved
with the same encoder at quality 85 (output vs reference output), and against the unencoded
reference (which quality 85 itself caps; the reference's own q85 value is shown for scale).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import corpus
import numpy as np
from perf_common import (
    Contender,
    interleaved,
    load_program,
    log,
    machine,
    markdown,
    median,
    rate_rows,
    write_result,
)
from PIL import Image, ImageOps

M = load_program("make_smaller", "make_smaller")
MAX_SIDE, QUALITY = 1024, 85


def scale_m(width: int, height: int) -> int:
    longest = max(width, height)
    return next((m for m in range(1, 9) if longest * m / 8 >= MAX_SIDE), 8)


class Runner:
    """Contenders write into ``out`` (one file per input name)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.sizes: dict[str, tuple[int, int]] = {}

    def dest(self, tag: str, path: Path) -> Path:
        d = self.out / tag
        d.mkdir(exist_ok=True)
        return d / (path.stem + ".jpg")

    def djpeg_cjpeg(self, path: Path) -> None:
        subprocess.run(f"djpeg '{path}' | cjpeg -quality {QUALITY} > "
                       f"'{self.dest('djpeg-cjpeg', path)}'", shell=True, check=True)

    def djpeg_scale(self, path: Path) -> None:
        w, h = self.sizes[path.name]
        subprocess.run(f"djpeg -scale {scale_m(w, h)}/8 '{path}' | cjpeg -quality {QUALITY} > "
                       f"'{self.dest('djpeg-scale', path)}'", shell=True, check=True)

    def pillow_draft(self, path: Path) -> None:
        jpeg, _, _ = M.shrink_pillow(path.read_bytes(), MAX_SIDE, QUALITY)
        self.dest("pillow-draft", path).write_bytes(jpeg)

    def pyvips(self, path: Path) -> None:
        import pyvips

        im = pyvips.Image.thumbnail(str(path), MAX_SIDE, height=MAX_SIDE, size="down")
        im.jpegsave(str(self.dest("pyvips", path)), Q=QUALITY, strip=True)

    def make_smaller(self, path: Path) -> None:
        jpeg, _, _ = M.shrink(path.read_bytes(), MAX_SIDE, QUALITY)
        self.dest("make_smaller", path).write_bytes(jpeg)


def _y(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = float(np.mean((_y(a) - _y(b)) ** 2))
    return 10 * math.log10(255 ** 2 / mse) if mse > 0 else 99.0


def quality(files: list[corpus.Image], folder: Path) -> dict[str, object]:
    """Size, orientation and PSNR checks of one contender's outputs."""
    too_big = sideways = 0
    vs_ref_jpeg: list[float] = []
    vs_ref: list[float] = []
    ref_q85: list[float] = []
    for f in files:
        out = Image.open(folder / (f.path.stem + ".jpg"))
        out.load()
        with Image.open(f.path) as src:
            upright = ImageOps.exif_transpose(src)
            up_w, up_h = upright.size
            if max(out.size) > MAX_SIDE:
                too_big += 1
            if (out.width > out.height) != (up_w > up_h):
                sideways += 1
                continue
            ref = upright.convert("RGB").resize(out.size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        ref.save(buf, "JPEG", quality=QUALITY)
        ref_jpeg = Image.open(buf)
        vs_ref_jpeg.append(psnr(out, ref_jpeg))
        vs_ref.append(psnr(out, ref))
        ref_q85.append(psnr(ref_jpeg, ref))
    def stats(xs: list[float]) -> str:
        return f"{min(xs):.2f} / {median(xs):.2f}" if xs else "-"
    return {"too_big": too_big, "sideways": sideways, "psnr_vs_ref_jpeg": stats(vs_ref_jpeg),
            "psnr_vs_ref": stats(vs_ref), "ref_q85": stats(ref_q85),
            "min_vs_ref_jpeg": min(vs_ref_jpeg) if vs_ref_jpeg else None}


def run(quick: bool, repeats: int) -> tuple[str, dict[str, object]]:
    files = corpus.ensure(quick)
    paths = [f.path for f in files]
    if M.fast_kernel() is None:
        log("WARNING: make_smaller's fast kernel is unavailable; measuring its Pillow fallback")
    tmp = Path(tempfile.mkdtemp(prefix="perf-smaller-"))
    try:
        r = Runner(tmp)
        r.sizes = {f.path.name: (f.width, f.height) for f in files}
        contenders = [Contender("djpeg|cjpeg", r.djpeg_cjpeg, "tutorial, full size"),
                      Contender("djpeg-scale|cjpeg", r.djpeg_scale, "-scale M/8")]
        contenders.append(Contender("pillow-draft", r.pillow_draft, "draft+LANCZOS"))
        try:
            os.environ.setdefault("VIPS_CONCURRENCY", "1")
            import pyvips

            pyvips.cache_set_max(0)
            contenders.append(Contender("pyvips-thumbnail", r.pyvips))
        except (ImportError, OSError) as exc:
            log(f"pyvips unavailable ({exc}); skipped")
        contenders.append(Contender("make_smaller", r.make_smaller, "our kernel"))
        if not shutil.which("djpeg") or not shutil.which("cjpeg"):
            raise SystemExit("djpeg/cjpeg not found: apt-get install libjpeg-turbo-progs")
        log(f"make_smaller: {corpus.describe(files)}; {repeats} interleaved rounds")
        interleaved(contenders, paths, repeats, log=log)
        head, rows = rate_rows(contenders, len(paths), ["djpeg|cjpeg", "djpeg-scale|cjpeg"])
        tags = {"djpeg|cjpeg": "djpeg-cjpeg", "djpeg-scale|cjpeg": "djpeg-scale",
                "pillow-draft": "pillow-draft", "pyvips-thumbnail": "pyvips",
                "make_smaller": "make_smaller"}
        checks = {c.name: quality(files, tmp / tags[c.name]) for c in contenders}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    qhead = ["contender", "longest side > 1024", "sideways", "PSNR-Y vs ref q85 (min / median)",
             "PSNR-Y vs unencoded ref", "ref's own q85 vs unencoded"]
    qrows = [[n, str(c["too_big"]), str(c["sideways"]), str(c["psnr_vs_ref_jpeg"]),
              str(c["psnr_vs_ref"]), str(c["ref_q85"])] for n, c in checks.items()]
    ours = [row for row in rows if row[0].startswith("make_smaller")][0]
    text = (f"# make_smaller per core\n\n{machine()}\n\nCorpus: {corpus.describe(files)}.\n"
            f"Medians of {repeats} interleaved rounds; ratios are medians of same-round ratios."
            f"\n\n" + markdown(head, rows) + "\n" + markdown(qhead, qrows)
            + f"\nTarget: make_smaller >= djpeg-scale|cjpeg (measured x{ours[4]}), right way up "
              f"(sideways {checks['make_smaller']['sideways']}), PSNR-Y >= 41 dB against the "
              f"reference output (min {checks['make_smaller']['min_vs_ref_jpeg']:.2f}).\n")
    return text, {"corpus": corpus.describe(files), "table": [head, *rows], "checks": checks,
                  "raw_cpu": {c.name: c.cpu for c in contenders}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpus, 1 round")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    text, data = run(args.quick, args.repeats or (1 if args.quick else 3))
    path = write_result("make_smaller-quick" if args.quick else "make_smaller", text, data)
    print(text)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
