#!/usr/bin/env python3
"""photodemo job: the luminance of each photo in a chunk (the OSG photodemo tutorial's job).

Usage (as the condorkit wrapper calls it): ``python3 luminance.py ROWS OUT``

Reads the chunk's rows (``url``, ``year``), fetches each image (http/https with a timeout and
bounded retries, ``file://`` or a plain path), and computes the tutorial's luminance exactly:
``sqrt(0.241 r^2 + 0.691 g^2 + 0.068 b^2) / 256`` where r, g, b are the RMS of each channel, as
Pillow's ``ImageStat`` gives them. One-channel images give ``rms / 2**bits`` (``rms/256`` for 8
bits); other modes (CMYK, palette, alpha) are converted to RGB first. A row that cannot be fetched
or decoded becomes a record with ``error``; the chunk goes on. The results file appears
atomically (see ckjob.py).

Speed. The RMS values come from exact integer sums of squares (no floating-point accumulation),
so the result equals the tutorial's to the last bit or two. Two kernels give the same sums:
  * fast (needs numpy, simplejpeg and opencv-python-headless, see requirements.txt): baseline and
    progressive YCbCr/RGB/gray JPEGs are decoded by libjpeg-turbo (simplejpeg) into a reused
    buffer, split into planes (in bands of rows) and summed with OpenCV's SIMD code. Anything
    else (other formats, CMYK, oversized or slightly corrupt files, a sum that is not a whole
    number) goes to ...
  * pillow: Pillow decodes, ``Image.histogram()`` gives the counts, Python sums them.
Both decode with libjpeg-turbo's default (accurate integer) IDCT and fancy upsampling, like the
tutorial; no DCT-scaled (``draft``) decoding is ever used.

Input overlaps compute: a pool of threads fetches the http(s) rows among the next
PHOTODEMO_WINDOW rows ahead of the one being measured, and the local files among them are handed
to the kernel (``ckjob.readahead``: the disk reads them into the page cache while this row is
measured; the file itself is read when its row is due, as reading it on a thread would only
take CPU from the work). The bytes held (fetched but not yet measured, plus bodies being
received) stay within PHOTODEMO_BUDGET; only the row the loop waits for may exceed it, so
progress is always possible and memory stays below budget + one image. Peak concurrency and
bytes go into the results.

Environment knobs: PHOTODEMO_TIMEOUT (seconds per wait for the server, default 15),
PHOTODEMO_DEADLINE (seconds for a row's whole fetch, every attempt included, default 120),
PHOTODEMO_RETRIES (extra attempts after a transient failure, default 2), PHOTODEMO_FETCHERS
(threads, default 8), PHOTODEMO_WINDOW (rows fetched or read ahead, default 16; 0 fetches and
reads each row only when it is due), PHOTODEMO_MAX_BYTES (largest body, default 64 MiB),
PHOTODEMO_BUDGET (bytes held by fetch-ahead, default 96 MiB), PHOTODEMO_KERNEL (``auto``: fast
when its packages import, else pillow; or ``fast`` / ``pillow``).
"""

import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from io import BytesIO

import ckjob
from PIL import Image

TIMEOUT = float(os.environ.get("PHOTODEMO_TIMEOUT", "15"))
RETRIES = int(os.environ.get("PHOTODEMO_RETRIES", "2"))
FETCHERS = int(os.environ.get("PHOTODEMO_FETCHERS", "8"))
WINDOW = int(os.environ.get("PHOTODEMO_WINDOW", "16"))
MAX_BYTES = int(os.environ.get("PHOTODEMO_MAX_BYTES", str(64 << 20)))
DEADLINE = float(os.environ.get("PHOTODEMO_DEADLINE", str(ckjob.ROW_DEADLINE)))
BUDGET = int(os.environ.get("PHOTODEMO_BUDGET", str(96 << 20)))
KERNEL = os.environ.get("PHOTODEMO_KERNEL", "auto").strip().lower() or "auto"
BLOCK = ckjob.FETCH_BLOCK
BAND_ROWS = 64

_SQUARES = [i * i for i in range(256)]


# ------------------------------------------------------------------ fetching (shared: ckjob.py)


FetchError = ckjob.FetchError
Budget = ckjob.Budget


def fetch(url, budget=None, index=0):
    """Return the bytes of the row's image; the caller releases ``len(result)`` from budget."""
    return ckjob.fetch(url, timeout=TIMEOUT, retries=RETRIES, max_bytes=MAX_BYTES, budget=budget,
                       index=index, agent="condorkit-photodemo/1", deadline=DEADLINE)


# ------------------------------------------------------------------ the luminance kernels


def _rgb_formula(sr, sg, sb, n):
    """The tutorial's formula from exact sums of squares (ImageStat's rms is sqrt(sum2/count))."""
    r, g, b = math.sqrt(sr / n), math.sqrt(sg / n), math.sqrt(sb / n)
    return math.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 256


def _sum_squares(hist, offset=0):
    return sum(map(int.__mul__, _SQUARES, hist[offset:offset + 256]))


def luminance_pillow(source):
    """The tutorial's luminance via Pillow's histogram (file path, file object or bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = BytesIO(source)
    with Image.open(source) as im:
        mode = im.mode
        if mode.startswith("I;16") or mode == "I":
            # high-bit-depth gray: RMS over the pixel values, scaled by the value range
            pixels = im.convert("I").getdata()
            bits = 16 if mode.startswith("I;16") else 32
            n = len(pixels)
            total = math.fsum(float(v) * v for v in pixels)
            return math.sqrt(total / n) / (1 << bits) if n else 0.0
        if mode in ("L", "1", "LA"):
            gray = im if mode == "L" else im.convert("L") if mode == "1" else im.getchannel("L")
            hist = gray.histogram()
            return math.sqrt(_sum_squares(hist) / sum(hist)) / 256
        rgb = im if mode == "RGB" else im.convert("RGB")
        hist = rgb.histogram()
        return _rgb_formula(_sum_squares(hist, 0), _sum_squares(hist, 256),
                            _sum_squares(hist, 512), sum(hist[:256]))


class FastKernel:
    """libjpeg-turbo (simplejpeg) decode into reused buffers + OpenCV SIMD sums of squares."""

    def __init__(self):
        import cv2
        import numpy
        import simplejpeg

        cv2.setNumThreads(1)  # one core per job: no hidden helper threads
        self.cv2, self.np, self.sj = cv2, numpy, simplejpeg
        self._buf = numpy.empty(0, numpy.uint8)
        self._planes = numpy.empty(0, numpy.uint8)

    def _take(self, attr, n):
        buf = getattr(self, attr)
        if buf.size < n:
            buf = self.np.empty(n, self.np.uint8)
            setattr(self, attr, buf)
        return buf[:n]

    def _sum(self, plane):
        """Exact sum of squares of a uint8 plane (OpenCV returns it as a float)."""
        v = self.cv2.norm(plane, self.cv2.NORM_L2SQR)
        k = round(v)
        if abs(v - k) > 0.25:  # not a whole number: never trust it
            raise ArithmeticError("inexact sum of squares %r" % v)
        return k

    def luminance(self, data):
        """The luminance of JPEG bytes, or None when the file is not one this kernel takes."""
        if data[:2] != b"\xff\xd8":
            return None
        height, width, colorspace, _ = self.sj.decode_jpeg_header(data)
        n = width * height
        limit = Image.MAX_IMAGE_PIXELS
        if n <= 0 or (limit and n > limit) or colorspace not in ("YCbCr", "RGB", "Gray"):
            return None  # Pillow decides: its bomb checks, its CMYK conversion
        if colorspace == "Gray":
            out = self._take("_buf", n).reshape(height, width, 1)
            img = self.sj.decode_jpeg(data, colorspace="GRAY", buffer=out, strict=True)
            return math.sqrt(self._sum(img.reshape(height, width)) / n) / 256
        out = self._take("_buf", 3 * n).reshape(height, width, 3)
        img = self.sj.decode_jpeg(data, colorspace="RGB", buffer=out, strict=True)
        # split and sum in bands of rows: the planes stay in the CPU cache (~30 % faster)
        flat = self._take("_planes", 3 * BAND_ROWS * width)
        planes = [flat[i * BAND_ROWS * width:(i + 1) * BAND_ROWS * width].reshape(BAND_ROWS, width)
                  for i in range(3)]
        sr = sg = sb = 0
        for y in range(0, height, BAND_ROWS):
            band = img[y:y + BAND_ROWS]
            rows = band.shape[0]
            parts = planes if rows == BAND_ROWS else [p[:rows] for p in planes]
            parts = self.cv2.split(band, parts)  # in place; the result is used all the same
            sr += self._sum(parts[0])
            sg += self._sum(parts[1])
            sb += self._sum(parts[2])
        return _rgb_formula(sr, sg, sb, n)


_FAST = None


def fast_kernel():
    """The fast kernel, or None when its packages are missing or PHOTODEMO_KERNEL=pillow."""
    global _FAST
    if _FAST is None:
        _FAST = False
        if KERNEL != "pillow":
            try:
                _FAST = FastKernel()
            except Exception as exc:  # missing or broken packages: use Pillow
                if KERNEL == "fast":
                    sys.stderr.write("photodemo: fast kernel unavailable (%s); using Pillow\n"
                                     % exc)
    return _FAST or None


def luminance(source):
    """The tutorial's luminance of one image: bytes, a file path or a file object."""
    if not isinstance(source, (bytes, bytearray, memoryview)):
        if hasattr(source, "read"):
            source = source.read()
        else:
            with open(source, "rb") as fh:
                source = fh.read()
    kernel = fast_kernel()
    if kernel is not None:
        try:
            value = kernel.luminance(source)
        except Exception:  # odd or damaged file: Pillow gives the answer or the error
            value = None
        if value is not None:
            return value
    return luminance_pillow(source)


# ------------------------------------------------------------------ the chunk


def _describe(exc):
    if isinstance(exc, FetchError):
        return "fetch: %s" % exc
    return "decode: %s" % ckjob.describe(exc)


def _measure(row, get, budget):
    """One row's record; ``get()`` returns its bytes (their budget is released afterwards)."""
    rec = {"row": row["row"], "url": row["url"], "year": row["year"]}
    data = b""
    try:
        data = get()
        rec["luminance"] = luminance(data)
    except Exception as exc:  # a bad row never stops the chunk
        rec["error"] = _describe(exc)
    budget.release(len(data))
    return rec


def measure_rows(rows, budget=None):
    """Fetch remote rows ahead, have the kernel read local rows ahead, and measure every row;
    returns ``(records, budget)``."""
    budget = budget or Budget(BUDGET)
    records = []
    window = max(0, WINDOW)
    # remote rows are fetched ahead on threads; a local file is read when its row is due, and
    # only hinted to the kernel ahead of time
    remote = [ckjob.is_remote(row["url"]) for row in rows] if window else []
    ahead = [i for i, far in enumerate(remote) if far]
    futures = {}
    with ThreadPoolExecutor(max_workers=max(1, FETCHERS)) as pool:
        k = 0  # next remote row to submit
        hinted = 0  # the local rows before this one have been handed to the kernel
        for i, row in enumerate(rows):
            while k < len(ahead) and ahead[k] < i + window:  # the remote rows in the window
                j = ahead[k]
                futures[j] = pool.submit(fetch, rows[j]["url"], budget, j)
                k += 1
            hinted = max(hinted, i + 1)
            while hinted < min(len(rows), i + 1 + window):  # the local rows in the window:
                if not remote[hinted]:  # the disk reads them during this row
                    ckjob.readahead(rows[hinted]["url"], MAX_BYTES)
                hinted += 1
            budget.advance(i)
            get = futures.pop(i).result if i in futures else partial(fetch, row["url"],
                                                                      budget, i)
            records.append(_measure(row, get, budget))
    return records, budget


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: luminance.py ROWS OUT\n")
        return 2
    header, rows = ckjob.read_rows(argv[1])
    started = time.time()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    records, budget = measure_rows(rows)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    extra = {
        "photos_per_s": round(len(records) / elapsed, 6) if elapsed > 0 else None,
        "cpu_s": round(cpu, 6),
        "kernel": "fast" if fast_kernel() is not None else "pillow",
        "fetch": {"window": WINDOW, "fetchers": FETCHERS, "budget_bytes": budget.limit,
                  "peak_bytes": budget.peak, "peak_inflight": budget.peak_inflight},
    }
    doc = ckjob.make_results(header, records, started, elapsed, "photodemo/luminance.py", extra)
    ckjob.write_results(argv[2], doc)
    sys.stderr.write("photodemo: %d photos in %.2f s (%.1f photos/s, %s kernel), %d error(s)\n"
                     % (len(records), elapsed, extra["photos_per_s"] or 0.0, extra["kernel"],
                        doc["errors"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
