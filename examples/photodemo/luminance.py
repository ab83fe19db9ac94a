#!/usr/bin/env python3
"""photodemo job: the luminance of each photo in a chunk (the OSG photodemo tutorial's job).

Usage (as the condorkit wrapper calls it): ``python3 luminance.py ROWS OUT``

Reads the chunk's rows (``url``, ``year``), fetches each image (http/https with a timeout and
bounded retries, ``file://`` or a plain path), and computes the tutorial's luminance exactly:
``sqrt(0.241 r^2 + 0.691 g^2 + 0.068 b^2) / 256`` where r, g, b are Pillow ``ImageStat`` RMS of each
channel. One-channel images give ``rms / 2**bits`` (``rms/256`` for 8 bits); other modes (CMYK,
palette, alpha) are converted to RGB first. A row that cannot be fetched or decoded becomes a
record with ``error``; the chunk goes on. Downloads run ahead of decoding in a few threads with a
bounded window. The results file appears atomically (see ckjob.py).

Environment knobs: PHOTODEMO_TIMEOUT (seconds per attempt, default 15), PHOTODEMO_RETRIES
(extra attempts after a transient failure, default 2), PHOTODEMO_FETCHERS (threads, default 4),
PHOTODEMO_WINDOW (rows fetched ahead, default 8), PHOTODEMO_MAX_BYTES (largest body, default 64 MiB).
"""

import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO

import ckjob
from PIL import Image, ImageStat

TIMEOUT = float(os.environ.get("PHOTODEMO_TIMEOUT", "15"))
RETRIES = int(os.environ.get("PHOTODEMO_RETRIES", "2"))
FETCHERS = int(os.environ.get("PHOTODEMO_FETCHERS", "4"))
WINDOW = int(os.environ.get("PHOTODEMO_WINDOW", "8"))
MAX_BYTES = int(os.environ.get("PHOTODEMO_MAX_BYTES", str(64 << 20)))


class FetchError(Exception):
    """A row's image could not be fetched; the message is the recorded reason."""


def _http_get(url):
    """One bounded HTTP GET: raises FetchError(permanent) or OSError (transient)."""
    req = urllib.request.Request(url, headers={"User-Agent": "condorkit-photodemo/1"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_BYTES:
                raise FetchError("body of %s bytes is larger than the %d-byte limit"
                                 % (length, MAX_BYTES))
            body = resp.read(MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                raise FetchError("body is larger than the %d-byte limit" % MAX_BYTES)
            if length and length.isdigit() and len(body) < int(length):
                # http.client returns a short body without raising: the connection dropped
                raise OSError("truncated body: got %d of %s bytes" % (len(body), length))
            return body
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise OSError("HTTP %d %s" % (exc.code, exc.reason))
        raise FetchError("HTTP %d %s" % (exc.code, exc.reason))


def fetch(url):
    """Return a file path or a BytesIO for the row's image."""
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""
    if scheme in ("", "file"):
        path = urllib.parse.unquote(parsed.path) if scheme == "file" else url
        if not os.path.isfile(path):
            raise FetchError("no such file: %s" % path)
        return path
    if scheme not in ("http", "https"):
        raise FetchError("unsupported URL scheme %r" % scheme)
    delay = 0.5
    for attempt in range(RETRIES + 1):
        try:
            return BytesIO(_http_get(url))
        except FetchError:
            raise
        except (OSError, urllib.error.URLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            if attempt == RETRIES:
                raise FetchError("%s after %d attempt(s)" % (reason, attempt + 1))
            time.sleep(delay)
            delay *= 2
    raise FetchError("unreachable")


def luminance(source):
    """The tutorial's luminance of one image (file path or file object)."""
    with Image.open(source) as im:
        mode = im.mode
        if mode == "RGB":
            r, g, b = ImageStat.Stat(im).rms
            return math.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 256
        if mode == "L":
            return ImageStat.Stat(im).rms[0] / 256
        if mode.startswith("I;16") or mode == "I":
            # high-bit-depth gray: RMS over the pixel values, scaled by the value range
            pixels = im.convert("I").getdata()
            bits = 16 if mode.startswith("I;16") else 32
            n = len(pixels)
            total = math.fsum(float(v) * v for v in pixels)
            return math.sqrt(total / n) / (1 << bits) if n else 0.0
        if mode == "1":
            return ImageStat.Stat(im.convert("L")).rms[0] / 256
        if mode == "LA":
            return ImageStat.Stat(im.getchannel("L")).rms[0] / 256
        rgb = im.convert("RGB")
        r, g, b = ImageStat.Stat(rgb).rms
        return math.sqrt(0.241 * r * r + 0.691 * g * g + 0.068 * b * b) / 256


def _describe(exc):
    if isinstance(exc, FetchError):
        return "fetch: %s" % exc
    return "decode: %s: %s" % (type(exc).__name__, exc)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: luminance.py ROWS OUT\n")
        return 2
    header, rows = ckjob.read_rows(argv[1])
    started = time.time()
    t0 = time.perf_counter()
    records = []
    with ThreadPoolExecutor(max_workers=max(1, FETCHERS)) as pool:
        futures = {}
        for i, row in enumerate(rows[:WINDOW]):
            futures[i] = pool.submit(fetch, row["url"])
        for i, row in enumerate(rows):
            nxt = i + WINDOW
            if nxt < len(rows):
                futures[nxt] = pool.submit(fetch, rows[nxt]["url"])
            rec = {"row": row["row"], "url": row["url"], "year": row["year"]}
            try:
                rec["luminance"] = luminance(futures.pop(i).result())
            except Exception as exc:  # a bad row never stops the chunk
                rec["error"] = _describe(exc)
            records.append(rec)
    elapsed = time.perf_counter() - t0
    extra = {"photos_per_s": round(len(records) / elapsed, 6) if elapsed > 0 else None}
    doc = ckjob.make_results(header, records, started, elapsed, "photodemo/luminance.py", extra)
    ckjob.write_results(argv[2], doc)
    sys.stderr.write("photodemo: %d photos in %.2f s (%.1f photos/s), %d error(s)\n"
                     % (len(records), elapsed, extra["photos_per_s"] or 0.0, doc["errors"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
