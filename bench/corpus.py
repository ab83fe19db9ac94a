"""The benchmark corpus: photo-like JPEGs of realistic size (2-12 MP) and entropy.

Uses condorkit.demo's public generator (``write_corpus``): scenes with sky, clouds, ridges or
city or bokeh, lens blur, vignette, colour gain and full-resolution film grain, saved at quality
85-92 with 4:2:0 chroma. One file in six is grayscale, one progressive, one EXIF-rotated
(orientation 6 or 8: stored sideways), the rest baseline RGB. Files land in
``bench/corpus/NAME/`` (gitignored) with an ``index.json``; an existing corpus with the same
parameters is reused, so only the first run pays for it (about 0.5 s per image).

    python3 bench/corpus.py            # the full corpus (120 images, about 150 MB)
    python3 bench/corpus.py --quick    # 12 small images, for checking the benchmarks
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from perf_common import BENCH, log

from condorkit.demo import write_corpus

FULL_SIZES = ((1920, 1080), (2048, 1536), (2560, 1920), (1944, 2592), (3264, 2448),
              (3648, 2736), (4000, 3000))
QUICK_SIZES = ((1280, 960), (1600, 1200), (960, 1280), (2048, 1536))
VARIANTS = ("rgb", "rgb", "gray", "progressive", "exif-rotated", "rgb")
FULL_N, QUICK_N = 120, 12
SEED = 2024


@dataclass(frozen=True)
class Image:
    path: Path
    variant: str
    width: int
    height: int
    bytes: int


def ensure(quick: bool = False, n: int | None = None) -> list[Image]:
    """The corpus (made if missing or made with other parameters)."""
    n = n or (QUICK_N if quick else FULL_N)
    sizes = QUICK_SIZES if quick else FULL_SIZES
    folder = BENCH / "corpus" / (f"quick-{n}" if quick else f"full-{n}")
    params = {"n": n, "sizes": [list(s) for s in sizes], "variants": list(VARIANTS),
              "seed": SEED, "generator": "condorkit.demo.write_corpus"}
    index = folder / "index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        files = [Image(folder / f["name"], f["variant"], f["width"], f["height"], f["bytes"])
                 for f in data["files"]]
        if data.get("params") == params and all(f.path.is_file() and f.path.stat().st_size
                                                 == f.bytes for f in files):
            return files
    log(f"corpus: writing {n} images to {folder} (once)")
    made = write_corpus(folder, n, sizes=sizes, seed=SEED, variants=VARIANTS)
    files = [Image(f.path, f.variant, f.width, f.height, f.path.stat().st_size) for f in made]
    index.write_text(json.dumps({"params": params, "files": [
        {"name": f.path.name, "variant": f.variant, "width": f.width, "height": f.height,
         "bytes": f.bytes} for f in files]}, indent=1) + "\n")
    return files


def describe(files: list[Image]) -> str:
    mp = [f.width * f.height / 1e6 for f in files]
    kinds: dict[str, int] = {}
    for f in files:
        kinds[f.variant] = kinds.get(f.variant, 0) + 1
    return (f"{len(files)} JPEGs, {min(mp):.1f}-{max(mp):.1f} MP (mean {sum(mp) / len(mp):.1f}), "
            f"{sum(f.bytes for f in files) / 1e6:.0f} MB; "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 small images")
    ap.add_argument("-n", type=int, default=None, help="number of images")
    args = ap.parse_args()
    files = ensure(args.quick, args.n)
    print(describe(files))


if __name__ == "__main__":
    main()
