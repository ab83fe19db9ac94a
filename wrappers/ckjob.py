"""ckjob: the job-side half of condorkit's file formats (standard library only).

This single file travels with every job (it is transferred next to the program) and is also
imported by condorkit on the submit side, so that the rows file, the results file and the
results digest have exactly one implementation.

Formats
-------
Rows file (``rows-START.jsonl``): line 1 is a header object
``{"format": "condorkit-rows/1", "start": S, "count": N, "key": K, "columns": [...]}``;
each further line is one manifest row ``{"row": R, "line": L, <column>: <value>, ...}``.

Results file (``results-START.json``): one JSON object
``{"format": "condorkit-results/1", "start", "count", "key", "program", "host", "python",
"started", "elapsed_s", "rows_per_s", ..., "records": [...], "digest": "sha256:..."}``.
Each record has ``row`` and the row's columns, and either the program's values or ``error``.
``digest`` covers every other field, so a truncated or hand-edited file is detected.

Fetching
--------
:func:`fetch` gets one input's bytes (http/https with a timeout, bounded retries and a size
limit, ``file://`` or a plain path); :class:`Budget` bounds the bytes a program holds while it
fetches ahead; :class:`FetchError` carries the reason a row's input could not be fetched.

Must run on Python >= 3.6 (whatever a worker has).
"""

import hashlib
import http.client
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROWS_FORMAT = "condorkit-rows/1"
RESULTS_FORMAT = "condorkit-results/1"
FETCH_BLOCK = 1 << 16  # bytes read (and taken from the budget) at a time


def canonical(obj):
    """The canonical byte form of a JSON value (sorted keys, no spaces, ASCII only)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def results_digest(doc):
    """sha256 over every field of a results document except ``digest`` itself."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def read_rows(path):
    """Read a rows file. Returns ``(header, rows)``; raises ValueError naming file and line."""
    rows = []
    with open(path, "r", encoding="utf-8") as fh:
        first = fh.readline()
        try:
            header = json.loads(first)
        except ValueError:
            raise ValueError("%s:1: not a condorkit rows file (bad header)" % path)
        if not isinstance(header, dict) or header.get("format") != ROWS_FORMAT:
            raise ValueError("%s:1: expected format %s" % (path, ROWS_FORMAT))
        for lineno, line in enumerate(fh, start=2):
            try:
                row = json.loads(line)
            except ValueError:
                raise ValueError("%s:%d: truncated or corrupt row" % (path, lineno))
            rows.append(row)
    if len(rows) != header.get("count"):
        raise ValueError("%s: header says %s rows, file has %d"
                         % (path, header.get("count"), len(rows)))
    return header, rows


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that the file is either absent or complete.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the temporary
    file is renamed over ``path``; a killed writer leaves only a ``.tmp`` file behind.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def make_results(header, records, started, elapsed, program, extra=None):
    """Build a complete results document (with digest) for one chunk."""
    doc = {
        "format": RESULTS_FORMAT,
        "start": header["start"],
        "count": header["count"],
        "key": header.get("key", ""),
        "program": program,
        "host": socket.gethostname(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(elapsed, 6),
        "rows_per_s": round(len(records) / elapsed, 6) if elapsed > 0 else None,
        "errors": sum(1 for r in records if "error" in r),
        "records": records,
    }
    if extra:
        doc.update(extra)
    doc["digest"] = results_digest(doc)
    return doc


def write_results(path, doc):
    """Atomically write a results document built by :func:`make_results`."""
    atomic_write_bytes(path, json.dumps(doc, indent=None, ensure_ascii=True,
                                        allow_nan=False).encode("ascii") + b"\n")


MAX_ROW = 2 ** 53  # row numbers stay exact in JSON and fit every array type


def check_results(doc, expect_start=None, expect_count=None, expect_key=None):
    """Return a list of problems with a results document (empty when it is valid).

    THE validity rule, used by the program's side and by every part of condorkit (local resume,
    pool submit and monitoring, aggregate): a ``condorkit-results/1`` object whose digest matches,
    whose ``start`` (>= 1) and ``count`` are integers, and whose records are objects carrying each
    integer row number start..start+count-1 exactly once (``1.0`` or ``true`` is not a row
    number). ``expect_*`` also require these rows and this key. Raises ValueError when the
    document holds NaN or Infinity (no digest can be computed for it).
    """
    problems = []
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    if doc.get("format") != RESULTS_FORMAT:
        return ["format is %r, expected %r" % (doc.get("format"), RESULTS_FORMAT)]
    if doc.get("digest") != results_digest(doc):
        problems.append("digest mismatch (file was truncated or edited)")
    start, count, records = doc.get("start"), doc.get("count"), doc.get("records")
    if type(start) is not int or type(count) is not int or not isinstance(records, list):
        return problems + ["start, count or records missing"]
    if start < 1:
        problems.append("start is %d; rows are numbered from 1" % start)
    if start + count > MAX_ROW:
        problems.append("rows beyond {:,}: not a real manifest row number".format(MAX_ROW))
    if expect_start is not None and start != expect_start:
        problems.append("start is %d, expected %d" % (start, expect_start))
    if expect_count is not None and count != expect_count:
        problems.append("count is %d, expected %d" % (count, expect_count))
    if expect_key is not None and doc.get("key") != expect_key:
        problems.append("key differs: results are for other rows, program or options")
    rows = [r.get("row") if isinstance(r, dict) else None for r in records]
    if any(x is not None and type(x) is not int for x in rows):
        problems.append("row numbers must be integers")
    elif sorted(rows, key=lambda x: (x is None, x)) != list(range(start, start + count)):
        problems.append("records do not cover rows %d..%d exactly once"
                        % (start, start + count - 1))
    return problems


def map_rows(rows_path, out_path, fn, program=None, extra=None):
    """Run ``fn(row) -> dict`` over every row; an exception becomes that row's ``error``.

    A helper for simple programs: reads the rows file, writes the results file atomically.
    """
    header, rows = read_rows(rows_path)
    started = time.time()
    t0 = time.perf_counter()
    records = []
    for row in rows:
        rec = dict(row)
        rec.pop("line", None)
        try:
            rec.update(fn(row))
        except Exception as exc:  # a bad row never stops the chunk
            rec["error"] = "%s: %s" % (type(exc).__name__, exc)
        records.append(rec)
    elapsed = time.perf_counter() - t0
    doc = make_results(header, records, started, elapsed,
                       program or os.path.basename(sys.argv[0]), extra)
    write_results(out_path, doc)
    return doc


# ------------------------------------------------------------------ fetching inputs


class FetchError(Exception):
    """A row's input could not be fetched; the message is the recorded reason."""


class Budget:
    """Bytes held by fetched-but-unprocessed inputs, bounded by ``limit``.

    ``acquire`` blocks while the bytes would exceed the limit, except for the row the consumer is
    waiting for (``head``, set by ``advance``) and when nothing is held at all, so the loop can
    always progress; the peak held is therefore at most ``limit`` plus one input. ``begin`` and
    ``end`` count requests in flight (``inflight``, ``peak_inflight``).
    """

    def __init__(self, limit):
        self.limit = max(1, int(limit))
        self.used = 0
        self.peak = 0
        self.head = 0
        self.inflight = 0
        self.peak_inflight = 0
        self._cond = threading.Condition()

    def acquire(self, n, index):
        with self._cond:
            while (self.used and self.used + n > self.limit and index != self.head):
                self._cond.wait(0.5)
            self.used += n
            self.peak = max(self.peak, self.used)

    def release(self, n):
        if n:
            with self._cond:
                self.used -= n
                self._cond.notify_all()

    def advance(self, index):
        with self._cond:
            self.head = index
            self._cond.notify_all()

    def begin(self):
        with self._cond:
            self.inflight += 1
            self.peak_inflight = max(self.peak_inflight, self.inflight)

    def end(self):
        with self._cond:
            self.inflight -= 1


def _http_get(url, budget, index, timeout, max_bytes, agent):
    """One bounded HTTP GET: returns the body, raises FetchError(permanent) or OSError."""
    req = urllib.request.Request(url, headers={"User-Agent": agent})
    held = 0
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FetchError("body of %s bytes is larger than the %d-byte limit"
                                 % (length, max_bytes))
            parts, got = [], 0
            while True:
                budget.acquire(FETCH_BLOCK, index)
                held += FETCH_BLOCK
                part = resp.read(FETCH_BLOCK)
                if not part:
                    break
                parts.append(part)
                got += len(part)
                if got > max_bytes:
                    raise FetchError("body is larger than the %d-byte limit" % max_bytes)
            body = b"".join(parts)
            if length and length.isdigit() and len(body) < int(length):
                raise OSError("connection closed after %d of %s bytes" % (len(body), length))
    except urllib.error.HTTPError as exc:
        budget.release(held)
        if exc.code >= 500 or exc.code == 429:
            raise OSError("HTTP %d %s" % (exc.code, exc.reason))
        raise FetchError("HTTP %d %s" % (exc.code, exc.reason))
    except BaseException:
        budget.release(held)
        raise
    budget.release(held - len(body))  # keep exactly the body's bytes
    return body


def fetch(url, *, timeout, retries, max_bytes, budget=None, index=0, agent="condorkit-job/1"):
    """Return the bytes of one input; the caller releases ``len(result)`` from ``budget``.

    ``url`` is http/https, ``file://`` or a plain path. Each HTTP attempt waits at most
    ``timeout`` seconds; a transient failure (connection error, timeout, HTTP 5xx or 429, a short
    body) is retried ``retries`` more times with doubling pauses from 0.5 s; other HTTP errors,
    bodies or files over ``max_bytes``, missing files and other schemes fail at once. ``index`` is
    the row's position for ``budget`` (unbounded when None); ``agent`` is the User-Agent sent.
    Every failure raises :class:`FetchError` with the reason to record.
    """
    budget = budget if budget is not None else Budget(1 << 62)
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""
    if scheme in ("", "file"):
        path = urllib.parse.unquote(parsed.path) if scheme == "file" else url
        if not os.path.isfile(path):
            raise FetchError("no such file: %s" % path)
        size = os.path.getsize(path)
        if size > max_bytes:
            raise FetchError("file of %d bytes is larger than the %d-byte limit"
                             % (size, max_bytes))
        budget.acquire(size, index)
        try:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            budget.release(size)
            raise FetchError("cannot read %s: %s" % (path, exc.strerror or exc))
        budget.release(size - len(data))
        return data
    if scheme not in ("http", "https"):
        raise FetchError("unsupported URL scheme %r" % scheme)
    delay = 0.5
    for attempt in range(retries + 1):
        budget.begin()
        try:
            return _http_get(url, budget, index, timeout, max_bytes, agent)
        except FetchError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            if attempt == retries:
                raise FetchError("%s after %d attempt(s)" % (reason, attempt + 1))
        finally:
            budget.end()
        time.sleep(delay)
        delay *= 2
    raise FetchError("unreachable")
