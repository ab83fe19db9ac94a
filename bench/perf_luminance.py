"""Figure 1: exact luminance per core: the tutorial's method, the decode ceilings, our kernels.

    python3 bench/perf_luminance.py [--quick] [--repeats N]

Contenders (each pass reads every corpus file from the warmed page cache):
  tutorial        Pillow open + ImageStat RMS (RGB; gray as L; other modes converted to RGB)
  decode-only     Pillow open + load: the ceiling of any exact method that decodes with Pillow
  sj-decode-only  simplejpeg decode into a reused buffer: the ceiling of the fast kernel's decoder
  kernel          examples/photodemo/luminance.py as the job runs it (fast kernel)
  kernel-pillow   the same program's Pillow fallback (histogram + exact integer sums)
Also checks, untimed, that both kernels equal the tutorial's value on every image (max |delta|)
and measures the error of DCT-scaled decoding (Pillow draft at 1/2, 1/4, 1/8), which is why the
job never uses it.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import corpus
from perf_common import (
    Contender,
    interleaved,
    load_program,
    log,
    machine,
    markdown,
    rate_rows,
    write_result,
)
from PIL import Image, ImageStat

L = load_program("photodemo", "luminance")


def tutorial(path: Path) -> float:
    """The tutorial's method, straightforwardly (the reference for exactness)."""
    with Image.open(path) as im:
        if im.mode == "L":
            return ImageStat.Stat(im).rms[0] / 256
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        r, g, b = ImageStat.Stat(rgb).rms
        return math.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 256


def decode_only(path: Path) -> None:
    with Image.open(path) as im:
        im.load()


class SjDecode:
    def __init__(self) -> None:
        import numpy
        import simplejpeg

        self.np, self.sj = numpy, simplejpeg
        self.buf = numpy.empty(0, numpy.uint8)

    def __call__(self, path: Path) -> None:
        data = path.read_bytes()
        h, w, cs, _ = self.sj.decode_jpeg_header(data)
        ch = 1 if cs == "Gray" else 3
        if self.buf.size < h * w * ch:
            self.buf = self.np.empty(h * w * ch, self.np.uint8)
        self.sj.decode_jpeg(data, colorspace="GRAY" if ch == 1 else "RGB",
                            buffer=self.buf[: h * w * ch].reshape(h, w, ch))


def draft_luminance(path: Path, factor: int) -> float:
    with Image.open(path) as im:
        im.draft(im.mode if im.mode in ("RGB", "L") else "RGB",
                 (im.width // factor, im.height // factor))
        if im.mode == "L":
            return ImageStat.Stat(im).rms[0] / 256
        r, g, b = ImageStat.Stat(im.convert("RGB")).rms
        return math.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 256


def run(quick: bool, repeats: int) -> tuple[str, dict[str, object]]:
    files = corpus.ensure(quick)
    paths = [f.path for f in files]
    if L.fast_kernel() is None:
        log("WARNING: the fast kernel is unavailable (pip install numpy simplejpeg "
            "opencv-python-headless); 'kernel' below is the Pillow fallback")
    contenders = [
        Contender("tutorial", tutorial),
        Contender("decode-only", decode_only, "Pillow open+load"),
        Contender("sj-decode-only", SjDecode(), "simplejpeg decode"),
        Contender("kernel", L.luminance, "photodemo fast kernel"),
        Contender("kernel-pillow", L.luminance_pillow, "photodemo Pillow fallback"),
    ]
    log(f"luminance: {corpus.describe(files)}; {repeats} interleaved rounds")
    interleaved(contenders, paths, repeats, log=log)
    head, rows = rate_rows(contenders, len(paths), ["tutorial", "decode-only"])
    # exactness and the DCT-scaling error, untimed
    worst = {"kernel": 0.0, "kernel-pillow": 0.0}
    draft_err = {2: 0.0, 4: 0.0, 8: 0.0}
    for p in paths:
        ref = tutorial(p)
        worst["kernel"] = max(worst["kernel"], abs(L.luminance(p) - ref))
        worst["kernel-pillow"] = max(worst["kernel-pillow"], abs(L.luminance_pillow(p) - ref))
        for k in draft_err:
            draft_err[k] = max(draft_err[k], abs(draft_luminance(p, k) - ref) / ref)
    ratio = [row[3] for row in rows if row[0].startswith("kernel (")][0]
    text = (f"# Exact luminance per core\n\n{machine()}\n\nCorpus: {corpus.describe(files)}.\n"
            f"Medians of {repeats} interleaved rounds; ratios are medians of same-round ratios.\n\n"
            + markdown(head, rows)
            + f"\nExactness: max |kernel - tutorial| = {worst['kernel']:.3g}, "
              f"max |kernel-pillow - tutorial| = {worst['kernel-pillow']:.3g} "
              f"(target < 1e-9 on every image).\n"
            + "DCT-scaled decoding (Pillow draft) is NOT exact: max relative error "
            + ", ".join(f"{v * 100:.2f}% at 1/{k}" for k, v in draft_err.items())
            + ".\n\nTarget: kernel >= 1.25 x tutorial; measured " + ratio + ".\n")
    data = {"corpus": corpus.describe(files), "repeats": repeats, "table": [head, *rows],
            "max_abs_delta": worst, "draft_rel_error": draft_err,
            "raw_cpu": {c.name: c.cpu for c in contenders},
            "raw_wall": {c.name: c.wall for c in contenders}}
    return text, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpus, 2 rounds")
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    text, data = run(args.quick, args.repeats or (2 if args.quick else 5))
    path = write_result("luminance-quick" if args.quick else "luminance", text, data)
    print(text)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
