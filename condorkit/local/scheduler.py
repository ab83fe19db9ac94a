"""The local backend's scheduler: one queue of row spans, worker processes, retries, copies.

Owns what happens between "these chunks need running" and "these chunks are done or failed":
the queue of pending row spans (pending -> running -> done | failed), how much of it an idle
worker takes (:func:`plan_piece`), starting each attempt in its own scratch folder and process
group, validating and installing its output, retries with backoff, speculative copies of
overdue pieces, killing process groups, and the joblog. :func:`condorkit.local.run` sets it up
and turns its state into a report. Prints nothing.
"""

from __future__ import annotations

import bisect
import os
import queue
import random
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from condorkit.local.joblog import Entry, JobLog
from condorkit.local.pieces import (
    ChunkRowsCache,
    Piece,
    assemble,
    install,
    make_batch,
    make_piece,
    part_path,
    read_valid,
    row_of,
    rows_path,
    write_chunk_results,
    write_piece_rows,
)
from condorkit.local.planning import Estimate, plan_piece
from condorkit.local.workers import (
    PieceProcess,
    Worker,
    WorkerError,
    batch_codes,
    matching,
    start_pool,
)
from condorkit.model.failures import describe
from condorkit.model.job import Job
from condorkit.model.layout import results_name, rows_name, scratch_root
from condorkit.model.scratch import STDERR, make_scratch, place, start
from condorkit.model.starterenv import worker_env
from condorkit.model.states import State
from condorkit.wrappers import ckjob


@dataclass(frozen=True)
class RunProgress:
    """A snapshot for progress bars, passed to ``on_progress`` after every attempt."""

    rows_total: int
    rows_done: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    running: int
    elapsed_s: float


# ----------------------------------------------------------------------------- the scheduler


@dataclass
class Span:
    """Pending rows of one chunk."""

    chunk: int
    start: int
    count: int
    tries: int = 0
    not_before: float = 0.0
    slot: int = 0
    solo: bool = False  # failed before: never joined with other chunks again


@dataclass
class _Copy:
    """One running attempt of a piece."""

    piece: Piece
    tries: int
    slot: int
    seq: int
    proc: subprocess.Popen[bytes] | PieceProcess
    scratch: Path
    t0: float
    wall0: float
    speculative: bool
    solo: bool
    killed: str = ""
    rows_key: str = ""  # the key of the rows placed in the scratch folder
    worker: int = -1  # the persistent worker running it, or -1 (the wrapper)


@dataclass
class ChunkState:
    status: State = State.PENDING
    attempts: int = 0
    reason: str = ""
    cause: str = ""  # the last failed attempt's cause (condorkit.failures.describe)
    log: str = ""  # that attempt's stderr, kept in the log folder
    parts: list[tuple[Piece, dict[str, Any]]] = field(default_factory=list)


def killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Scheduler:
    def __init__(self, job: Job, workers: int, retries: int, dispatch: str, granularity: str,
                 speculate_after: float | None, backoff: float, joblog: Path, grace: float,
                 env: dict[str, str], on_progress: Callable[[RunProgress], None] | None,
                 seed: int | None, persistent: bool = True,
                 time_limit: float | None = None, prestarted: Sequence[Worker] = ()) -> None:
        self.job, self.workers, self.retries = job, workers, retries
        self.time_limit = time_limit
        # persistent workers for a .py program without a bundle: one per worker slot
        self.pool: list[Worker] = []
        self.pool_busy: set[int] = set()
        if persistent and job.bundle is None and job.program.suffix == ".py":
            if matching(prestarted, job.program, env, job.config.request_cpus, workers):
                self.pool = list(prestarted)
            else:
                self.pool = start_pool(job.program, env, job.config.request_cpus, workers,
                                       job.dir)
        for w in prestarted:
            if w not in self.pool:
                w.close()
        self.dispatch, self.adaptive = dispatch, granularity == "auto" and dispatch == "balanced"
        self.speculate_after, self.backoff, self.grace = speculate_after, backoff, grace
        self.env, self.on_progress = env, on_progress
        self.rng = random.Random(seed)
        self.host = os.uname().nodename
        self.root = scratch_root(job.dir)
        self.queues: list[list[Span]] = [[] for _ in range(workers if dispatch == "random" else 1)]
        self.pending_rows = 0
        self.running: list[_Copy] = []
        self.events: queue.Queue[tuple[_Copy, int, float]] = queue.Queue()
        self.chunks: dict[int, ChunkState] = {}
        self.done_pieces: set[tuple[int, int]] = set()
        self.seq = self.attempts = self.retried = self.speculated = self.pieces = 0
        self.rows_total = self.rows_done = 0
        self.est_rows = self.est_elapsed = self.est_over = 0.0
        self.est_n = 0
        self.chunk_rows = ChunkRowsCache()  # chunks being cut into parts, read once
        self.stop = 0
        self.t0 = time.perf_counter()
        self.log = JobLog(joblog, job.dir)

    # -- queue
    def _queue(self, slot: int) -> list[Span]:
        return self.queues[slot if self.dispatch == "random" else 0]

    def push(self, span: Span) -> None:
        span.slot = self.rng.randrange(self.workers) if self.dispatch == "random" else 0
        bisect.insort(self._queue(span.slot), span, key=lambda s: s.start)
        self.pending_rows += span.count

    def estimate(self) -> Estimate:
        if not self.est_n or self.est_rows <= 0:
            return Estimate()
        return Estimate(self.est_elapsed / self.est_rows, self.est_over / self.est_n)

    def _take(self, slot: int, now: float) -> tuple[Piece, int, bool] | None:
        q = self._queue(slot)
        i = next((k for k, s in enumerate(q) if s.not_before <= now), None)
        if i is None:
            return None
        head = q[i]
        n, rows = 1, head.count
        if self.adaptive and head.tries == 0:  # a retried span keeps its shape
            spans = []
            for s in q[i:i + 4096]:
                if s.not_before > now:
                    break
                spans.append((s.start, s.count, not s.solo and s.tries == 0))
            est = self.estimate()
            run_rows = sum(self._rest(c, est, now) for c in self.running if not c.speculative)
            n, rows = plan_piece(spans, self.pending_rows, run_rows, self.workers, est,
                                 self.time_limit)
        batch: list[int] = []
        if n > 1 and self.pool:  # joined whole chunks: a batch in a persistent worker
            total = 0
            for span in q[i:i + n]:
                c = self.job.chunks[span.chunk]
                if span.start != c.start or span.count != c.count or total + span.count > rows:
                    break
                total += span.count
                batch.append(span.chunk)
            if len(batch) > 1:
                n, rows = len(batch), total
            else:
                batch = []
        left = rows
        for k in range(i, i + n):
            span = q[k]
            if left < span.count:  # a prefix of this span; its tail stays pending
                q[k] = Span(span.chunk, span.start + left, span.count - left, span.tries,
                            span.not_before, span.slot, span.solo)
                del q[i:k]
                break
            left -= span.count
        else:
            del q[i:i + n]
        self.pending_rows -= rows
        piece = make_batch(self.job, batch) if batch else make_piece(self.job, head.start, rows)
        return piece, head.tries, head.solo

    def _rest(self, c: _Copy, est: Estimate, now: float) -> float:
        if est.row_s <= 0:
            return float(c.piece.count)
        return max(0.0, c.piece.count - (now - c.t0 - est.overhead_s) / est.row_s)

    # -- launching
    def launch(self, piece: Piece, tries: int, slot: int, solo: bool, speculative: bool) -> None:
        job = self.job
        inputs = (job.program, job.ckjob, *job.extra_inputs, *([job.bundle] if job.bundle else []))
        keys: list[str] = []  # the key of the rows placed: the results must carry it

        def rows(scratch: Path) -> None:
            if piece.batch:
                for i in piece.chunks:
                    chunk = job.chunks[i]
                    place(rows_path(job, chunk), scratch / rows_name(chunk.start))
                keys.append("")  # each run is checked against its own chunk's key
            elif piece.whole:
                place(rows_path(job, job.chunks[piece.chunks[0]]), scratch / piece.rows_file)
                keys.append(job.keys[piece.chunks[0]])
            else:
                keys.append(write_piece_rows(job, piece, scratch, self.chunk_rows))

        scratch = make_scratch(self.root, piece.label, job.wrapper, inputs, fill=rows)
        env = worker_env(self.env, job.config.request_cpus)
        env.setdefault(ckjob.FSYNC_VAR, "0")  # results are checked and moved by this process
        proc: subprocess.Popen[bytes] | PieceProcess | None = None
        free = [k for k in range(len(self.pool)) if k not in self.pool_busy]
        if free:  # the same scratch folder and arguments, run by a persistent worker
            full = dict(env, _CONDOR_SCRATCH_DIR=str(scratch), TMPDIR=str(scratch),
                        TMP=str(scratch), TEMP=str(scratch))  # as model.scratch.start
            starts = [job.chunks[i].start for i in piece.chunks] if piece.batch else [piece.start]
            try:
                proc = self.pool[free[0]].run(scratch, [list(job.arguments(s)) for s in starts],
                                              full)
                self.pool_busy.add(free[0])
            except WorkerError:
                proc = None  # the wrapper, as without workers
        if proc is None and piece.batch:  # no worker to run a batch: one joined piece instead
            shutil.rmtree(scratch, ignore_errors=True)
            self.launch(make_piece(job, piece.start, piece.count), tries, slot, solo, speculative)
            return
        if proc is None:
            proc = start(scratch, job.wrapper.name, job.arguments(piece.start), env)
        self.seq += 1
        copy = _Copy(piece, tries, slot, self.seq, proc, scratch, time.perf_counter(), time.time(),
                     speculative, solo, rows_key=keys[0],
                     worker=free[0] if isinstance(proc, PieceProcess) else -1)
        self.running.append(copy)
        self.attempts += 1
        for i in piece.chunks:
            self.chunks[i].attempts += 1
        threading.Thread(target=self._wait, args=(copy,), daemon=True).start()

    def _wait(self, copy: _Copy) -> None:
        rc = copy.proc.wait()
        self.events.put((copy, rc, time.perf_counter()))

    def enforce_limit(self) -> None:
        """Kill the pieces that ran longer than the wall-clock limit (recorded with why)."""
        if self.time_limit is None:
            return
        now = time.perf_counter()
        for c in self.running:
            if not c.killed and now - c.t0 > self.time_limit:
                c.killed = f"timed out after {self.time_limit:g} s (wall-clock limit per piece)"
                killpg(c.proc.pid, signal.SIGKILL)

    def close_workers(self) -> None:
        for w in self.pool:  # all at once: they end in parallel
            w.shutdown()
        for w in self.pool:
            w.close()

    def fill(self, now: float, speculate: bool = True) -> float:
        """Start work on idle workers; return how long the loop may sleep."""
        self.enforce_limit()
        wake = 0.2
        busy = {c.slot for c in self.running}
        for slot in range(self.workers):
            if slot in busy and self.dispatch == "random" or len(self.running) >= self.workers:
                continue
            got = self._take(slot, now)
            if got is None:
                continue
            self.pieces += 1
            self.launch(got[0], got[1], slot, got[2], False)
            busy.add(slot)
        waiting = [s.not_before - now for q in self.queues for s in q if s.not_before > now]
        if waiting:
            wake = min(wake, max(0.01, min(waiting)))
        if (speculate and self.speculate_after is not None and not self.pending_rows
                and len(self.running) < self.workers):
            self._speculate(now)
        return wake

    def _speculate(self, now: float) -> None:
        est = self.estimate()
        copies: dict[tuple[int, int], int] = {}
        for c in self.running:
            k = (c.piece.start, c.piece.count)
            copies[k] = copies.get(k, 0) + 1
        for c in sorted(self.running, key=lambda c: c.t0):
            age = now - c.t0
            expected = est.overhead_s + est.row_s * c.piece.count if est.row_s else 0.0
            if (copies[(c.piece.start, c.piece.count)] == 1 and not c.killed
                    and age >= max(self.speculate_after or 0.0, 2 * expected)):
                free = set(range(self.workers)) - {r.slot for r in self.running}
                self.speculated += 1
                self.launch(c.piece, c.tries, min(free) if free else c.slot, c.solo, True)
                return

    # -- finishing
    def finish(self, copy: _Copy, rc: int, t_end: float, refill: bool = False) -> None:
        """Check, install and log one ended attempt. ``refill``: first start the next piece on
        the worker this one freed, so checking a batch's results does not keep it idle."""
        self.running.remove(copy)
        self.pool_busy.discard(copy.worker)
        if refill and not self.stop:
            self.fill(time.monotonic(), speculate=False)  # a copy of this piece: no
        if not getattr(copy.proc, "kept", False):  # a kept runner left nothing behind
            killpg(copy.proc.pid, signal.SIGKILL)  # strays the program left behind
        duration = t_end - copy.t0
        piece, key = copy.piece, (copy.piece.start, copy.piece.count)
        err_path = copy.scratch / STDERR
        try:
            tail = err_path.read_bytes()[-2000:].decode("utf-8", "replace")
            shutil.copyfile(err_path, self.job.log_dir / f"{piece.label}.err")
        except OSError:
            tail = ""
        outcome, note = "failed", ""
        others = [c for c in self.running if (c.piece.start, c.piece.count) == key]
        if key in self.done_pieces:
            outcome, note = "superseded", "another copy finished first"
        elif piece.batch:
            outcome, note = self._finish_batch(copy, rc, duration, tail, others)
        elif rc == 0:
            doc, why = read_valid(copy.scratch / piece.results_file, piece.start, piece.count,
                                  piece.key, copy.rows_key)
            missing = [o for o in self.job.outputs(piece.start)
                       if doc is not None and not (copy.scratch / o).is_file()]
            if missing:
                outcome, note = "invalid", f"missing output {', '.join(missing)}"
            elif doc is not None:
                outcome = "done"
                self._accept(copy, doc, duration)
                self._supersede(others)
            else:
                outcome, note = "invalid", f"invalid results: {why}"
        else:
            note = copy.killed or describe(rc, tail)
            if copy.killed == "interrupted":
                outcome = "interrupted"
        if outcome in ("failed", "invalid") and not others and not piece.batch:
            self._failed(copy, note, str(self.job.log_dir / f"{piece.label}.err"))
        if copy.speculative:
            note = (note + "; " if note else "") + "speculative copy"
        self._joblog(copy, rc, duration, outcome, note)
        shutil.rmtree(copy.scratch, ignore_errors=True)
        if self.on_progress:
            self.on_progress(self.progress())

    def _finish_batch(self, copy: _Copy, rc: int, duration: float, tail: str,
                      others: list[_Copy]) -> tuple[str, str]:
        """Check and install each chunk of a finished batch on its own; requeue the chunks
        without valid results alone (our own joining costs them no retry); (outcome, note)."""
        piece, job = copy.piece, self.job
        codes = batch_codes(copy.scratch)
        bad: list[tuple[int, str]] = []
        elapsed = 0.0
        for i in piece.chunks:
            chunk, st = job.chunks[i], self.chunks[i]
            if st.status != State.PENDING:
                continue
            name = results_name(chunk.start)
            code = codes.get(name)
            if code != 0:
                why = copy.killed or (describe(code, tail) if code is not None else
                                      describe(rc, tail) if rc else "the batch ended before it")
                bad.append((i, why))
                continue
            doc, why = read_valid(copy.scratch / name, chunk.start, chunk.count, job.keys[i],
                                  job.keys[i])
            missing = [o for o in job.outputs(chunk.start) if not (copy.scratch / o).is_file()]
            if doc is None or missing:
                bad.append((i, f"invalid results: {why}" if doc is None
                            else f"missing output {', '.join(missing)}"))
                continue
            for o in job.outputs(chunk.start):  # extra outputs first: results imply them
                install(copy.scratch / o, job.results_dir / o)
            install(copy.scratch / name, job.results_dir / name)
            st.status = State.DONE
            self.rows_done += chunk.count
            got = doc.get("elapsed_s")
            elapsed += float(got) if isinstance(got, (int, float)) and got >= 0 else 0.0
        if not bad:
            self.done_pieces.add((piece.start, piece.count))
            if elapsed > 0:
                self._learn(piece.count, elapsed, duration)
            self._supersede(others)
            return "done", ""
        if not others and copy.killed != "interrupted":
            for i, _ in bad:
                chunk = job.chunks[i]
                self.retried += 1
                self.push(Span(i, chunk.start, chunk.count, copy.tries, 0.0, solo=True))
        return ("interrupted" if copy.killed == "interrupted" else "failed",
                f"{len(bad)} of {len(piece.chunks)} chunk(s) without valid results (each runs "
                f"again alone): {bad[0][1]}")

    def _learn(self, rows: int, elapsed: float, duration: float) -> None:
        """Add a finished piece to the estimate: ``elapsed`` s of program time for ``rows``
        rows in ``duration`` s of wall clock (the rest is start-up); nonsense is ignored."""
        if 0 <= elapsed <= duration:
            self.est_rows += rows
            self.est_elapsed += elapsed
            self.est_over += duration - elapsed
            self.est_n += 1

    def _supersede(self, others: list[_Copy]) -> None:
        """A copy won: kill the other copies of the same piece."""
        for other in others:
            other.killed = "superseded"
            killpg(other.proc.pid, signal.SIGKILL)

    def _accept(self, copy: _Copy, doc: dict[str, Any], duration: float) -> None:
        piece, job = copy.piece, self.job
        self.done_pieces.add((piece.start, piece.count))
        self.rows_done += piece.count
        elapsed = doc.get("elapsed_s")
        if isinstance(elapsed, (int, float)):
            self._learn(piece.count, float(elapsed), duration)
        for name in job.outputs(piece.start):  # extra outputs first: results imply them
            install(copy.scratch / name, job.results_dir / name)
        produced = copy.scratch / piece.results_file
        if piece.whole:
            install(produced, job.results_dir / piece.results_file)
            self.chunks[piece.chunks[0]].status = State.DONE
            return
        dest = part_path(job, piece)
        dest.parent.mkdir(parents=True, exist_ok=True)
        install(produced, dest)
        self.add_part(piece, doc)

    def add_part(self, piece: Piece, doc: dict[str, Any]) -> None:
        doc["records"].sort(key=row_of)  # once per part: assemble() then slices it by row
        for i in piece.chunks:
            st = self.chunks[i]
            st.parts.append((piece, doc))
            chunk = self.job.chunks[i]
            covered = sum(min(p.end, chunk.end) - max(p.start, chunk.start) + 1
                          for p, _ in st.parts)
            if covered == chunk.count and st.status == State.PENDING:
                write_chunk_results(self.job, chunk, assemble(self.job, chunk, st.parts))
                st.status = State.DONE
        for p, _ in self.chunks[piece.chunks[0]].parts:
            if all(self.chunks[i].status == State.DONE for i in p.chunks):
                part_path(self.job, p).unlink(missing_ok=True)
        for i in piece.chunks:  # a merged chunk no longer holds its parts' records
            if self.chunks[i].status == State.DONE:
                self.chunks[i].parts = []

    def _failed(self, copy: _Copy, reason: str, log: str = "") -> None:
        """Requeue a failed piece's rows with backoff, or record its chunks failed."""
        piece = copy.piece
        joined = len(piece.chunks) > 1  # our own choice: costs no retry, never joined again
        tries = copy.tries + (0 if joined else 1)
        for i in piece.chunks:
            chunk, st = self.job.chunks[i], self.chunks[i]
            if st.status != State.PENDING:
                continue
            if tries > self.retries:
                st.status, st.reason = State.FAILED, f"{reason} (after {st.attempts} attempt(s))"
                st.cause, st.log = reason, log
                for q in self.queues:
                    for s in [s for s in q if s.chunk == i]:
                        q.remove(s)
                        self.pending_rows -= s.count
                continue
            self.retried += 1
            lo, hi = max(piece.start, chunk.start), min(piece.end, chunk.end)
            delay = 0.0 if joined else min(self.backoff * 2 ** (tries - 1), 60.0)
            self.push(Span(i, lo, hi - lo + 1, tries, time.monotonic() + delay,
                            solo=copy.solo or joined))

    def _joblog(self, c: _Copy, rc: int, duration: float, outcome: str, note: str) -> None:
        chunks = ",".join(str(self.job.chunks[i].start) for i in c.piece.chunks)
        try:
            received = (c.scratch / "_condor_stdout").stat().st_size
        except OSError:
            received = 0
        self.log.write(Entry(c.wall0, duration, rc, received, chunks,
                             f"{c.piece.start}-{c.piece.end}", c.tries + 1, outcome, note))

    def progress(self) -> RunProgress:
        sts = [c.status for c in self.chunks.values()]
        return RunProgress(self.rows_total, self.rows_done, len(sts),
                           sts.count(State.DONE), sts.count(State.FAILED), len(self.running),
                           time.perf_counter() - self.t0)

    # -- the loop
    def loop(self) -> None:
        while not self.stop:
            wake = self.fill(time.monotonic())
            if not self.running:
                if not self.pending_rows:
                    return
            try:
                ev = self.events.get(timeout=wake)
            except queue.Empty:
                continue
            self.finish(*ev, refill=True)
            while True:
                try:
                    self.finish(*self.events.get_nowait(), refill=True)
                except queue.Empty:
                    break

    def kill_all(self, why: str) -> None:
        """Stop every running copy: SIGTERM to its process group, SIGKILL after ``grace``."""
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 10.0)):
            for c in self.running:
                c.killed = c.killed or why
                killpg(c.proc.pid, sig)
            deadline = time.monotonic() + wait
            while self.running and time.monotonic() < deadline:
                try:
                    self.finish(*self.events.get(timeout=0.05))
                except queue.Empty:
                    continue


