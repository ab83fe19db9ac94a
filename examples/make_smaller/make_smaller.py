#!/usr/bin/env python3
"""make_smaller job: a smaller JPEG of every input (the Oropo tutorial's ``djpeg F | cjpeg``).

Usage (as the condorkit wrapper calls it): ``python3 make_smaller.py ROWS OUT``

For each row (column ``url``: http/https, ``file://`` or a plain path) it writes a JPEG whose
longest side is at most SMALLER_MAX_SIDE (1024) pixels, at quality SMALLER_QUALITY (85), with the
EXIF orientation applied to the pixels (the output carries no EXIF, so no viewer rotates it
again). Images already small enough keep their size. All outputs of the chunk go into ONE
uncompressed tarball ``smaller-START.tar`` (members ``ROW-NAME.jpg``) written atomically BEFORE
the results file; the job lists it in ``outputs`` so it travels back with the results (HTCondor's
transfer_output_files, or the local backend's copy). Each results record names the tarball
(``archive``: a chunk the local backend split into pieces has one per piece) and the member
(``file``) that hold the row's picture, its size and the source's, or gives ``error``.

Kernels, both from the same decoded pixels' point of view:
  * fast (numpy + simplejpeg + opencv-python-headless): libjpeg-turbo decodes baseline and
    progressive JPEGs at a DCT scale M/8 (M in 1, 2, 3, 4, 8: the fast IDCTs) that is still at
    least the target size (``djpeg -scale M/8`` does the same with any M), OpenCV resamples the
    rest of the way (see ``resample``), numpy applies the orientation, libjpeg-turbo encodes;
  * pillow (any other input: PNG, WebP, CMYK JPEG, odd files): ``draft`` + LANCZOS + exif
    transpose + save.
Quality: PSNR of the luma against the slow reference (full-size decode, EXIF transpose, LANCZOS to
the same size, same encoder and quality) is above 41 dB on photo-like images; see docs/perf.md.

Environment knobs: SMALLER_MAX_SIDE (default 1024), SMALLER_QUALITY (default 85),
SMALLER_KERNEL (``auto``, ``fast`` or ``pillow``), and the fetch knobs PHOTODEMO_TIMEOUT,
PHOTODEMO_DEADLINE, PHOTODEMO_RETRIES, PHOTODEMO_FETCHERS, PHOTODEMO_WINDOW, PHOTODEMO_MAX_BYTES,
PHOTODEMO_BUDGET (same meaning as in the photodemo's luminance.py).
"""

import io
import os
import re
import sys
import tarfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import ckjob
from PIL import Image

MAX_SIDE = int(os.environ.get("SMALLER_MAX_SIDE", "1024"))
QUALITY = int(os.environ.get("SMALLER_QUALITY", "85"))
KERNEL = os.environ.get("SMALLER_KERNEL", "auto").strip().lower() or "auto"
TIMEOUT = float(os.environ.get("PHOTODEMO_TIMEOUT", "15"))
RETRIES = int(os.environ.get("PHOTODEMO_RETRIES", "2"))
FETCHERS = int(os.environ.get("PHOTODEMO_FETCHERS", "8"))
WINDOW = int(os.environ.get("PHOTODEMO_WINDOW", "16"))
MAX_BYTES = int(os.environ.get("PHOTODEMO_MAX_BYTES", str(64 << 20)))
DEADLINE = float(os.environ.get("PHOTODEMO_DEADLINE", str(ckjob.ROW_DEADLINE)))
BUDGET = int(os.environ.get("PHOTODEMO_BUDGET", str(96 << 20)))
ORIENTATION = 0x0112
TARBALL = "smaller-{start}.tar"
_T = Image.Transpose
#: EXIF orientation -> the transpose that shows the picture upright (as ImageOps.exif_transpose)
_TRANSPOSE = {2: _T.FLIP_LEFT_RIGHT, 3: _T.ROTATE_180, 4: _T.FLIP_TOP_BOTTOM, 5: _T.TRANSPOSE,
              6: _T.ROTATE_270, 7: _T.TRANSVERSE, 8: _T.ROTATE_90}


# ------------------------------------------------------------------ fetching (shared: ckjob.py)


FetchError = ckjob.FetchError
Budget = ckjob.Budget


def fetch(url, budget, index=0):
    """The bytes of the row's image; the caller releases ``len(result)`` from ``budget``."""
    return ckjob.fetch(url, timeout=TIMEOUT, retries=RETRIES, max_bytes=MAX_BYTES, budget=budget,
                       index=index, agent="condorkit-make-smaller/1", deadline=DEADLINE)


# ------------------------------------------------------------------ shrinking


def target_size(width, height, max_side=None):
    """The output size: longest side ``max_side`` (rounded), never larger than the input."""
    max_side = MAX_SIDE if max_side is None else max_side
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def dct_scale(width, height, tw, th):
    """The M of the M/8 DCT-scaled decode: the smallest of 1, 2, 3, 4, 8 whose output is at least
    ``tw`` x ``th``. libjpeg-turbo's 5/8, 6/8 and 7/8 IDCTs are plain C and measured slower than
    the SIMD full-size decode, so they are never used."""
    for m in (1, 2, 3, 4):
        if -(-width * m // 8) >= tw and -(-height * m // 8) >= th:
            return m
    return 8


def orient_array(cv2, img, orientation):
    """Apply EXIF orientation 2..8 to an image array (OpenCV copies), as Pillow's exif_transpose
    does; a one-channel (H, W, 1) array stays three-dimensional."""
    if orientation == 2:
        out = cv2.flip(img, 1)
    elif orientation == 3:
        out = cv2.flip(img, -1)
    elif orientation == 4:
        out = cv2.flip(img, 0)
    elif orientation == 5:
        out = cv2.transpose(img)
    elif orientation == 6:
        out = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)
    elif orientation == 7:
        out = cv2.transpose(cv2.flip(img, -1))
    elif orientation == 8:
        out = cv2.rotate(img, cv2.ROTATE_90_COUNTERCLOCKWISE)
    else:
        return img
    return out[:, :, None] if out.ndim == 2 else out


class FastKernel:
    """Scaled libjpeg-turbo decode, OpenCV resample, numpy orientation, libjpeg-turbo encode."""

    def __init__(self):
        import cv2
        import numpy
        import simplejpeg

        cv2.setNumThreads(1)
        self.cv2, self.np, self.sj = cv2, numpy, simplejpeg

    def lanczos_taps(self, ratio):
        """The Lanczos-3 low-pass of a ``ratio``-times downscale, sampled at whole pixels."""
        np = self.np
        n = int(np.ceil(3 * ratio))
        x = np.arange(-n, n + 1, dtype=np.float64)
        k = np.sinc(x / ratio) * np.sinc(x / (3 * ratio))
        k[np.abs(x) >= 3 * ratio] = 0
        return (k / k.sum()).astype(np.float32)

    def resample(self, img, tw, th):
        """The rest of the way after DCT scaling (at most 2x): when more than 1.1x remains, the
        image is first low-passed with the Lanczos-3 kernel of that ratio (the reference's
        filter; a gaussian was 0.3-7 dB worse against it), then bicubic does the resampling."""
        cv2 = self.cv2
        ratio = max(img.shape[1] / tw, img.shape[0] / th)
        if ratio > 1.1:
            taps = self.lanczos_taps(ratio)
            img = cv2.sepFilter2D(img, -1, taps, taps, borderType=cv2.BORDER_REFLECT)
        out = cv2.resize(img, (tw, th), interpolation=cv2.INTER_CUBIC)
        return out[:, :, None] if out.ndim == 2 else out

    def shrink(self, data, orientation, max_side, quality):
        """``(jpeg, (w, h), (source w, source h))``, or None for an input this kernel skips."""
        if data[:2] != b"\xff\xd8":
            return None
        height, width, colorspace, _ = self.sj.decode_jpeg_header(data)
        limit = Image.MAX_IMAGE_PIXELS
        if (width * height <= 0 or (limit and width * height > limit)
                or colorspace not in ("YCbCr", "RGB", "Gray")):
            return None
        gray = colorspace == "Gray"
        tw, th = target_size(width, height, max_side)
        m = dct_scale(width, height, tw, th)
        img = self.sj.decode_jpeg(data, colorspace="GRAY" if gray else "RGB",
                                  min_width=-(-width * m // 8), min_height=-(-height * m // 8),
                                  strict=True)
        if img.shape[1] != tw or img.shape[0] != th:
            img = self.resample(img, tw, th)
        img = self.np.ascontiguousarray(orient_array(self.cv2, img, orientation))
        jpeg = self.sj.encode_jpeg(img, quality=quality, colorspace="GRAY" if gray else "RGB",
                                   colorsubsampling="Gray" if gray else "420")
        return jpeg, (img.shape[1], img.shape[0]), (width, height)


def shrink_pillow(data, max_side=None, quality=None):
    """The Pillow way for any image Pillow opens: draft, LANCZOS, exif transpose, save."""
    max_side = MAX_SIDE if max_side is None else max_side
    quality = QUALITY if quality is None else quality
    with Image.open(io.BytesIO(data)) as im:
        src = im.size
        orientation = im.getexif().get(ORIENTATION, 1)
        tw, th = target_size(im.width, im.height, max_side)
        mode = "L" if im.mode in ("L", "1", "I;16", "I") else "RGB"
        box = None
        if im.format == "JPEG" and (tw, th) != im.size:
            _, box = im.draft(mode if im.mode != "CMYK" else None, (tw, th)) or (None, None)
        small = im.convert(mode) if im.mode != mode else im
        if small.size != (tw, th):
            small = small.resize((tw, th), Image.Resampling.LANCZOS, box=box)
        if orientation in _TRANSPOSE:
            small = small.transpose(_TRANSPOSE[orientation])
        out = io.BytesIO()
        small.save(out, "JPEG", quality=quality)
        return out.getvalue(), small.size, src


_FAST = None


def fast_kernel():
    global _FAST
    if _FAST is None:
        _FAST = False
        if KERNEL != "pillow":
            try:
                _FAST = FastKernel()
            except Exception as exc:  # missing or broken packages: use Pillow
                if KERNEL == "fast":
                    sys.stderr.write("make_smaller: fast kernel unavailable (%s)\n" % exc)
    return _FAST or None


def orientation_of(data):
    """The EXIF orientation (1..8) of an image, 1 when absent or unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(ORIENTATION, 1)
    except Exception:
        return 1
    return value if value in range(1, 9) else 1


def shrink(data, max_side=None, quality=None):
    """One input's bytes -> ``(jpeg bytes, (w, h), (source w, source h))``."""
    max_side = MAX_SIDE if max_side is None else max_side
    quality = QUALITY if quality is None else quality
    kernel = fast_kernel()
    if kernel is not None:
        try:
            done = kernel.shrink(data, orientation_of(data), max_side, quality)
        except Exception:  # odd or damaged file: Pillow gives the answer or the error
            done = None
        if done is not None:
            return done
    return shrink_pillow(data, max_side, quality)


# ------------------------------------------------------------------ the chunk


def member_name(row, url):
    """``ROW-NAME.jpg``: the row number keeps names unique, the source name keeps them readable."""
    base = os.path.basename(urllib.parse.unquote(urllib.parse.urlsplit(url).path)) or "image"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(base)[0])[:80].strip("._") or "image"
    return "%d-%s.jpg" % (row, stem)


def _describe(exc):
    if isinstance(exc, FetchError):
        return "fetch: %s" % exc
    return "decode: %s" % ckjob.describe(exc)


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def run_chunk(rows, tar_path):
    """Shrink every row into the tarball at ``tar_path`` (atomically); returns the records."""
    budget = Budget(BUDGET)
    records = []
    archive = os.path.basename(tar_path)
    folder = os.path.dirname(os.path.abspath(tar_path))
    tmp = os.path.join(folder, "." + os.path.basename(tar_path) + ".tmp")
    with open(tmp, "wb") as fh, tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) \
            as tar, ThreadPoolExecutor(max_workers=max(1, FETCHERS)) as pool:
        futures = {}
        ahead = max(1, WINDOW)
        for i in range(min(ahead, len(rows))):
            futures[i] = pool.submit(fetch, rows[i]["url"], budget, i)
        for i, row in enumerate(rows):
            if i + ahead < len(rows):
                futures[i + ahead] = pool.submit(fetch, rows[i + ahead]["url"], budget, i + ahead)
            budget.advance(i)
            rec = {"row": row["row"], "url": row["url"]}
            data = b""
            try:
                data = futures.pop(i).result()
                jpeg, (w, h), (sw, sh) = shrink(data)
                name = member_name(row["row"], row["url"])
                _add(tar, name, jpeg)
                rec.update(archive=archive, file=name, width=w, height=h, bytes=len(jpeg),
                           source_width=sw, source_height=sh, source_bytes=len(data))
            except Exception as exc:  # a bad row never stops the chunk
                rec["error"] = _describe(exc)
            budget.release(len(data))
            records.append(rec)
        tar.close()
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, tar_path)
    return records, budget


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: make_smaller.py ROWS OUT\n")
        return 2
    header, rows = ckjob.read_rows(argv[1])
    started = time.time()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    tar_name = TARBALL.format(start=header["start"])
    out_dir = os.path.dirname(os.path.abspath(argv[2]))
    records, budget = run_chunk(rows, os.path.join(out_dir, tar_name))
    elapsed = time.perf_counter() - t0
    extra = {"outputs": [tar_name], "max_side": MAX_SIDE, "quality": QUALITY,
             "cpu_s": round(time.process_time() - cpu0, 6),
             "kernel": "fast" if fast_kernel() is not None else "pillow",
             "fetch": {"window": WINDOW, "fetchers": FETCHERS, "budget_bytes": budget.limit,
                       "peak_bytes": budget.peak}}
    doc = ckjob.make_results(header, records, started, elapsed, "make_smaller/make_smaller.py",
                             extra)
    ckjob.write_results(argv[2], doc)
    sys.stderr.write("make_smaller: %d images in %.2f s (%s kernel), %d error(s) -> %s\n"
                     % (len(records), elapsed, extra["kernel"], doc["errors"], tar_name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
