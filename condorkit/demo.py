"""Demo and test data: photo-like JPEGs, robustness corpora, manifests and a ready photodemo job.

Owns the synthetic image generator (Pillow only, no numpy): :func:`make_photo` composes a scene at
a working resolution (sky gradient, fractal clouds, a sun glow, layered mountain ridges or a city
skyline or a bokeh close-up, textured with fractal value noise and Pillow's Mandelbrot generator),
applies lens blur, a vignette and a per-image colour gain, scales it to the requested size and adds
fine texture and film grain at full resolution. Every random choice comes from
``random.Random(seed)``; Pillow's own ``effect_noise`` is NOT used because it draws from C
``rand()``, whose state Python cannot seed, so it is not reproducible.

:func:`write_corpus` writes files of many variants (ordinary JPEGs and deliberately awkward or
broken files), :func:`write_manifest` writes the tutorial's ``URL-or-path year`` manifest, and
:func:`make_demo_job` makes a job folder with ``images/`` and ``manifest.txt``.
"""

from __future__ import annotations

import math
import random
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageMath, ImageOps

from condorkit.errors import UsageError

__all__ = [
    "CorpusFile",
    "DemoJob",
    "DEMO_SIZES",
    "DEMO_VARIANTS",
    "DECODABLE_VARIANTS",
    "JPEG_VARIANTS",
    "VARIANTS",
    "YEAR_MIN",
    "YEAR_MAX",
    "make_photo",
    "write_corpus",
    "write_manifest",
    "make_demo_job",
]

#: Variants that are valid JPEG files Pillow decodes.
JPEG_VARIANTS = ("rgb", "gray", "progressive", "exif-rotated", "cmyk")
#: Every variant :func:`write_corpus` knows, in a stable order.
VARIANTS = JPEG_VARIANTS + (
    "png", "png16", "gif", "webp", "palette-alpha", "truncated", "empty", "text", "bomb",
)
#: Variants that decode (the rest are meant to fail: truncated, empty, text, bomb).
DECODABLE_VARIANTS = JPEG_VARIANTS + ("png", "png16", "gif", "webp", "palette-alpha")

_EXT = {"png": "png", "png16": "png", "gif": "gif", "webp": "webp", "palette-alpha": "png",
        "bomb": "png"}
YEAR_MIN, YEAR_MAX = 1880, 2020
#: The first years handed out, so that even a small corpus spans the range and has years > 2000.
_ANCHOR_YEARS = (2001, 2015, 1880, 2020, 1936)
_WORK_MAX = 800  # the scene is composed with its longer side at most this many pixels
_DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS

DEMO_SIZES = ((640, 480), (800, 600), (480, 640), (1024, 768))
DEMO_VARIANTS = ("rgb", "rgb", "gray", "rgb", "progressive", "exif-rotated")


@dataclass(frozen=True)
class CorpusFile:
    """One written file. ``width``/``height`` are the stored pixel size (what ``Image.open``
    reports, before any EXIF rotation); ``0, 0`` for ``empty`` and ``text``."""

    path: Path
    variant: str
    width: int
    height: int
    year: int


@dataclass(frozen=True)
class DemoJob:
    """What :func:`make_demo_job` made: the job folder, its ``images/`` and ``manifest.txt``."""

    folder: Path
    images: Path
    manifest: Path
    files: tuple[CorpusFile, ...]


# ---------------------------------------------------------------- noise and small helpers


def _clip(x: float) -> int:
    return max(0, min(255, round(x)))


def _lut(fn: Callable[[float], float]) -> list[int]:
    """A 256-entry lookup table from a function on 0..255, clipped to 0..255."""
    return [_clip(fn(v)) for v in range(256)]


def _grid(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("L", size, rng.randbytes(size[0] * size[1]))


def _upscale(rng: random.Random, grid: Image.Image, size: tuple[int, int],
             cell: float) -> Image.Image:
    """Bicubic upscale of ``grid`` (one value per ``cell`` pixels) to ``size``, randomly offset."""
    ox, oy = rng.random(), rng.random()
    box = (ox, oy, ox + size[0] / cell, oy + size[1] / cell)
    return grid.resize(size, Image.Resampling.BICUBIC, box=box)


def _value_noise(rng: random.Random, size: tuple[int, int], cell: float) -> Image.Image:
    """Smooth noise: random bytes on a grid of ``cell``-pixel spacing, upscaled bicubically."""
    w, h = size
    grid = _grid(rng, (math.ceil(w / cell) + 3, math.ceil(h / cell) + 3))
    return _upscale(rng, grid, size, cell)


def _fractal(rng: random.Random, size: tuple[int, int], cell: float, octaves: int = 5,
             persistence: float = 0.55) -> Image.Image:
    """1/f-like fractal noise, stretched to the full range.

    A pyramid: a coarse random grid is repeatedly doubled (bicubic) and blended with fresh noise
    of the new resolution, then scaled once to ``size``; each octave weighs ``persistence`` times
    the previous one. Far cheaper than upscaling every octave to full size.
    """
    w, h = size
    cell = max(cell, 2.0)
    acc = _grid(rng, (math.ceil(w / cell) + 3, math.ceil(h / cell) + 3))
    weight, total = 1.0, 1.0
    for _ in range(octaves - 1):
        if cell / 2 < 1.5:
            break
        cell /= 2
        weight *= persistence
        total += weight
        acc = acc.resize((acc.width * 2, acc.height * 2), Image.Resampling.BICUBIC)
        acc = Image.blend(acc, _grid(rng, acc.size), weight / total)
    return ImageOps.autocontrast(_upscale(rng, acc, size, cell), cutoff=0.5)


def _gaussian_lut(sigma: float) -> list[int]:
    """Maps a uniform byte to a gaussian value centred on 128 (inverse normal CDF)."""
    from statistics import NormalDist

    nd = NormalDist(128.0, sigma)
    return [max(0, min(255, round(nd.inv_cdf((v + 0.5) / 256)))) for v in range(256)]


def _rand_colour(rng: random.Random, lo: int, hi: int) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> tuple[int, int, int]:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


def _ridge(rng: random.Random, n: int, rough: float) -> list[float]:
    """A 1-D midpoint-displacement profile with ``n`` (= 2**k + 1) points in roughly -1..1."""
    pts = [0.0] * n
    pts[0], pts[-1] = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
    step, amp = n - 1, 1.0
    while step > 1:
        half = step // 2
        for i in range(half, n - 1, step):
            pts[i] = (pts[i - half] + pts[i + half]) / 2 + rng.uniform(-amp, amp)
        step, amp = half, amp * rough
    return pts


def _sky(rng: random.Random, size: tuple[int, int]) -> tuple[Image.Image, tuple[int, int, int]]:
    w, h = size
    palettes = [((40, 90, 170), (170, 200, 230)), ((30, 40, 90), (240, 150, 80)),
                ((110, 115, 125), (190, 190, 195)), ((60, 120, 200), (220, 225, 235))]
    top, horizon = palettes[rng.randrange(len(palettes))]
    top, horizon = _mix(top, _rand_colour(rng, 0, 255), 0.15), _mix(horizon, (255,) * 3, 0.1)
    grad = Image.linear_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
    sky = ImageOps.colorize(grad, top, horizon)
    clouds = _fractal(rng, size, max(8.0, w / rng.uniform(3, 7)), octaves=6)
    cut = rng.randint(90, 170)
    mask = clouds.point(_lut(lambda v: (v - cut) * 2.2 if v > cut else 0))
    shade = ImageOps.colorize(clouds, _mix(horizon, (90, 90, 100), 0.5), (250, 250, 248))
    sky = Image.composite(shade, sky, mask.filter(ImageFilter.BoxBlur(1.5)))
    if rng.random() < 0.6:  # sun or moon glow, screened on
        r = rng.randint(max(4, w // 30), max(6, w // 6))
        disc = ImageOps.invert(Image.radial_gradient("L")).resize((2 * r, 2 * r))
        disc = disc.point(_lut(lambda v: 255 * (v / 255) ** 3))
        glow = Image.new("L", size, 0)
        glow.paste(disc, (rng.randrange(w) - r, rng.randrange(max(1, h * 2 // 3)) - r))
        sky = ImageChops.screen(sky, ImageOps.colorize(glow, (0, 0, 0), (255, 235, 200)))
    return sky, horizon


def _texture(rng: random.Random, size: tuple[int, int], dark: Sequence[int],
             light: Sequence[int], cell: float, octaves: int = 6) -> Image.Image:
    return ImageOps.colorize(_fractal(rng, size, cell, octaves=octaves, persistence=0.6),
                             tuple(dark), tuple(light))


def _landscape(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img, haze = _sky(rng, size)
    layers = rng.randint(2, 4)
    base = _rand_colour(rng, 30, 110)
    for k in range(layers):
        near = (k + 1) / layers
        top = h * (0.35 + 0.45 * near * rng.uniform(0.8, 1.0))
        amp = h * rng.uniform(0.08, 0.22) * (1.2 - near * 0.5)
        prof = _ridge(rng, 257, rng.uniform(0.5, 0.62))
        pts = [(i * (w - 1) / 256, top + amp * v) for i, v in enumerate(prof)]
        mask = Image.new("L", size, 0)
        ImageDraw.Draw(mask).polygon(pts + [(w, h), (0, h)], fill=255)
        colour = _mix(_mix(base, _rand_colour(rng, 20, 140), 0.4), haze, 0.7 * (1 - near))
        tex = _texture(rng, size, _mix(colour, (0, 0, 0), 0.6), _mix(colour, (255,) * 3, 0.4),
                       max(4.0, w / rng.uniform(12, 40)), octaves=4 + round(2 * near))
        # light from above: each layer darkens below its ridge line
        shade = Image.linear_gradient("L").resize((w, h), Image.Resampling.BILINEAR)
        shade = shade.point([_clip(255 - 110 * max(0.0, v / 255 - top / h + 0.1))
                             for v in range(256)])
        tex = ImageChops.multiply(tex, Image.merge("RGB", (shade, shade, shade)))
        img = Image.composite(tex, img, mask.filter(ImageFilter.BoxBlur(1)))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(0, 25)):  # trees and rocks in the foreground
        x, y = rng.randrange(w), rng.uniform(h * 0.7, h)
        s = rng.uniform(0.01, 0.06) * h * (y / h) ** 2
        dark = _rand_colour(rng, 10, 60)
        if rng.random() < 0.6:
            draw.polygon([(x, y - 3 * s), (x - s, y), (x + s, y)], fill=dark)
        else:
            draw.ellipse((x - 1.5 * s, y - s, x + 1.5 * s, y + 0.3 * s), fill=_mix(dark, haze, 0.3))
    return img


def _city(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img, haze = _sky(rng, size)
    draw = ImageDraw.Draw(img)
    ground = int(h * rng.uniform(0.75, 0.92))
    for row in range(2):
        x = -rng.randint(0, w // 10)
        while x < w:
            bw = int(w * rng.uniform(0.05, 0.16))
            top = int(ground - h * rng.uniform(0.15, 0.6) * (0.6 if row == 0 else 1.0))
            col = _mix(_rand_colour(rng, 40, 200), haze, 0.5 if row == 0 else 0.1)
            tex = _texture(rng, (max(1, bw), max(1, ground - top)), _mix(col, (0, 0, 0), 0.3),
                           _mix(col, (255,) * 3, 0.2), max(3.0, bw / 4))
            img.paste(tex, (x, top))
            lit = rng.random() < 0.3
            win, gap = max(2, bw // 10), max(2, bw // 14)
            for wy in range(top + gap, ground - win, win + gap):
                for wx in range(x + gap, x + bw - win, win + gap):
                    on = lit and rng.random() < 0.5
                    fill = (250, 220, 150) if on else _mix(col, (20, 25, 35), rng.uniform(.4, .8))
                    draw.rectangle((wx, wy, wx + win - 1, wy + win - 1), fill=fill)
            x += bw + rng.randint(0, w // 40)
    road = _texture(rng, (w, h - ground), (45, 45, 48), (120, 118, 115), max(3.0, w / 40))
    img.paste(road, (0, ground))
    return img


def _closeup(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    a, b = _rand_colour(rng, 30, 140), _rand_colour(rng, 120, 250)
    img = _texture(rng, size, a, b, w / 3).filter(ImageFilter.GaussianBlur(w / 80))
    bokeh = Image.new("L", size, 0)
    bd = ImageDraw.Draw(bokeh)
    for _ in range(rng.randint(5, 30)):
        x, y, r = rng.randrange(w), rng.randrange(h), rng.uniform(0.01, 0.06) * w
        bd.ellipse((x - r, y - r, x + r, y + r), fill=rng.randint(40, 160))
    bokeh = bokeh.filter(ImageFilter.BoxBlur(1.5))
    img = ImageChops.screen(img, ImageOps.colorize(bokeh, (0, 0, 0), _rand_colour(rng, 150, 255)))
    # the subject: a region near the Mandelbrot set's boundary, as a leaf- or coral-like shape
    cx, cy = rng.choice([(-0.7453, 0.1127), (-1.25066, 0.02012), (-0.1011, 0.9563)])
    span = rng.uniform(0.004, 0.03)
    ext = (cx - span, cy - span * h / w, cx + span, cy + span * h / w)
    half = (max(8, w // 2), max(8, h // 2))  # computed at half size: it is costly, and soft
    mb = Image.effect_mandelbrot(half, ext, 100).resize(size, Image.Resampling.BICUBIC)
    mb = ImageOps.autocontrast(mb)
    if rng.random() < 0.5:
        mb = ImageOps.mirror(mb)
    hist, goal, cut = mb.histogram(), rng.uniform(0.4, 0.75) * w * h, 0
    while cut < 254 and goal > 0:  # the subject covers roughly 25..60 % of the frame
        goal, cut = goal - hist[cut], cut + 1
    mask = mb.point(_lut(lambda v: (v - cut) * 12))
    subj = _texture(rng, size, _rand_colour(rng, 0, 70), _rand_colour(rng, 140, 255), w / 30)
    subj = ImageChops.multiply(subj, ImageOps.colorize(mb, (90,) * 3, (255,) * 3))
    return Image.composite(subj, img, mask)


def make_photo(seed: int, width: int, height: int, *, mode: str = "RGB") -> Image.Image:
    """A deterministic photo-like image (``mode`` "RGB", "L" or "CMYK") of ``width`` x ``height``.

    Same seed and size give the same pixels (with the same Pillow build).
    """
    if width < 8 or height < 8:
        raise UsageError(f"image size {width}x{height} is too small",
                         "use a width and height of at least 8 pixels")
    if mode not in ("RGB", "L", "CMYK"):
        raise UsageError(f"image mode {mode!r} is not supported", "use 'RGB', 'L' or 'CMYK'")
    rng = random.Random(seed)
    scale = min(1.0, _WORK_MAX / max(width, height))
    work = (max(8, round(width * scale)), max(8, round(height * scale)))
    scene = rng.choice((_landscape, _landscape, _city, _closeup))
    img = scene(rng, work).filter(ImageFilter.BoxBlur(rng.uniform(0.3, 0.7)))  # lens softness
    # per-image colour gain (white balance) and exposure/gamma
    exposure, gamma = rng.uniform(0.75, 1.2), rng.uniform(0.85, 1.15)
    gains = [exposure * rng.uniform(0.88, 1.12) for _ in range(3)]
    table = [_clip(255 * min(1.0, g * v / 255) ** gamma) for g in gains for v in range(256)]
    img = img.point(table)
    vig = ImageOps.invert(Image.radial_gradient("L")).resize(work, Image.Resampling.BILINEAR)
    strength = rng.uniform(0.15, 0.45)
    vig = vig.point(_lut(lambda v: 255 * (1 - strength * (1 - v / 255) ** 1.5)))
    img = ImageChops.multiply(img, Image.merge("RGB", (vig, vig, vig)))
    if work != (width, height):
        img = img.resize((width, height), Image.Resampling.BICUBIC)
    # fine texture and film grain at full resolution
    fine = _value_noise(rng, (width, height), 2.5).point(_lut(lambda v: 128 + (v - 128) * 0.08))
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height))
    grain = ImageChops.add(grain.point(_gaussian_lut(rng.uniform(2.0, 4.5))), fine, 1.0, -128)
    img = ImageChops.add(img, Image.merge("RGB", (grain, grain, grain)), 1.0, -128)
    return img if mode == "RGB" else img.convert(mode)


# ---------------------------------------------------------------- corpus files


def _exif(year: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "condorkit"  # Make
    exif[0x0110] = "demo camera"  # Model
    exif[0x0132] = f"{year:04d}:06:01 12:00:00"  # DateTime
    exif[0x0112] = orientation
    return exif.tobytes()


def _bomb_png(path: Path) -> tuple[int, int]:
    """A small 1-bit PNG whose pixel count exceeds twice Pillow's MAX_IMAGE_PIXELS."""
    limit = 2 * (Image.MAX_IMAGE_PIXELS or _DEFAULT_MAX_PIXELS)
    width = 16_000
    height = limit // width + 64
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    block = row * 256
    parts = [comp.compress(block) for _ in range(height // 256)]
    parts += [comp.compress(row * (height % 256)), comp.flush()]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts))
                     + chunk(b"IEND", b""))
    return width, height


def _write_variant(path: Path, variant: str, seed: int, size: tuple[int, int],
                   year: int) -> tuple[int, int]:
    """Write one file; returns its stored pixel size."""
    w, h = size
    rng = random.Random(seed ^ 0x5EED)
    quality = rng.randint(85, 92)
    if variant == "empty":
        path.write_bytes(b"")
        return 0, 0
    if variant == "text":
        path.write_text(f"This is not a JPEG image (condorkit demo, seed {seed}).\n"
                        "A web server returned an error page instead of the photo.\n")
        return 0, 0
    if variant == "bomb":
        return _bomb_png(path)
    if variant == "gray":
        make_photo(seed, w, h, mode="L").save(path, "JPEG", quality=quality, exif=_exif(year, 1))
    elif variant == "cmyk":
        make_photo(seed, w, h, mode="CMYK").save(path, "JPEG", quality=quality)
    elif variant == "png16":
        gray = make_photo(seed, w, h, mode="L").convert("I")
        low = Image.frombytes("L", (w, h), rng.randbytes(w * h)).convert("I")
        wide = ImageMath.lambda_eval(lambda a: a["hi"] * 256 + a["lo"], hi=gray, lo=low)
        assert isinstance(wide, Image.Image)
        wide.convert("I;16").save(path, "PNG", compress_level=3)
    else:
        photo = make_photo(seed, w, h)
        if variant in ("rgb", "progressive", "exif-rotated", "truncated"):
            orient = rng.choice((6, 8)) if variant == "exif-rotated" else 1
            photo.save(path, "JPEG", quality=quality, progressive=variant == "progressive",
                       exif=_exif(year, orient))
            if variant == "truncated":
                data = path.read_bytes()
                path.write_bytes(data[: len(data) // 2])
        elif variant == "png":
            photo.save(path, "PNG", compress_level=3)
        elif variant == "gif":
            photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path, "GIF")
        elif variant == "webp":
            photo.save(path, "WEBP", quality=quality)
        elif variant == "palette-alpha":
            pal = photo.quantize(colors=255)
            pal.putpalette((pal.getpalette() or [])[: 255 * 3] + [0, 0, 0])
            r = min(w, h) // 4
            cx, cy = rng.randrange(w), rng.randrange(h)
            ImageDraw.Draw(pal).ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
            pal.save(path, "PNG", transparency=255)
        else:  # pragma: no cover - guarded by write_corpus
            raise AssertionError(variant)
    return w, h


def _years(seed: int, n: int) -> list[int]:
    rng = random.Random(seed * 7919 + 17)
    return [_ANCHOR_YEARS[i] if i < len(_ANCHOR_YEARS) else rng.randint(YEAR_MIN, YEAR_MAX)
            for i in range(n)]


def write_corpus(folder: str | Path, n: int, *,
                 sizes: Sequence[tuple[int, int]] = ((640, 480),), seed: int = 0,
                 variants: Sequence[str] = ("rgb",)) -> list[CorpusFile]:
    """Write ``n`` files into ``folder`` (created if needed), cycling through ``sizes`` and
    ``variants``; file ``i`` is ``img{i:04d}-{variant}.{ext}``.

    Variants: "rgb", "gray" (mode L), "progressive", "exif-rotated" (EXIF orientation 6 or 8; the
    pixels are stored unrotated), "cmyk", "png", "png16" (16-bit grayscale, mode I;16), "gif",
    "webp", "palette-alpha" (PNG mode P with a transparent index), and broken files: "truncated"
    (a JPEG cut in half), "empty" (zero bytes, .jpg), "text" (text named .jpg) and "bomb" (a small
    PNG over twice Pillow's MAX_IMAGE_PIXELS, so opening it raises DecompressionBombError).
    Years are deterministic in 1880..2020; the first five are 2001, 2015, 1880, 2020, 1936.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise UsageError(f"unknown image variant(s): {', '.join(unknown) or '(none given)'}",
                         f"choose from: {', '.join(VARIANTS)}")
    if not sizes or any(w < 8 or h < 8 for w, h in sizes):
        raise UsageError(f"bad image sizes {list(sizes)!r}",
                         "give (width, height) pairs of at least 8 pixels")
    if n < 0:
        raise UsageError(f"cannot write {n} files", "ask for zero or more files")
    out = Path(folder).absolute()
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, year in enumerate(_years(seed, n)):
        variant = variants[i % len(variants)]
        size = tuple(sizes[i % len(sizes)])
        path = out / f"img{i:04d}-{variant}.{_EXT.get(variant, 'jpg')}"
        w, h = _write_variant(path, variant, seed * 1_000_003 + i, (size[0], size[1]), year)
        files.append(CorpusFile(path, variant, w, h, year))
    return files


def write_manifest(path: str | Path, files: Iterable[CorpusFile], *,
                   url_base: str | None = None) -> int:
    """Write the tutorial manifest (``URL-or-path year`` per line); returns the number of lines.

    With ``url_base`` (e.g. ``"http://127.0.0.1:PORT/"``) each line is ``url_base`` plus the
    file's name, percent-encoded (so serve the folder that holds the files); otherwise the file's
    absolute path, or its ``file://`` URL if the path contains whitespace (the manifest splits
    fields on whitespace).
    """
    lines = []
    for f in files:
        if url_base is not None:
            where = url_base.rstrip("/") + "/" + quote(f.path.name)
        else:
            where = str(Path(f.path).absolute())
            if any(c.isspace() for c in where):
                where = Path(where).as_uri()
        lines.append(f"{where} {f.year}\n")
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


def make_demo_job(folder: str | Path, n_images: int = 24, seed: int = 0, *,
                  sizes: Sequence[tuple[int, int]] = DEMO_SIZES,
                  variants: Sequence[str] = DEMO_VARIANTS) -> DemoJob:
    """Make a photodemo job folder: ``images/`` with photo-like JPEGs and ``manifest.txt``.

    The manifest holds ABSOLUTE paths to the images: jobs run in a scratch folder (locally and
    on the pool, whose workers see the submit folder at the same path), so paths relative to the
    job folder would break, and plain paths need no URL handling in the program. Copying the
    program and condorkit.toml into the folder is left to the caller.
    """
    job = Path(folder).absolute()
    images = job / "images"
    files = write_corpus(images, n_images, sizes=sizes, seed=seed, variants=variants)
    manifest = job / "manifest.txt"
    write_manifest(manifest, files)
    return DemoJob(job, images, manifest, tuple(files))


@dataclass(frozen=True)
class DemoSetup:
    """A ready-to-run photodemo job folder (see :func:`setup_photodemo`)."""

    folder: Path
    n_images: int
    manifest: Path
    program: Path
    project_file: Path


def setup_photodemo(folder: str | Path, n_images: int = 120, seed: int = 0,
                    chunk: int = 20) -> DemoSetup:
    """Create a complete photodemo job folder: images, manifest, program and condorkit.toml.

    The program and the project file are the packaged ``condorkit.examples.photodemo`` ones;
    ``chunk`` replaces the example's chunk size so a small demo still spreads over the cores.
    """
    from importlib import resources

    made = make_demo_job(folder, n_images, seed)
    example = resources.files("condorkit.examples.photodemo")
    program = made.folder / "luminance.py"
    program.write_bytes(example.joinpath("luminance.py").read_bytes())
    toml = example.joinpath("condorkit.toml").read_text(encoding="utf-8")
    toml = "\n".join(f"chunk = {int(chunk)}" if line.startswith("chunk =") else line
                     for line in toml.splitlines()) + "\n"
    project = made.folder / "condorkit.toml"
    project.write_text(toml, encoding="utf-8")
    return DemoSetup(made.folder, len(made.files), made.manifest, program, project)
