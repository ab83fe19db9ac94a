"""Reading the state of a submitted run: from the bindings and the job event log only.

Owns status, wait, history and host histogram of a run recorded by
:mod:`condorkit.condor.submit`. The state of each chunk comes from three sources, never from
``condor_q`` text:

* ``Schedd.query`` for jobs still in the queue (idle, running, held, completed-but-spooled);
* ``Schedd.history`` for jobs that left it (exit code, host, run time, remove reason);
* the run's job event log (``JobEventLog`` of ``logs/condorkit.log``): attempts, evictions,
  execute hosts, exit codes, hold reasons (also when the schedd forgot a job);

plus the job folder itself: a chunk is ``done`` only when its job exited 0 AND its results file
is valid for the chunk's rows and key (:func:`condorkit.model.results.valid_result`).
Held and failed chunks carry a one-line reason (hold reason, exit code, missing or invalid output,
and the wrapper's ``condorkit-wrapper: error: ...`` line from ``logs/chunk-START.err``).
Library code: returns frozen dataclasses and prints nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from condorkit.condor import queueads
from condorkit.condor.submit import (
    CONFIG_HINT,
    ChunkEntry,
    RunRecord,
    _htcondor,
    connect,
    remove,
    retrieve,
)
from condorkit.errors import CondorError
from condorkit.model.failures import FailureCause, describe, group
from condorkit.model.fileio import open_regular
from condorkit.model.results import valid_result
from condorkit.model.states import POOL_END_STATES, POOL_STATES, State

#: Chunk states, in display order. ``completed``: exited 0 in a spooled run, outputs not yet
#: retrieved. ``held`` and ``failed`` are bad end states, ``done`` the good one.
_JOB_STATUS = {1: "idle", 2: "running", 3: "removed", 4: "completed", 5: "held",
               6: "running", 7: "running"}
SPOOLING_INPUT = 16  # HoldReasonCode of a freshly spooled job: transient, not a failure
RETRIEVED = "condorkit: outputs retrieved"  # RemoveReason of a spooled job after retrieval
_PROJECTION = ["ProcId", "JobStatus", "HoldReason", "HoldReasonCode", "ExitCode", "ExitBySignal",
               "ExitSignal", "NumJobStarts", "RemoteHost", "LastRemoteHost", "RemoveReason",
               "RemoteWallClockTime", "CompletionDate", "CondorkitStart", *queueads.PROJECTION]


@dataclass(frozen=True)
class ChunkStatus:
    """One chunk of a run as far as HTCondor and the job folder tell."""

    index: int
    start: int
    count: int
    proc: int
    state: State
    attempts: int
    exit_code: int | None
    host: str
    hold_reason: str = ""
    hold_code: int | None = None
    result_problem: str = ""
    wrapper_error: str = ""
    stderr_last: str = ""
    reason: str = ""
    cause: str = ""  # held or failed: the cause, grouped by RunStatus.causes
    log: str = ""  # its stderr log in the job folder
    releasing: bool = False  # held, but its own periodic_release says it will be released
    holds: tuple[str, ...] = ()  # every hold of the job so far, oldest first (event log)


@dataclass(frozen=True)
class RunStatus:
    """Every chunk of one run at one moment."""

    cluster: int
    job_dir: Path
    schedd: str
    spool: bool
    submitted: float
    checked: float
    chunks: tuple[ChunkStatus, ...]
    notes: tuple[str, ...] = ()

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {str(s): 0 for s in POOL_STATES}
        for c in self.chunks:
            counts[c.state] = counts.get(c.state, 0) + 1
        return counts

    @property
    def finished(self) -> bool:
        """No chunk can change without help (held: a human, or its own periodic_release)."""
        return all(c.state in POOL_END_STATES and not c.releasing for c in self.chunks)

    @property
    def ok(self) -> bool:
        return all(c.state == State.DONE for c in self.chunks)

    @property
    def causes(self) -> tuple[FailureCause, ...]:
        """Held and failed chunks grouped by cause, with one log each and a hint."""
        return group((c.start, c.cause or c.reason, c.log) for c in self.bad)

    @property
    def bad(self) -> tuple[ChunkStatus, ...]:
        return tuple(c for c in self.chunks if c.state in (State.HELD, State.FAILED))

    @property
    def rows(self) -> int:
        return sum(c.count for c in self.chunks)

    @property
    def rows_done(self) -> int:
        return sum(c.count for c in self.chunks if c.state == State.DONE)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["job_dir"] = str(self.job_dir)
        d.update(counts=self.counts, finished=self.finished, ok=self.ok, rows=self.rows,
                 rows_done=self.rows_done, causes=[asdict(c) for c in self.causes])
        return d


@dataclass
class _Events:
    """What the event log says about one proc (mutable while reading)."""

    state: str = "idle"  # of the last attempt: idle, running, held, exited or removed
    attempts: int = 0
    host: str = ""
    hosts: list[str] = field(default_factory=list)
    exit_code: int | None = None
    signal: int | None = None
    hold_reason: str = ""
    hold_code: int | None = None
    abort_reason: str = ""
    evictions: int = 0
    holds: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    """A ClassAd value as a plain Python value (None for undefined or error)."""
    return value if isinstance(value, (bool, int, float, str)) else None


def _host(slot: Any) -> str:
    """``slot1_2@vm`` -> ``vm``; a sinful string ``<...alias=vm...>`` -> ``vm``."""
    text = _plain(slot) or ""
    if "alias=" in text:
        return text.split("alias=", 1)[1].split("&", 1)[0].rstrip(">")
    return text.rsplit("@", 1)[-1]


def _tail(path: Path) -> str:
    """The last 8 KiB of a chunk's stderr ("" when unreadable)."""
    try:
        with open_regular(path) as fh:  # a FIFO or a device there must not hang `status`
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 8192))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _last_lines(path: Path) -> tuple[str, str]:
    """(the wrapper's last ``error:`` line, the last other non-empty line) of a chunk's stderr."""
    lines = _tail(path).splitlines()
    wrapper = [ln.strip() for ln in lines if ln.startswith("condorkit-wrapper: error:")]
    other = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("condorkit-wrapper:")]
    return (wrapper[-1] if wrapper else ""), (other[-1][:300] if other else "")


class RunWatcher:
    """Follows one run: reads the event log incrementally and caches finished jobs' history."""

    def __init__(self, record: RunRecord, schedd: Any | None = None) -> None:
        self.record = record
        self._schedd = schedd
        self._htcondor = _htcondor()
        self._log: Any = None
        self._events: dict[int, _Events] = {}
        self._history: dict[int, Any] = {}
        self._checked: dict[Path, tuple[float, int, str]] = {}
        self._entries = {c.proc: c for c in record.chunks}
        self.in_queue: set[int] = set()
        self.first_unmade: int | None = None  # late materialization (queueads)

    @property
    def schedd(self) -> Any:
        if self._schedd is None:
            self._schedd = connect(self.record.schedd)
        return self._schedd

    # -- sources -------------------------------------------------------------------------
    def read_events(self) -> bool:
        """Read new events of this run's cluster; False when there is no event log (yet)."""
        path = self.record.event_log
        if path is None:
            return False
        if self._log is None:
            if not path.is_file():
                return False
            try:
                self._log = self._htcondor.JobEventLog(str(path))
            except Exception:  # unreadable for now; the schedd's view still works
                return False
        T = self._htcondor.JobEventType
        for ev in self._log.events(stop_after=0):
            if ev.cluster != self.record.cluster or ev.proc not in self._entries:
                continue
            e = self._events.setdefault(ev.proc, _Events())
            if ev.type == T.SUBMIT or ev.type in (T.JOB_RELEASED, T.SHADOW_EXCEPTION,
                                                  T.JOB_RECONNECT_FAILED):
                e.state = "idle"
            elif ev.type == T.EXECUTE:
                e.state, e.attempts = "running", e.attempts + 1
                e.host = _host(ev.get("SlotName") or ev.get("ExecuteHost"))
                e.hosts.append(e.host)
            elif ev.type == T.JOB_EVICTED:
                e.state, e.evictions = "idle", e.evictions + 1
            elif ev.type == T.JOB_TERMINATED:
                e.state = "exited"
                normal = bool(ev.get("TerminatedNormally", True))
                e.exit_code = _plain(ev.get("ReturnValue")) if normal else None
                e.signal = None if normal else _plain(ev.get("TerminatedBySignal"))
            elif ev.type == T.JOB_HELD:
                e.state = "held"
                e.hold_reason = str(_plain(ev.get("HoldReason")) or "")
                e.hold_code = _plain(ev.get("HoldReasonCode"))
                e.holds.append(f"{e.hold_reason} (HoldReasonCode {e.hold_code})")
            elif ev.type == T.JOB_ABORTED:
                e.state, e.abort_reason = "removed", str(_plain(ev.get("Reason")) or "")
        return True

    def query_queue(self) -> dict[int, Any]:
        try:  # one query: the jobs, and the cluster ad of a late-materializing cluster
            ads = self.schedd.query(f"ClusterId == {self.record.cluster}", projection=_PROJECTION,
                                    opts=self._htcondor.QueryOpt.IncludeClusterAd)
        except Exception as exc:
            raise CondorError(f"cannot query the schedd {self.record.schedd.name!r} for cluster "
                              f"{self.record.cluster}: {exc}", CONFIG_HINT) from exc
        jobs, self.first_unmade = queueads.split_cluster_ad(ads)
        return {int(ad["ProcId"]): ad for ad in jobs if int(ad["ProcId"]) in self._entries}

    def query_history(self, procs: list[int]) -> None:
        """Fetch the history ads of ``procs`` that left the queue (cached: they never change)."""
        want = sorted(p for p in procs if p not in self._history)
        if not want:
            return
        constraint = (f"ClusterId == {self.record.cluster} && "
                      f"member(ProcId, {{{', '.join(map(str, want))}}})")
        try:
            ads = self.schedd.history(constraint, projection=_PROJECTION, match=len(want))
        except Exception as exc:
            raise CondorError(f"cannot read the schedd's history of cluster "
                              f"{self.record.cluster}: {exc}", CONFIG_HINT) from exc
        for ad in ads:
            self._history[int(ad["ProcId"])] = ad

    def result_problem(self, entry: ChunkEntry) -> str:
        """Empty when the chunk's results file is valid (cached by mtime and size)."""
        path = self.record.result_path(entry)
        rel = path.relative_to(self.record.job_dir)
        try:
            st = path.stat()
        except OSError:
            return f"missing output {rel}"
        if st.st_size == 0:
            return f"empty output {rel} (left by a failed attempt)"
        cached = self._checked.get(path)
        if cached and cached[:2] == (st.st_mtime, st.st_size):
            return cached[2]
        problem = valid_result(path, entry.chunk.start, entry.chunk.count, entry.key)
        text = f"invalid output {rel}: {problem}" if problem else ""
        self._checked[path] = (st.st_mtime, st.st_size, text)
        return text

    # -- combining -----------------------------------------------------------------------
    def status(self) -> RunStatus:
        """Every chunk's state right now."""
        notes: list[str] = []
        has_log = self.read_events()
        if not has_log and not self.record.spool:
            notes.append(f"no event log at {self.record.event_log}: states come from the schedd "
                         "only")
        queue = self.query_queue()
        self.in_queue = set(queue)
        unmade = queueads.unmade(self._entries, queue, self._events, self.first_unmade)
        self.query_history([p for p in self._entries if p not in queue and p not in unmade])
        chunks = []
        for entry in self.record.chunks:
            ad = queue.get(entry.proc)
            start = _plain(ad.get("CondorkitStart")) if ad is not None else None
            if start is not None and start != entry.start:
                notes.append(f"job {self.record.cluster}.{entry.proc} runs rows from {start}, "
                             f"the run record says {entry.start}")
            if entry.proc in unmade:  # late materialization: waiting, not lost
                chunks.append(ChunkStatus(entry.index, entry.start, entry.count, entry.proc,
                                          State.IDLE, 0, None, "", reason=queueads.UNMADE))
                continue
            chunks.append(self._chunk(entry, ad, self._history.get(entry.proc),
                                      self._events.get(entry.proc)))
        return RunStatus(self.record.cluster, self.record.job_dir, self.record.schedd.name,
                         self.record.spool, self.record.submitted, time.time(), tuple(chunks),
                         tuple(notes))

    def _chunk(self, entry: ChunkEntry, qad: Any, had: Any, ev: _Events | None) -> ChunkStatus:
        ev = ev or _Events()
        ad = qad if qad is not None else had
        get = (lambda k: _plain(ad.get(k))) if ad is not None else (lambda k: None)
        attempts = max(ev.attempts, int(get("NumJobStarts") or 0))
        host = _host(get("RemoteHost") or get("LastRemoteHost")) or ev.host
        by_signal = bool(get("ExitBySignal")) if ad is not None else ev.signal is not None
        exit_code = get("ExitCode") if ad is not None else ev.exit_code
        signal = get("ExitSignal") if ad is not None else ev.signal
        hold_reason, hold_code = ev.hold_reason, ev.hold_code
        if ad is not None:
            job_status = _JOB_STATUS.get(int(get("JobStatus") or 0), "idle")
            if job_status == "held":
                hold_reason = str(get("HoldReason") or hold_reason)
                hold_code = get("HoldReasonCode")
                if hold_code == SPOOLING_INPUT:
                    job_status = "idle"
            if qad is None and job_status in ("idle", "running", "held"):
                job_status = "removed"  # left the queue without finishing
            removed_reason = str(get("RemoveReason") or ev.abort_reason)
        else:  # neither in the queue nor in the history: the event log is all we have
            job_status = {"exited": "completed", "removed": "removed"}.get(ev.state, ev.state)
            removed_reason = ev.abort_reason
            if ev.state in ("idle", "running", "held"):  # nothing knows this job any more
                job_status = "removed"
                removed_reason = "the job left the queue and the schedd has no record of it"
                if not self.result_problem(entry):
                    exit_code = 0  # its valid results are the best evidence left
        state = State.FAILED if job_status == "removed" else State(job_status)
        reason = problem = ""
        releasing = job_status == "held" and qad is not None and queueads.releasing(qad)
        if job_status == "held":
            reason = f"held: {hold_reason or 'no reason given'}"
            if hold_code is not None:
                reason += f" (HoldReasonCode {hold_code})"
            reason += queueads.release_note(qad) if releasing else ""
        elif job_status in ("completed", "removed"):
            if by_signal:
                state, reason = State.FAILED, f"killed by signal {signal}"
            elif exit_code is not None and exit_code != 0:
                state, reason = State.FAILED, f"exit code {exit_code}"
            elif exit_code == 0 or job_status == "completed":
                problem = self.result_problem(entry)
                if not problem:
                    state = State.DONE
                elif self.record.spool and qad is not None and job_status == "completed":
                    state = State.COMPLETED  # outputs are still in the spool
                else:
                    state, reason = State.FAILED, f"exit code 0 but {problem}"
            else:
                state = State.FAILED
                reason = f"removed: {removed_reason or 'no reason given'}"
        wrapper_error = stderr_last = cause = log = ""
        if state in (State.HELD, State.FAILED):
            err_path = self.record.err_path(entry)
            wrapper_error, stderr_last = _last_lines(err_path)
            log = str(err_path) if err_path.is_file() else ""
            if state == State.HELD:
                cause = f"held: {hold_reason or 'no reason given'}"
            elif isinstance(exit_code, int) and exit_code and not by_signal:
                cause = describe(exit_code, _tail(err_path))
            else:
                cause = reason
            if wrapper_error and state == State.FAILED:
                reason += f"; {wrapper_error}"
            elif stderr_last and exit_code:
                reason += f"; stderr: {stderr_last}"
        return ChunkStatus(entry.index, entry.start, entry.count, entry.proc, state, attempts,
                           exit_code if isinstance(exit_code, int) else None, host,
                           hold_reason if state == State.HELD else "",
                           hold_code if state == State.HELD else None, problem,
                           wrapper_error,
                           stderr_last, reason, cause, log, releasing, tuple(ev.holds))

    def hosts_of_attempts(self) -> dict[str, int]:
        """Execute attempts per host, from the event log (includes evicted attempts)."""
        counts: dict[str, int] = {}
        for e in self._events.values():
            for h in e.hosts:
                counts[h] = counts.get(h, 0) + 1
        return counts


def status(record: RunRecord) -> RunStatus:
    """The state of every chunk of a run."""
    return RunWatcher(record).status()


def fetch_outputs(watcher: RunWatcher, st: RunStatus) -> RunStatus:
    """In a spooled run, retrieve the outputs of the jobs that finished and remove them from
    the queue (a spooled job otherwise stays there); returns the new status."""
    if not watcher.record.spool:
        return st
    ready = [c.proc for c in st.chunks if c.proc in watcher.in_queue and (
        c.state == State.COMPLETED
    or (c.state == State.FAILED and c.exit_code not in (None, 0)))]
    if not ready:
        return st
    retrieve(watcher.record, ready, watcher.schedd)
    remove(watcher.record, ready, RETRIEVED, watcher.schedd)
    return watcher.status()


def wait(record: RunRecord, timeout: float | None = None, interval: float = 1.0,
         on_update: Callable[[RunStatus], None] | None = None) -> RunStatus:
    """Follow a run until every chunk is done, failed or held (or ``timeout`` seconds pass).

    In a spooled run the outputs of each finished job are retrieved as it finishes, and the job
    is then removed from the queue (a spooled job otherwise stays there). Returns the last
    status; the caller checks :attr:`RunStatus.finished` and :attr:`RunStatus.ok`.
    """
    watcher = RunWatcher(record)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        st = fetch_outputs(watcher, watcher.status())
        if on_update is not None:
            on_update(st)
        if st.finished or (deadline is not None and time.monotonic() >= deadline):
            return st
        time.sleep(interval)


@dataclass(frozen=True)
class HistoryEntry:
    """One finished job of a run."""

    proc: int
    start: int
    count: int
    status: str
    exit_code: int | None
    host: str
    run_time_s: float | None
    attempts: int
    completed: float | None
    reason: str = ""


@dataclass(frozen=True)
class RunHistory:
    cluster: int
    jobs: tuple[HistoryEntry, ...]


def history(record: RunRecord) -> RunHistory:
    """The run's jobs that finished: from the schedd's history (and the queue for spooled jobs)."""
    w = RunWatcher(record)
    w.read_events()
    queue = w.query_queue()
    w.query_history([p for p in w._entries if p not in queue])
    jobs = []
    for entry in record.chunks:
        ad = w._history.get(entry.proc)
        qad = queue.get(entry.proc)
        if ad is None and qad is not None and _plain(qad.get("JobStatus")) == 4:
            ad = qad
        ev = w._events.get(entry.proc)
        if ad is None:
            if ev is None or ev.state not in ("exited", "removed"):
                continue
            jobs.append(HistoryEntry(entry.proc, entry.start, entry.count,
                                     "completed" if ev.state == "exited" else "removed",
                                     ev.exit_code, ev.host, None, ev.attempts, None,
                                     ev.abort_reason))
            continue
        code = _plain(ad.get("JobStatus"))
        by_signal = bool(_plain(ad.get("ExitBySignal")))
        removed = str(_plain(ad.get("RemoveReason")) or "")
        state = _JOB_STATUS.get(int(code or 0), str(code))
        if removed.startswith(RETRIEVED):  # a spooled job removed once its outputs came back
            state, removed = "completed", "outputs retrieved"
        jobs.append(HistoryEntry(
            entry.proc, entry.start, entry.count, state,
            None if by_signal else _plain(ad.get("ExitCode")),
            _host(ad.get("LastRemoteHost") or ad.get("RemoteHost")),
            _plain(ad.get("RemoteWallClockTime")),
            max(int(_plain(ad.get("NumJobStarts")) or 0), ev.attempts if ev else 0),
            _plain(ad.get("CompletionDate")) or None,
            f"killed by signal {_plain(ad.get('ExitSignal'))}" if by_signal else removed))
    return RunHistory(record.cluster, tuple(jobs))


@dataclass(frozen=True)
class HostCount:
    """How many of a run's chunks ran (or run) on one execute host."""

    host: str
    chunks: int
    done: int
    running: int
    failed: int
    attempts: int


@dataclass(frozen=True)
class Where:
    cluster: int
    hosts: tuple[HostCount, ...]
    unplaced: int  # chunks that have not started anywhere yet


def where(record: RunRecord) -> Where:
    """Histogram of the execute hosts of a run's chunks (last host of each chunk)."""
    w = RunWatcher(record)
    st = w.status()
    attempts = w.hosts_of_attempts()
    rows: dict[str, list[int]] = {}
    unplaced = 0
    for c in st.chunks:
        if not c.host:
            unplaced += 1
            continue
        r = rows.setdefault(c.host, [0, 0, 0, 0])
        r[0] += 1
        r[1] += c.state == State.DONE
        r[2] += c.state == State.RUNNING
        r[3] += c.state in (State.FAILED, State.HELD)
    for h in attempts:
        rows.setdefault(h, [0, 0, 0, 0])
    hosts = tuple(sorted((HostCount(h, r[0], r[1], r[2], r[3], max(attempts.get(h, 0), r[0]))
                          for h, r in rows.items()), key=lambda x: (-x.chunks, x.host)))
    return Where(record.cluster, hosts, unplaced)
