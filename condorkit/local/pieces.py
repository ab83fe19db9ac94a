"""Pieces: the local backend's own granularity, and how their results become chunk results.

Owns the mapping between the job's chunks (fixed by the job: ``results/results-START.json``, one
per chunk, keyed by ``ChunkTask.key``) and the *pieces* the local backend actually runs. A piece is
a contiguous row range that is either

- exactly one chunk (the normal case): it runs with the chunk's own ``chunks/rows-START.jsonl``
  and its validated ``results-START.json`` is moved into ``results/`` as is; or
- a *batch* of adjacent whole chunks (when chunks are so small that starting a piece would
  dominate, and a persistent worker runs it): the program runs once per chunk, one after the
  other in the same process, each on the chunk's own rows file, and each chunk's results are
  validated and moved into ``results/`` as is; or
- a part of one chunk (finer, to balance the tail of a run) or several adjacent whole chunks
  (coarser, the same reason as a batch when no persistent worker runs it): it runs the same
  wrapper and program with a rows file ``rows-START.jsonl`` written for the piece, whose header
  carries the *piece key* (sha256 over ``condorkit-piece/1``, the range and the keys of the chunks
  it overlaps). Its results are kept as ``.condorkit/parts/results-START-COUNT.json``; once every
  row of a chunk is covered by valid parts, :func:`assemble` builds the chunk's results document
  (records of the parts, the chunk's key, a fresh digest over the merged document and a
  ``pieces`` list with each part's metadata) and it is written atomically to ``results/``.

So ``results/`` only ever holds whole-chunk files that validate against the chunk's key, which is
what resume and ``condorkit aggregate`` read; parts live outside it, are checked against their
own key, survive an interrupt (a resumed run reuses the valid ones) and are deleted once merged.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from condorkit.errors import UsageError
from condorkit.model.chunking import Chunk
from condorkit.model.job import Job
from condorkit.model.layout import (
    PART_NAME,
    chunk_dir,
    chunk_label,
    part_name,
    results_name,
    rows_name,
)
from condorkit.model.layout import parts_dir as _parts_dir
from condorkit.model.results import read_valid
from condorkit.wrappers import ckjob

PIECE_FORMAT = "condorkit-piece/1"
# metadata fields every results document has; anything else a program adds is "extra"
_STANDARD = {"format", "start", "count", "key", "program", "host", "python", "started",
             "elapsed_s", "rows_per_s", "errors", "records", "digest", "rows_key"}


@dataclass(frozen=True)
class Piece:
    """Rows ``start .. start+count-1``, touching the chunks with indices ``chunks``."""

    start: int
    count: int
    chunks: tuple[int, ...]
    key: str
    whole: bool  # exactly one whole chunk: runs with the chunk's own rows file
    batch: bool = False  # several whole chunks, each run on its own rows file, one after another

    @property
    def end(self) -> int:
        return self.start + self.count - 1

    @property
    def label(self) -> str:
        return chunk_label(self.start) if self.whole else f"piece-{self.start}-{self.count}"

    @property
    def rows_file(self) -> str:
        return rows_name(self.start)

    @property
    def results_file(self) -> str:
        return results_name(self.start)


def piece_key(start: int, count: int, chunk_keys: Sequence[str]) -> str:
    """The key of a part or coalesced piece: its range and the keys of the chunks it touches."""
    h = hashlib.sha256(f"{PIECE_FORMAT}\0{start}\0{count}".encode())
    for k in chunk_keys:
        h.update(b"\0" + k.encode())
    return h.hexdigest()


def overlapping(job: Job, start: int, count: int) -> tuple[int, ...]:
    """Indices of the job's chunks that hold any of rows ``start .. start+count-1`` (the chunks
    are in row order: a binary search, not a scan of every chunk for every piece)."""
    end = start + count - 1
    chunks = job.chunks
    i = max(0, bisect.bisect_right(chunks, start, key=_chunk_start) - 1)
    found = []
    while i < len(chunks) and chunks[i].start <= end:
        if chunks[i].end >= start:
            found.append(chunks[i].index)
        i += 1
    return tuple(found)


def _chunk_start(chunk: Chunk) -> int:
    return chunk.start


def make_piece(job: Job, start: int, count: int) -> Piece:
    idx = overlapping(job, start, count)
    if not idx:
        raise ValueError(f"rows {start}..{start + count - 1} are outside the job")
    first = job.chunks[idx[0]]
    if len(idx) == 1 and first.start == start and first.count == count:
        return Piece(start, count, idx, job.keys[idx[0]], True)
    if job.chunks[idx[0]].start > start or job.chunks[idx[-1]].end < start + count - 1:
        raise ValueError(f"rows {start}..{start + count - 1} reach past the job's chunks")
    return Piece(start, count, idx, piece_key(start, count, [job.keys[i] for i in idx]), False)


def make_batch(job: Job, indices: Sequence[int]) -> Piece:
    """A batch of the adjacent whole chunks ``indices``: a persistent worker runs the program
    once per chunk with the chunk's own rows file, and each chunk's results are checked and
    installed on their own (no rows file of its own, no merging)."""
    first, last = job.chunks[indices[0]], job.chunks[indices[-1]]
    if list(indices) != list(range(indices[0], indices[-1] + 1)):
        raise ValueError(f"a batch needs adjacent chunks, got {indices}")
    return Piece(first.start, last.end - first.start + 1, tuple(indices),
                 piece_key(first.start, last.end - first.start + 1,
                           [job.keys[i] for i in indices]), False, True)


def rows_path(job: Job, chunk: Chunk) -> Path:
    return chunk_dir(job.dir) / rows_name(chunk.start)


def chunk_rows(job: Job, chunk: Chunk) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and rows of a chunk's rows file, checked against the key the job computed
    from the manifest: a rows file changed since (another mksubmit, a hand edit) is an error."""
    path = rows_path(job, chunk)
    try:
        header, rows = ckjob.read_rows(str(path))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot use {path}: {exc}", "run the command again (it rewrites "
                         "the rows files from the manifest)") from None
    if header.get("rows_key") != job.keys[chunk.index]:
        raise UsageError(f"{path} holds other rows than the manifest did when this command "
                         "started (changed by another mksubmit or run?)",
                         "run the command again; finished chunks are kept")
    return header, rows


class ChunkRowsCache:
    """The checked rows of the last few chunks a run cut into pieces (a chunk split into parts
    is read and checked once, not once per part); at most ``size`` chunks are held. A rows file
    replaced or changed since it was read (another inode, size or modification time) is read
    and checked again, so a rewrite behind the run's back is still refused."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._held: dict[int, tuple[tuple[int, ...], dict[str, Any], list[dict[str, Any]]]] = {}

    def get(self, job: Job, chunk: Chunk) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            st = os.stat(rows_path(job, chunk))
            sig: tuple[int, ...] = (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)
        except OSError:
            sig = ()
        got = self._held.pop(chunk.index, None)
        if got is None or got[0] != sig or not sig:
            header, rows = chunk_rows(job, chunk)
            got = (sig, header, rows)
        self._held[chunk.index] = got  # the most recent last
        while len(self._held) > self.size:
            del self._held[next(iter(self._held))]
        return got[1], got[2]


def write_piece_rows(job: Job, piece: Piece, dest: Path, cache: ChunkRowsCache | None = None
                     ) -> str:
    """Write the rows file of a (non-whole) piece into folder ``dest``; return the key of its
    rows (:func:`ckjob.rows_key`), which the results of the piece must carry as ``rows_key``.
    Only rows that still match the chunk keys computed from the manifest are used."""
    cache = cache or ChunkRowsCache()
    header: dict[str, Any] = {}
    lines: list[bytes] = []
    picked: list[dict[str, Any]] = []
    for i in piece.chunks:
        chunk = job.chunks[i]
        header, rows = cache.get(job, chunk)
        first = max(piece.start, chunk.start) - chunk.start
        for rec in rows[first:piece.end - chunk.start + 1]:
            picked.append(rec)
            lines.append(json.dumps(rec, sort_keys=True).encode() + b"\n")
    key = ckjob.rows_key(header["options"], picked)
    header = {**header, "start": piece.start, "count": piece.count, "key": piece.key,
              "rows_key": key}  # a copy: the cached header stays the chunk's
    with open(dest / piece.rows_file, "wb") as fh:
        fh.write(json.dumps(header, sort_keys=True).encode() + b"\n" + b"".join(lines))
    return key


def parts_dir(job: Job) -> Path:
    return _parts_dir(job.dir)


def part_path(job: Job, piece: Piece) -> Path:
    return parts_dir(job) / part_name(piece.start, piece.count)


def leftover_parts(job: Job, todo: Iterable[int], done: Iterable[int]
                   ) -> list[tuple[Piece, dict[str, Any]]]:
    """Valid parts left by an earlier (interrupted) run for chunks in ``todo``.

    Parts that do not validate (other rows, program or options; truncated) and parts of chunks
    in ``done`` (already merged) are deleted; parts of other chunks are left alone.
    """
    folder = parts_dir(job)
    if not folder.is_dir():
        return []
    wanted, finished = set(todo), set(done)
    found: list[tuple[Piece, dict[str, Any]]] = []
    for path in sorted(folder.iterdir()):
        m = PART_NAME.match(path.name)
        if not m:
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
            continue
        try:
            piece = make_piece(job, int(m.group(1)), int(m.group(2)))
        except ValueError:
            path.unlink(missing_ok=True)
            continue
        if piece.whole or set(piece.chunks) & finished:
            path.unlink(missing_ok=True)
            continue
        if not set(piece.chunks) <= wanted:
            continue
        doc, _ = read_valid(path, piece.start, piece.count, piece.key)
        if doc is None:
            path.unlink(missing_ok=True)
        else:
            found.append((piece, doc))
    found.sort(key=lambda pd: pd[0].start)
    return found


def row_of(record: dict[str, Any]) -> int:
    return int(record["row"])


def assemble(job: Job, chunk: Chunk, parts: Sequence[tuple[Piece, dict[str, Any]]]
             ) -> dict[str, Any]:
    """The chunk's results document built from parts that together cover it exactly once.

    Each part's records must be sorted by row; the cost is O(rows of the chunk + log parts)."""
    records: list[Any] = []
    meta: list[dict[str, Any]] = []
    for piece, doc in sorted(parts, key=lambda pd: pd[0].start):
        recs = doc["records"]  # sorted by row (Scheduler.add_part): O(log n) to find the slice
        mine = recs[bisect.bisect_left(recs, chunk.start, key=row_of):
                    bisect.bisect_right(recs, chunk.end, key=row_of)]
        records.extend(mine)
        share = len(mine) / max(piece.count, 1)
        entry = {k: v for k, v in doc.items()
                 if k not in ("format", "key", "records", "digest", "rows_key")}
        entry["elapsed_s"] = round(float(doc.get("elapsed_s") or 0.0) * share, 6)
        meta.append(entry)
    records.sort(key=lambda r: r["row"])
    elapsed = round(sum(m["elapsed_s"] for m in meta), 6)
    merged: dict[str, Any] = {
        "format": ckjob.RESULTS_FORMAT, "start": chunk.start, "count": chunk.count,
        "key": job.keys[chunk.index],
        "program": meta[0].get("program"),
        "host": ",".join(sorted({str(m.get("host")) for m in meta})),
        "python": meta[0].get("python"),
        "started": min(str(m.get("started")) for m in meta),
        "elapsed_s": elapsed,
        "rows_per_s": round(len(records) / elapsed, 6) if elapsed > 0 else None,
        "errors": sum(1 for r in records if "error" in r),
        "rows_key": job.keys[chunk.index],  # every part was checked against its rows' key
    }
    extras = {k for m in meta for k in m} - _STANDARD - {"rows_key"}
    for k in sorted(extras):  # a program's own fields: kept when every part agrees
        values = [m.get(k) for m in meta]
        if all(v == values[0] for v in values):
            merged[k] = values[0]
    merged["pieces"] = meta
    merged["records"] = records
    merged["digest"] = ckjob.results_digest(merged)
    problems = ckjob.check_results(merged, chunk.start, chunk.count, job.keys[chunk.index])
    if problems:
        raise ValueError(f"merged results of chunk {chunk.start}: {'; '.join(problems)}")
    return merged


def write_chunk_results(job: Job, chunk: Chunk, doc: dict[str, Any]) -> Path:
    """Write a chunk's (merged) results document atomically into ``results/``."""
    path = job.results_dir / results_name(chunk.start)
    ckjob.write_results(str(path), doc)
    return path


def install(src: Path, dest: Path) -> None:
    """Move a validated file into place atomically (copy + rename across file systems)."""
    try:
        os.replace(src, dest)
    except OSError:
        ckjob.atomic_write_bytes(str(dest), src.read_bytes())
