"""Chunk arithmetic: every row in exactly one chunk, no empty tail, MAX caps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from condorkit.errors import UsageError
from condorkit.model.chunking import Chunk, iter_chunks


def plan_chunks(total: int, size: int, max_rows: int | None = None) -> tuple[Chunk, ...]:
    return tuple(iter_chunks(total, size, max_rows))


def test_tutorial_numbers() -> None:
    chunks = plan_chunks(5576, 200)
    assert len(chunks) == 28 and chunks[-1] == Chunk(27, 5401, 176)
    assert len(plan_chunks(5576, 7)) == 797
    assert plan_chunks(5576, 7)[-1].count == 5576 - 796 * 7


def test_max_caps_rows_and_never_passes_the_end() -> None:
    assert plan_chunks(10, 4, 6) == (Chunk(0, 1, 4), Chunk(1, 5, 2))
    assert plan_chunks(10, 4, 100)[-1] == Chunk(2, 9, 2)
    assert plan_chunks(0, 4) == ()


@pytest.mark.parametrize("size, mx", [(0, None), (-1, None), (5, 0), (5, -3)])
def test_bad_sizes(size: int, mx: int | None) -> None:
    with pytest.raises(UsageError):
        plan_chunks(10, size, mx)


@given(total=st.integers(0, 3000), size=st.integers(1, 400),
       mx=st.one_of(st.none(), st.integers(1, 4000)))
def test_every_row_in_exactly_one_nonempty_chunk(total: int, size: int, mx: int | None) -> None:
    chunks = plan_chunks(total, size, mx)
    rows = [r for c in chunks for r in c.rows]
    n = total if mx is None else min(total, mx)
    assert rows == list(range(1, n + 1))
    assert all(1 <= c.count <= size for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
