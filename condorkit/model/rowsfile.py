"""The rows files and chunk keys: a chunk's rows as the JSON lines a worker reads.

Owns the bytes of ``chunks/rows-START.jsonl`` (a JSON header line, then one line per row: the
row's values by column name, ``line`` and ``row``, exactly as
``json.dumps(rec, sort_keys=True, ensure_ascii=True)`` writes them) and the chunk key (sha256 over
the job's options hash, then each row's JSON without ``line``: ``ckjob.rows_key``). Both are built
many rows at a time from precomputed pieces, byte for byte what the per-row ``json.dumps`` gives
(tests/unit/test_rowsfile.py compares them), because existing results stay valid only while
the keys do not change.

Writing is all or nothing: the rows files go to a staging folder while the manifest streams past
(one chunk in memory at a time) and move into ``chunks/`` only after every line was valid, so a
bad line leaves no ``chunks/`` folder and no changed rows file. A rows file whose bytes are
already in place is not rewritten (a pool job reading it is not disturbed).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

from condorkit.errors import OutputError
from condorkit.model.layout import rows_name
from condorkit.model.manifest import Columns, RowBlock, Tally, iter_blocks
from condorkit.wrappers import ckjob


@dataclass(frozen=True)
class ChunkRows:
    """One chunk's rows from the manifest: where it starts, how many, its key, and (unless only
    the keys were asked for) its rows' JSON lines."""

    start: int
    count: int
    key: str
    body: str


def _interleave(literals: list[str], values: list[list[str]], end: str) -> str:
    """``literals[0] + values[0][i] + literals[1] + values[1][i] ... + end`` for every i, joined."""
    width = 2 * len(values) + 1
    m = len(values[0])
    parts = [end] * (m * width)
    for j, (lit, col) in enumerate(zip(literals, values, strict=True)):
        parts[2 * j::width] = [lit] * m
        parts[2 * j + 1::width] = col
    return "".join(parts)


class RowEncoder:
    """The JSON of many rows at once, given each column's values already JSON-encoded."""

    def __init__(self, columns: Columns) -> None:
        names = list(columns.names)
        self.types = [c.type for c in columns.columns]
        self._line_order = sorted([*names, "line", "row"])  # sort_keys: code point order
        self._key_order = [k for k in self._line_order if k != "line"]
        self._index = {k: i for i, k in enumerate([*names, "line", "row"])}

    @staticmethod
    def _literals(order: list[str]) -> list[str]:
        return [("{" if i == 0 else ", ") + f'"{k}": ' for i, k in enumerate(order)]

    def encode(self, block: RowBlock, m: int) -> list[list[str]]:
        """The first ``m`` rows' values JSON-encoded, column by column (int: ``str``, the same
        digits ``int.__repr__`` gives; str and url: json's own C string encoder)."""
        cols: list[list[str]] = []
        for typ, col in zip(self.types, block.values, strict=True):
            vals = col if m == len(col) else col[:m]
            cols.append(list(map(str if typ == "int" else encode_basestring_ascii, vals)))
        return cols

    def _text(self, order: list[str], parts: list[list[str]], end: str) -> str:
        return _interleave(self._literals(order), [parts[self._index[k]] for k in order], end)

    def keys_text(self, values: list[list[str]], rows: list[str]) -> str:
        """The rows' JSON without ``line``, concatenated (what a chunk key hashes)."""
        return self._text(self._key_order, [*values, [], rows], "}")

    def lines_text(self, values: list[list[str]], lines: list[str], rows: list[str]) -> str:
        """The rows' lines of a rows file, each ending in a newline."""
        return self._text(self._line_order, [*values, lines, rows], "}\n")


def iter_chunk_rows(path: Path, columns: Columns, size: int, cap: int | None, opts: str,
                    tally: Tally, with_lines: bool = True) -> Iterator[ChunkRows]:
    """Stream the manifest once: yield each chunk of ``size`` rows with its key (and lines).

    Every row goes through ``tally`` (rows past ``cap`` too: they are read, so validated, but
    belong to no chunk). The key hashes each row's number and values, not its line in the
    file, so adding a comment or blank line reruns nothing.
    """
    if size < 1:
        raise ValueError(f"chunk size {size}")
    enc = RowEncoder(columns)
    seed = hashlib.sha256(opts.encode())
    h, body, n, start = seed.copy(), [], 0, 1
    for block in iter_blocks(path, columns):
        tally.add_block(block)
        m = len(block) if cap is None else min(len(block), cap - block.first + 1)
        if m <= 0:
            continue
        values = enc.encode(block, m)
        rows = list(map(str, range(block.first, block.first + m)))
        same = isinstance(block.lines, range) and block.lines.start == block.first
        lines = rows if same else list(map(str, block.lines[:m]))
        pos = 0
        while pos < m:
            take = min(m - pos, size - n)
            if take == m:
                seg_v, seg_l, seg_r = values, lines, rows
            else:
                seg_v = [v[pos:pos + take] for v in values]
                seg_l, seg_r = lines[pos:pos + take], rows[pos:pos + take]
            h.update(enc.keys_text(seg_v, seg_r).encode("ascii"))
            if with_lines:
                body.append(enc.lines_text(seg_v, seg_l, seg_r))
            n += take
            pos += take
            if n == size:
                yield ChunkRows(start, n, h.hexdigest(), "".join(body))
                h, body, start, n = seed.copy(), [], start + n, 0
    if n:
        yield ChunkRows(start, n, h.hexdigest(), "".join(body))


def rows_file_bytes(c: ChunkRows, opts: str, columns: Columns) -> bytes:
    """The whole rows file of chunk ``c``: its header line, then its rows."""
    header: dict[str, Any] = {"format": ckjob.ROWS_FORMAT, "start": c.start, "count": c.count,
                              "key": c.key, "options": opts, "columns": list(columns.names)}
    return json.dumps(header, sort_keys=True).encode() + b"\n" + c.body.encode("ascii")


def _holds(path: Path, data: bytes) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
        return False
    with open(path, "rb") as fh:
        return fh.read() == data


class RowsStaging:
    """Rows files written aside, moved into ``chunks/`` by :meth:`commit` (all validated).

    A context manager: the staging folder is removed on leaving, whatever happened, and a stale
    one (a killed process) is removed on entering. Hold the job lock around it.
    Not fsynced file by file (at 1,000,000 rows, 5,000 fsyncs took ~18 s on the test machine):
    rows files are derived data that every mksubmit/run/submit re-creates and compares, and a
    damaged one after a power cut fails its chunk loudly (``ckjob.read_rows``) instead of
    producing results, since results are validated against the key computed from the manifest.
    """

    def __init__(self, staging: Path, chunk_dir: Path, opts: str, columns: Columns) -> None:
        self.staging, self.chunk_dir = staging, chunk_dir
        self.opts, self.columns = opts, columns
        self.keys: list[str] = []
        self._staged: list[str] = []

    def __enter__(self) -> RowsStaging:
        shutil.rmtree(self.staging, ignore_errors=True)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def add(self, c: ChunkRows) -> None:
        """Keep the chunk's key; stage its rows file unless ``chunks/`` already holds it."""
        self.keys.append(c.key)
        data = rows_file_bytes(c, self.opts, self.columns)
        name = rows_name(c.start)
        if _holds(self.chunk_dir / name, data):
            return
        where = self.staging / name
        try:
            if not self._staged:
                self.staging.mkdir(parents=True, exist_ok=True)
            fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fd, 0o644)
                fh.write(data)
        except OSError as exc:
            raise _cannot_write(where, exc) from None
        self._staged.append(name)

    def commit(self) -> None:
        """Move every staged rows file into ``chunks/`` (created if missing)."""
        where = self.chunk_dir
        try:
            if self._staged and not os.path.lexists(self.chunk_dir):  # a new job: one rename
                os.rename(self.staging, self.chunk_dir)
                self._staged = []
                return
            self.chunk_dir.mkdir(parents=True, exist_ok=True)
            for name in self._staged:
                where = self.chunk_dir / name
                os.replace(self.staging / name, where)
        except OSError as exc:
            raise _cannot_write(where, exc) from None
        self._staged = []
        with contextlib.suppress(OSError):
            self.staging.rmdir()


def _cannot_write(where: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {where}: {exc.strerror or exc}",
                       "free some space on that disk (or make the job folder writable), "
                       "then run the same command again")
