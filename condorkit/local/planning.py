"""Planning a piece: how many rows an idle local worker takes from the head of the queue.

Owns the local backend's granularity rule (:func:`plan_piece`) and the costs it is based on
(:class:`Estimate`, learnt by the scheduler from finished attempts). Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """Costs learnt from finished attempts: program seconds per row and start-up per attempt."""

    row_s: float = 0.0  # 0: unknown yet
    overhead_s: float = 0.0


JOIN_MAX_ROWS = 20_000
MIN_PIECE_S = 0.05  # no piece is planned shorter (nor 3 start-ups)
LAST_ROUND = 8  # the rest is split evenly once each worker's part is at most this many min_rows


def plan_piece(spans: Sequence[tuple[int, int, bool]], pending_rows: int, running_rows: float,
               workers: int, est: Estimate, time_limit: float | None = None
               ) -> tuple[int, int]:
    """How much an idle worker takes from the head of the queue: ``(n_spans, rows)``.

    ``spans`` are the ready spans from the head as ``(start, count, fresh)`` (fresh: never
    failed). The worker takes ``rows`` rows from the first ``n_spans`` of them (all of the first
    ``n_spans - 1``, a prefix of the last). Rules:

    - the fair share is the rows still to do (pending plus the estimated rest of running pieces)
      over twice the workers (factoring; before any estimate, over the workers), so pieces
      shrink towards the end of the run and the workers finish together even when rows differ
      in cost (the last pieces are short, so one slow piece cannot hold up the end);
    - the last round: once the even split of what is left (pending plus running, over the
      workers) is at most ``LAST_ROUND`` minimal pieces, an idle worker takes exactly that even
      part, so each worker runs one more piece and all end together (halving on would add
      pieces whose start-ups cost more than the balance they buy);
    - a piece is never cut shorter than 3 start-ups' worth of work (and ``MIN_PIECE_S``):
      ``min_rows``; a cut never leaves a remainder shorter than that, so the last pieces of a
      run are short and the workers end close together;
    - when start-up costs more than 2% of running the head span, adjacent fresh spans are joined
      (across chunk boundaries) until start-up is 2% of the piece, up to the fair share and to
      ``JOIN_MAX_ROWS`` (a joined piece's results stay in memory until its chunks are merged).

    - with a wall-clock ``time_limit`` per piece, chunks are joined only up to half of it (a
      chunk alone is never cut for it: the limit is meant for one chunk).

    Before any attempt has finished (no estimate) spans are only cut at the fair share.
    """
    start, count, fresh = spans[0]
    known = est.row_s > 0 and est.overhead_s > 0
    parts = max(workers, 1) * (2 if known else 1)
    share = math.ceil((pending_rows + running_rows) / parts)
    min_rows = max(1, math.ceil(max(MIN_PIECE_S, 3 * est.overhead_s) / est.row_s)) if known else 1
    even = math.ceil((pending_rows + running_rows) / max(workers, 1))
    if known and even <= LAST_ROUND * min_rows:  # the last round: one piece per worker
        share = even
    take = max(share, min_rows)
    goal = math.ceil(50 * est.overhead_s / est.row_s) if known else 0
    if count >= take or goal <= count or not fresh:
        rows = min(count, take)
        return 1, (count if count - rows < min_rows else rows)
    limit = min(take, goal, max(count, JOIN_MAX_ROWS))
    if time_limit is not None:
        limit = min(limit, max(count, int((time_limit / 2 - est.overhead_s) / est.row_s)))
    n, rows = 1, count
    while n < len(spans) and rows < limit:
        nstart, ncount, nfresh = spans[n]
        if not nfresh or nstart != start + rows:
            break
        add = min(ncount, limit - rows)
        if ncount - add < min_rows:
            add = ncount
        n, rows = n + 1, rows + add
    return n, rows
