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

Must run on Python >= 3.6 (whatever a worker has).
"""

import hashlib
import json
import os
import socket
import sys
import tempfile
import time

ROWS_FORMAT = "condorkit-rows/1"
RESULTS_FORMAT = "condorkit-results/1"


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


def check_results(doc, expect_start=None, expect_count=None, expect_key=None):
    """Return a list of problems with a results document (empty when it is valid)."""
    problems = []
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    if doc.get("format") != RESULTS_FORMAT:
        return ["format is %r, expected %r" % (doc.get("format"), RESULTS_FORMAT)]
    if doc.get("digest") != results_digest(doc):
        problems.append("digest mismatch (file was truncated or edited)")
    start, count, records = doc.get("start"), doc.get("count"), doc.get("records")
    if not isinstance(start, int) or not isinstance(count, int) or not isinstance(records, list):
        return problems + ["start, count or records missing"]
    if expect_start is not None and start != expect_start:
        problems.append("start is %d, expected %d" % (start, expect_start))
    if expect_count is not None and count != expect_count:
        problems.append("count is %d, expected %d" % (count, expect_count))
    if expect_key is not None and doc.get("key") != expect_key:
        problems.append("key differs: results are for other rows, program or options")
    rows = [r.get("row") if isinstance(r, dict) else None for r in records]
    if sorted(rows, key=lambda x: (x is None, x)) != list(range(start, start + count)):
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
