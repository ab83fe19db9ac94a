"""Cutting a manifest into row ranges (chunks).

Owns the arithmetic only: given a row count, a chunk size and an optional cap, produce the chunks.
Every row 1..min(total, max) lands in exactly one chunk; the last chunk holds the remainder; no
chunk is ever empty or reaches past the end (the tutorial's empty tail chunk is impossible here).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from condorkit.errors import UsageError


@dataclass(frozen=True, order=True)
class Chunk:
    """Rows ``start .. start+count-1`` (1-based, inclusive); ``index`` counts chunks from 0."""

    index: int
    start: int
    count: int

    def __post_init__(self) -> None:
        if self.index < 0 or self.start < 1 or self.count < 1:
            raise ValueError(f"invalid chunk {self}")

    @property
    def end(self) -> int:
        """The last row of the chunk (inclusive)."""
        return self.start + self.count - 1

    @property
    def rows(self) -> range:
        return range(self.start, self.start + self.count)


def effective_rows(total: int, max_rows: int | None = None) -> int:
    """How many rows a job covers: all of them, or the first ``max_rows``."""
    if total < 0:
        raise ValueError("total must be >= 0")
    if max_rows is not None and max_rows < 1:
        raise UsageError(f"MAX must be a positive number of rows, got {max_rows}",
                         "omit MAX to take every row")
    return total if max_rows is None else min(total, max_rows)


def iter_chunks(total: int, size: int, max_rows: int | None = None) -> Iterator[Chunk]:
    """Yield the chunks covering the first ``min(total, max_rows)`` rows in order."""
    if size < 1:
        raise UsageError(f"CHUNK must be a positive number of rows, got {size}",
                         "e.g. `mksubmit 200` puts 200 rows in each job")
    n = effective_rows(total, max_rows)
    for index, start0 in enumerate(range(0, n, size)):
        yield Chunk(index, start0 + 1, min(size, n - start0))
