"""ckjob: the job-side half of condorkit's file formats (standard library only).

This single file travels with every job (it is transferred next to the program) and is also
imported by condorkit on the submit side, so that the rows file, the results file and the
results digest have exactly one implementation.

Formats
-------
Rows file (``rows-START.jsonl``): line 1 is a header object
``{"format": "condorkit-rows/1", "start": S, "count": N, "key": K, "options": O,
"columns": [...]}`` (a piece of a chunk also has ``rows_key``); each further line is one
manifest row ``{"row": R, "line": L, <column>: <value>, ...}``. K (or ``rows_key``) is
:func:`rows_key` of O and the rows, so a job recomputes it from the rows it really read.

Results file (``results-START.json``): one JSON object
``{"format": "condorkit-results/1", "start", "count", "key", "program", "host", "python",
"started", "elapsed_s", "rows_per_s", ..., "records": [...], "digest": "sha256:..."}``.
Each record has ``row`` and the row's columns, and either the program's values or ``error``;
``rows_key`` is the key of the rows the job read (computed by :func:`read_rows`).
``digest`` covers every other field, so a truncated or hand-edited file is detected.

Fetching
--------
:func:`fetch` gets one input's bytes (http/https with a timeout, bounded retries and a size
limit, ``file://`` or a plain path); :func:`readahead` has the kernel read a local input ahead
of its row; :class:`Budget` bounds the bytes a program holds while it fetches ahead;
:class:`FetchError` carries the reason a row's input could not be fetched.

Must run on Python >= 3.6 (whatever a worker has).
"""

import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import threading
import time
import urllib.parse

ROWS_FORMAT = "condorkit-rows/1"
RESULTS_FORMAT = "condorkit-results/1"
FETCH_BLOCK = 1 << 16  # bytes read (and taken from the budget) at a time
ROW_DEADLINE = 120.0  # default seconds for fetching one row's input, every attempt included
_OBJECT_REPR = re.compile(r"<(?:_io|io)\.\w+ object at 0x[0-9a-fA-F]+>")


def describe(exc, what=None):
    """``Type: message`` of an exception for a row's ``error``, without object reprs such as
    ``<_io.BytesIO object at 0x...>`` (they say nothing and differ from run to run): they are
    replaced by ``what`` (e.g. the row's URL) or "the input"."""
    text = _OBJECT_REPR.sub(lambda m: what or "the input", str(exc))
    return "%s: %s" % (type(exc).__name__, text)


def canonical(obj):
    """The canonical byte form of a JSON value (sorted keys, no spaces, ASCII only)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def results_digest(doc):
    """sha256 over every field of a results document except ``digest`` itself."""
    body = {k: v for k, v in doc.items() if k != "digest"}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def rows_key(options, rows):
    """The key of a run over ``rows``: sha256 over ``options`` (the job's options hash) and each
    row's canonical JSON without its ``line`` (so comments and blank lines change nothing).
    condorkit's chunk key is exactly this over the chunk's rows, computed from the manifest."""
    h = hashlib.sha256(options.encode("ascii"))
    for row in rows:
        rec = dict(row)
        rec.pop("line", None)
        h.update(json.dumps(rec, sort_keys=True, ensure_ascii=True).encode("ascii"))
    return h.hexdigest()


def read_rows(path, max_line=1 << 24):
    """Read a rows file. Returns ``(header, rows)``; raises ValueError naming file and line.

    When the header carries the job's ``options`` hash, the key of the rows actually read is
    computed (:func:`rows_key`) and must equal the header's ``rows_key`` (a piece of a chunk) or
    ``key`` (a whole chunk): a rows file whose rows were changed without its key is refused,
    so no result is ever stamped with the key of other rows. ``header["rows_key"]`` is then the
    computed key, which :func:`make_results` records. Lines longer than ``max_line`` are refused.
    """
    rows = []
    with open(path, "rb") as fh:
        first = fh.readline(max_line + 1)
        try:
            header = json.loads(first.decode("utf-8"))
        except ValueError:
            raise ValueError("%s:1: not a condorkit rows file (bad header)" % path)
        if not isinstance(header, dict) or header.get("format") != ROWS_FORMAT:
            raise ValueError("%s:1: expected format %s" % (path, ROWS_FORMAT))
        lineno = 1
        while True:
            line = fh.readline(max_line + 1)
            if not line:
                break
            lineno += 1
            if len(line) > max_line:
                raise ValueError("%s:%d: line longer than %d bytes" % (path, lineno, max_line))
            try:
                row = json.loads(line.decode("utf-8"))
            except ValueError:
                raise ValueError("%s:%d: truncated or corrupt row" % (path, lineno))
            rows.append(row)
    if len(rows) != header.get("count"):
        raise ValueError("%s: header says %s rows, file has %d"
                         % (path, header.get("count"), len(rows)))
    options = header.get("options")
    if isinstance(options, str):
        computed = rows_key(options, rows)
        claimed = header.get("rows_key", header.get("key"))
        if computed != claimed:
            raise ValueError("%s: its rows do not match its key (the rows file was changed "
                             "after condorkit wrote it); refusing to compute them" % path)
        header["rows_key"] = computed
    return header, rows


FSYNC_VAR = "CKJOB_FSYNC"  # "0": do not wait for the disk (condorkit's local backend sets it)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that the file is either absent or complete.

    The bytes go to a temporary file in the same folder, are flushed to disk, and the temporary
    file is renamed over ``path``; a killed writer leaves only a ``.tmp`` file behind. With
    ``CKJOB_FSYNC=0`` in the environment the bytes are not forced to the disk first: a killed
    process still leaves nothing that looks complete, and after a power cut a results file
    whose bytes were lost fails its digest, so its chunk runs again. condorkit's local backend
    sets it for its pieces, whose results it moves into the results folder itself (the
    per-file wait cost ~0.3 ms, 1.6 s for 5,000 small chunks).
    """
    sync = os.environ.get(FSYNC_VAR, "1") != "0"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def hostname():
    """This machine's name (``socket`` is imported only where it is needed: fetching)."""
    try:
        return os.uname().nodename
    except AttributeError:  # no uname (Windows)
        import socket

        return socket.gethostname()


def make_results(header, records, started, elapsed, program, extra=None):
    """Build a complete results document (with digest) for one chunk."""
    doc = {
        "format": RESULTS_FORMAT,
        "start": header["start"],
        "count": header["count"],
        "key": header.get("key", ""),
        "program": program,
        "host": hostname(),
        "python": "%d.%d.%d" % sys.version_info[:3],
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(elapsed, 6),
        "rows_per_s": round(len(records) / elapsed, 6) if elapsed > 0 else None,
        "errors": sum(1 for r in records if "error" in r),
        "records": records,
    }
    if header.get("rows_key"):  # computed by read_rows from the rows actually read
        doc["rows_key"] = header["rows_key"]
    if extra:
        doc.update(extra)
    doc["digest"] = results_digest(doc)
    return doc


def write_results(path, doc):
    """Atomically write a results document built by :func:`make_results`."""
    atomic_write_bytes(path, json.dumps(doc, indent=None, ensure_ascii=True,
                                        allow_nan=False).encode("ascii") + b"\n")


MAX_ROW = 2 ** 53  # row numbers stay exact in JSON and fit every array type


def check_results(doc, expect_start=None, expect_count=None, expect_key=None,
                  expect_rows_key=None):
    """Return a list of problems with a results document (empty when it is valid).

    THE validity rule, used by the program's side and by every part of condorkit (local resume,
    pool submit and monitoring, aggregate): a ``condorkit-results/1`` object whose digest matches,
    whose ``start`` (>= 1) and ``count`` are integers, and whose records are objects carrying each
    integer row number start..start+count-1 exactly once (``1.0`` or ``true`` is not a row
    number). ``expect_*`` also require these rows and this key; ``expect_rows_key`` the key of
    the rows the results were computed from (recorded by :func:`make_results` from
    :func:`read_rows`): a document without one, or with another, is refused. Raises ValueError
    when the document holds NaN or Infinity (no digest can be computed for it).
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
    if expect_rows_key is not None and doc.get("rows_key") != expect_rows_key:
        problems.append("computed from other rows than this chunk's (rows_key %s)"
                        % ("missing" if "rows_key" not in doc else "differs"))
    try:
        rows = [r["row"] for r in records]
    except (KeyError, TypeError):  # a record without a row, or not an object (JSON values
        # other than objects all refuse ["row"] with a TypeError)
        rows = [r.get("row") if isinstance(r, dict) else None for r in records]
    kinds = set(map(type, rows))
    expected = list(range(start, start + count))
    if kinds - {int, type(None)}:  # 1.0 or true is not a row number
        problems.append("row numbers must be integers")
    elif rows != expected and (type(None) in kinds or sorted(rows) != expected):
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
            rec["error"] = describe(exc)
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


class _Watch(object):
    """The total deadline of one fetch: when it passes, every socket the fetch opened is shut
    down, so whatever the fetch is blocked in (connect, interim responses, headers, a trickling
    body) returns at once. Sockets are guarded through a duplicate descriptor, which stays valid
    (and so can never be reused by another connection) until :meth:`close`."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self._socks = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def left(self):
        return self.deadline - time.monotonic()

    def guard(self, sock):
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.fired:
                _shutdown(dup)

    def _fire(self):
        with self._lock:
            self.fired = True
            for s in self._socks:
                _shutdown(s)

    def close(self):
        self._timer.cancel()
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
            del self._socks[:]


def _shutdown(sock):
    import socket

    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_local = threading.local()


class _GuardedConnection(object):
    """Mixin for http.client connections: connect within the time left and hand the socket to
    the current fetch's :class:`_Watch`."""

    def __init__(self, *args, **kwargs):
        super(_GuardedConnection, self).__init__(*args, **kwargs)
        self._create_connection = self._guarded_connection

    def _guarded_connection(self, address, timeout=None, source_address=None):
        import socket

        watch = getattr(_local, "watch", None)
        if watch is not None:
            left = watch.left()
            if left <= 0:
                raise socket.timeout("deadline passed before connecting")
            timeout = left if timeout is None else min(timeout, left)
        sock = socket.create_connection(address, timeout, source_address)
        if watch is not None:
            watch.guard(sock)
        return sock


_HTTP = []  # [(opener, http.client, urllib.error, urllib.request)] once built
_HTTP_LOCK = threading.Lock()


def _http():
    """``(opener, http.client, urllib.error, urllib.request)`` for http(s) fetches, built at the
    first one. Importing http.client and urllib.request (with email, ssl, ...) costs about 30 ms
    of CPU, which every job (and condorkit itself, which imports this file for its formats)
    would otherwise pay without fetching anything over HTTP."""
    with _HTTP_LOCK:
        if not _HTTP:
            _HTTP.append(_build_http())
        return _HTTP[0]


def _build_http():
    import http.client
    import urllib.error
    import urllib.request

    class _Response(http.client.HTTPResponse):
        """Skips every interim response (``102 Processing``, ``103 Early Hints``, not only
        ``100 Continue`` as http.client does) instead of taking it for the final one; the
        row's deadline bounds a server that sends them for ever."""

        def _read_status(self):
            while True:
                version, status, reason = http.client.HTTPResponse._read_status(self)
                if not (100 < status < 200) or status == 101:
                    return version, status, reason
                while True:  # the interim response's header lines, up to the blank line
                    line = self.fp.readline(65537)
                    if len(line) > 65536:
                        raise http.client.LineTooLong("header line")
                    if line in (b"\r\n", b"\n", b""):
                        break

    class _HTTPConnection(_GuardedConnection, http.client.HTTPConnection):
        response_class = _Response

    class _HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(_HTTPConnection, req)

    handlers = [_HTTPHandler]
    if hasattr(http.client, "HTTPSConnection"):  # Python built with ssl
        class _HTTPSConnection(_GuardedConnection, http.client.HTTPSConnection):
            response_class = _Response

        class _HTTPSHandler(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(_HTTPSConnection, req, context=self._context)

        handlers.append(_HTTPSHandler)

    class _RedirectHandler(urllib.request.HTTPRedirectHandler):
        """Follow redirects only to http and https (urllib alone also follows ``ftp://``)."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            scheme = urllib.parse.urlsplit(newurl).scheme.lower()
            if scheme not in ("http", "https"):
                raise FetchError("HTTP %d redirect to a %s URL (%s); only http and https are "
                                 "followed" % (code, scheme or "relative", _short(newurl)))
            return urllib.request.HTTPRedirectHandler.redirect_request(
                self, req, fp, code, msg, headers, newurl)

    opener = urllib.request.build_opener(*(handlers + [_RedirectHandler]))
    return opener, http.client, urllib.error, urllib.request


def _short(text, limit=200):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _http_get(url, budget, index, timeout, max_bytes, agent):
    """One bounded HTTP GET: returns the body, raises FetchError(permanent) or OSError.

    Nothing of a failed attempt's body stays referenced: the parts are dropped before any
    exception leaves this function (an exception's traceback keeps this frame alive).
    """
    opener, _, urlerror, request = _http()
    req = request.Request(url, headers={"User-Agent": agent})
    held = 0
    parts = []
    try:
        with opener.open(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FetchError("body of %s bytes is larger than the %d-byte limit"
                                 % (length, max_bytes))
            got = 0
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
            del parts[:]
            if length and length.isdigit() and len(body) < int(length):
                n = len(body)
                body = b""
                raise OSError("connection closed after %d of %s bytes" % (n, length))
    except urlerror.HTTPError as exc:
        del parts[:]
        budget.release(held)
        code, reason = exc.code, exc.reason
        exc.close()
        if code >= 500 or code == 429:
            raise OSError("HTTP %d %s" % (code, reason))
        raise FetchError("HTTP %d %s" % (code, reason))
    except BaseException:
        del parts[:]
        budget.release(held)
        raise
    budget.release(held - len(body))  # keep exactly the body's bytes
    return body


def _split(url):
    """``(parsed, scheme)`` of an input URL; a one-letter "scheme" is a Windows drive, so a
    plain path. A malformed URL (e.g. an unclosed IPv6 bracket) is a :class:`FetchError`: the
    row's input is wrong, not its decoding."""
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise FetchError("malformed URL: %s" % exc)
    return parsed, (parsed.scheme.lower() if len(parsed.scheme) > 1 else "")


def is_remote(url):
    """True for an http(s) URL (worth fetching ahead, on a thread); False for a local input (a
    path, ``file://``) and for a malformed URL (its fetch fails at once, naming it)."""
    try:
        return _split(url)[1] in ("http", "https")
    except FetchError:
        return False


def _local_path(url, scheme, parsed):
    """The path a ``file://`` URL (this machine only) or a plain path names."""
    if scheme == "file" and parsed.netloc.lower() not in ("", "localhost"):
        raise FetchError("file URL names the host %r: only local files can be read "
                         "(file:///PATH or file://localhost/PATH)" % parsed.netloc)
    return urllib.parse.unquote(parsed.path) if scheme == "file" else url


def readahead(url, max_bytes):
    """Have the kernel start reading a local input (its first ``max_bytes``) into the page
    cache while the program works on earlier rows, so the bytes are in memory when the row is
    due. Nothing is copied into the program and it holds no memory (the page cache gives pages
    back under pressure). http(s) URLs, missing and non-regular files: nothing. Returns True
    when the hint was given; never raises."""
    advise = getattr(os, "posix_fadvise", None)
    try:
        parsed, scheme = _split(url)
        if advise is None or scheme not in ("", "file"):
            return False
        path = _local_path(url, scheme, parsed)
        if not os.path.isfile(path):  # never open a device or a FIFO
            return False
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (FetchError, OSError, ValueError):
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        advise(fd, 0, max_bytes, os.POSIX_FADV_WILLNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _read_local(url, scheme, parsed, budget, index, max_bytes):
    """A ``file://`` URL or a plain path: only a regular file on this machine is read."""
    path = _local_path(url, scheme, parsed)
    if not os.path.isfile(path):
        raise FetchError("no such file: %s" % path)
    try:  # non-blocking: a FIFO swapped in after the check must not hang the row
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FetchError("cannot read %s: %s" % (path, exc.strerror or exc))
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FetchError("not a regular file: %s" % path)
        if st.st_size > max_bytes:
            raise FetchError("file of %d bytes is larger than the %d-byte limit"
                             % (st.st_size, max_bytes))
        budget.acquire(st.st_size, index)
        try:
            # read the size stat gives, plus one byte: asking for max_bytes + 1 would allocate
            # (and then shrink) a buffer of the limit's size for every file
            data = fh.read(st.st_size + 1)
            if len(data) > st.st_size:  # the file grew after the stat: read on, to the limit
                data += fh.read(max_bytes + 1 - len(data))
        except OSError as exc:
            budget.release(st.st_size)
            raise FetchError("cannot read %s: %s" % (path, exc.strerror or exc))
    budget.release(st.st_size - len(data))
    if len(data) > max_bytes:
        budget.release(len(data))
        raise FetchError("file is larger than the %d-byte limit" % max_bytes)
    return data


def fetch(url, *, timeout, retries, max_bytes, budget=None, index=0, agent="condorkit-job/1",
          deadline=None):
    """Return the bytes of one input; the caller releases ``len(result)`` from ``budget``.

    ``url`` is http/https, ``file://`` (this machine only) or a plain path (a regular file).
    Each HTTP wait (connect, a read) lasts at most ``timeout`` seconds; ``deadline`` (seconds,
    None: none) bounds the whole fetch, every attempt and pause included: connecting, interim
    ``1xx`` responses, headers and a trickling body all count. A transient failure (connection
    error, timeout, HTTP 5xx or 429, a short body) is retried ``retries`` more times with
    doubling pauses from 0.5 s; other HTTP errors, redirects to anything but http/https, bodies
    or files over ``max_bytes``, missing files and other schemes fail at once. ``index`` is the
    row's position for ``budget`` (unbounded when None); ``agent`` is the User-Agent sent.
    Every failure raises :class:`FetchError` with the reason to record; it is raised afresh, so
    it references no partial body.
    """
    budget = budget if budget is not None else Budget(1 << 62)
    parsed, scheme = _split(url)
    if scheme in ("", "file"):
        reason = None
        try:
            return _read_local(url, scheme, parsed, budget, index, max_bytes)
        except FetchError as exc:
            reason = str(exc)
        raise FetchError(reason)
    if scheme not in ("http", "https"):
        raise FetchError("unsupported URL scheme %r" % scheme)
    client = _http()[1]
    watch = _Watch(deadline) if deadline is not None else None
    delay = 0.5
    reason = None
    attempt = 0
    try:
        for attempt in range(1, retries + 2):
            budget.begin()
            _local.watch = watch
            try:
                data = _http_get(url, budget, index, timeout, max_bytes, agent)
                if watch is not None and watch.fired:  # a shut-down body can look complete
                    budget.release(len(data))
                    data = None
                    reason = "deadline"
                else:
                    return data
            except FetchError as exc:
                reason = "!" + str(exc)  # permanent
            except (OSError, client.HTTPException, ValueError) as exc:
                reason = str(getattr(exc, "reason", None) or exc)
            finally:
                _local.watch = None
                budget.end()
            if watch is not None and watch.fired:
                reason = "deadline"
            if reason == "deadline" or reason.startswith("!") or attempt > retries:
                break
            if watch is not None and watch.left() < delay:
                reason = "deadline"
                break
            time.sleep(delay)
            delay *= 2
    finally:
        if watch is not None:
            watch.close()
    if reason == "deadline":
        raise FetchError("no complete response within the %g s deadline for a row "
                         "(%d attempt(s))" % (deadline, attempt))
    if reason.startswith("!"):
        raise FetchError(reason[1:])
    raise FetchError("%s after %d attempt(s)" % (reason, attempt))
