"""Talking to HTCondor to parse and submit jobs (the htcondor2 bindings, imported lazily).

Owns every use of ``htcondor2`` that changes the queue: parsing a rendered submit file with the real
HTCondor parser, expanding its macros for one queue item (used by the dry-run and the parity
tests), finding the schedd, submitting a run with ONE ``Schedd.submit(..., itemdata=...)`` call,
and the actions on a run's jobs (spool, retrieve, remove). It also owns the run record
(``JOB/.condorkit/runs/CLUSTER.json``, copied to ``JOB/.condorkit/current-run.json``): cluster,
schedd, job folder, manifest hash and the chunk table (start, count, key, proc), so that
``status``/``wait``/``history``/``where``/``resubmit`` know the run without flags. Reading the
state of a run is :mod:`condorkit.condor.monitor`'s job.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from condorkit.condor.quoting import parse_submit_args
from condorkit.errors import CondorError, UsageError
from condorkit.model.chunking import Chunk
from condorkit.model.job import Job
from condorkit.model.layout import current_run, err_name, results_name
from condorkit.model.layout import runs_dir as _runs_dir
from condorkit.wrappers import ckjob

RUN_FORMAT = "condorkit-run/1"
CONFIG_HINT = ("check that CONDOR_CONFIG names your pool's configuration (COLLECTOR_HOST) and "
               "that the collector and schedd are running")


def _htcondor() -> Any:
    """Import the bindings on first use; a missing module is a clear error."""
    if "CONDOR_CONFIG" not in os.environ and not Path("/etc/condor/condor_config").exists():
        os.environ["CONDOR_CONFIG"] = "/dev/null"  # parse-only use needs no pool configuration
    try:
        import htcondor2
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise CondorError(f"the HTCondor Python bindings are not importable: {exc}",
                          "pip install htcondor") from exc
    return htcondor2


@dataclass(frozen=True)
class ExpandedJob:
    """One queue item of a submit file with every macro expanded by HTCondor itself."""

    item: dict[str, str]
    initialdir: str
    executable: str
    arguments: tuple[str, ...]
    transfer_input_files: tuple[str, ...]
    transfer_output_files: tuple[str, ...]


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def parse_items(submit_text: str) -> list[dict[str, str]]:
    """The itemdata of the submit file's ``queue ... from`` statement, parsed by HTCondor."""
    htcondor = _htcondor()
    try:
        sub = htcondor.Submit(submit_text)
        return [dict(i) for i in (sub.itemdata() or [])]
    except Exception as exc:
        raise CondorError(f"HTCondor cannot parse the submit file: {exc}",
                          "render it again with `condorkit mksubmit`") from exc


def expand_item(submit_text: str, item: dict[str, str]) -> ExpandedJob:
    """Expand the submit file's macros for one queue item, as the schedd would."""
    htcondor = _htcondor()
    try:
        sub = htcondor.Submit(submit_text)
        for k, v in item.items():
            sub[k] = v
        get = sub.expand
        initialdir = get("initialdir") if "initialdir" in sub else ""
        args = get("arguments") if "arguments" in sub else '""'
        return ExpandedJob(
            dict(item), initialdir, get("executable"), tuple(parse_submit_args(args)),
            _split_list(get("transfer_input_files")) if "transfer_input_files" in sub else (),
            _split_list(get("transfer_output_files")) if "transfer_output_files" in sub else ())
    except CondorError:
        raise
    except Exception as exc:
        raise CondorError(f"HTCondor cannot expand the submit file: {exc}",
                          "check the template and the job's options") from exc


# ----------------------------------------------------------------------------- the schedd


@dataclass(frozen=True)
class ScheddInfo:
    """Where a run's jobs live: the schedd's name, its address and its version string."""

    name: str
    address: str
    version: str


def _ad_info(ad: Any) -> ScheddInfo:
    return ScheddInfo(str(ad.get("Name", "")), str(ad.get("MyAddress", "")),
                      str(ad.get("CondorVersion", "")))


def _schedd_ads(htcondor: Any, name: str | None) -> list[Any]:
    constraint = None if name is None else f"Name == {json.dumps(name)}"
    try:
        coll = htcondor.Collector()
        ads = coll.query(htcondor.AdTypes.Schedd, constraint=constraint,
                         projection=["Name", "MyAddress", "CondorVersion", "Machine"])
    except Exception as exc:
        raise CondorError(f"cannot ask the collector for a schedd: {exc}", CONFIG_HINT) from exc
    return list(ads)


def locate_schedd(name: str | None = None) -> tuple[Any, ScheddInfo]:
    """The schedd named ``name``, or the pool's only (or this machine's) schedd.

    Asks the collector, because from a host without a local schedd ``Schedd()`` means "the local
    daemon" and fails.
    """
    htcondor = _htcondor()
    ads = _schedd_ads(htcondor, name)
    if not ads:
        which = f"named {name!r} " if name else ""
        raise CondorError(f"the collector knows no schedd {which}", CONFIG_HINT)
    if len(ads) > 1:
        here = {socket.gethostname(), socket.getfqdn()}
        local = [a for a in ads if str(a.get("Machine", "")) in here]
        if len(local) != 1:
            names = ", ".join(sorted(str(a.get("Name")) for a in ads))
            raise UsageError(f"the pool has several schedds ({names})",
                             "pick one with --schedd NAME")
        ads = local
    return _connect_ad(htcondor, ads[0]), _ad_info(ads[0])


def _connect_ad(htcondor: Any, ad: Any) -> Any:
    try:
        return htcondor.Schedd(ad)
    except Exception as exc:
        raise CondorError(f"cannot reach the schedd {ad.get('Name')!r}: {exc}",
                          CONFIG_HINT) from exc


def connect(info: ScheddInfo) -> Any:
    """Reconnect to a run's schedd: by name through the collector, else by its recorded address."""
    htcondor = _htcondor()
    try:
        ads = _schedd_ads(htcondor, info.name)
    except CondorError:
        ads = []
    if ads:
        return _connect_ad(htcondor, ads[0])
    import classad2

    ad = classad2.ClassAd({"Name": info.name, "MyAddress": info.address, "MyType": "Scheduler",
                           "CondorVersion": info.version})
    return _connect_ad(htcondor, ad)


# ----------------------------------------------------------------------------- the run record


@dataclass(frozen=True)
class ChunkEntry:
    """One chunk of a run: its rows, its key and the job (proc id) that runs it."""

    index: int
    start: int
    count: int
    key: str
    proc: int

    @property
    def chunk(self) -> Chunk:
        return Chunk(self.index, self.start, self.count)


@dataclass(frozen=True)
class RunRecord:
    """What ``condorkit submit`` wrote down about one submitted cluster."""

    cluster: int
    schedd: ScheddInfo
    job_dir: Path
    manifest: str
    manifest_sha256: str
    results_dir: str
    log_dir: str
    event_log: Path | None
    spool: bool
    submitted: float
    submit_file: Path | None
    chunks: tuple[ChunkEntry, ...]
    chunk_size: int
    max_rows: int | None = None
    parent: int | None = None
    format: str = field(default=RUN_FORMAT)

    @property
    def rows(self) -> int:
        return sum(c.count for c in self.chunks)

    def result_path(self, entry: ChunkEntry) -> Path:
        return self.job_dir / self.results_dir / results_name(entry.start)

    def err_path(self, entry: ChunkEntry) -> Path:
        return self.job_dir / self.log_dir / err_name(entry.start)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("job_dir", "event_log", "submit_file"):
            d[k] = None if d[k] is None else str(d[k])
        d["submitted_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.submitted))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Path) -> RunRecord:
        if d.get("format") != RUN_FORMAT:
            raise UsageError(f"{source} is not a condorkit run record ({RUN_FORMAT})",
                             "submit again with `condorkit submit`")
        try:
            return cls(
                cluster=int(d["cluster"]), schedd=ScheddInfo(**d["schedd"]),
                job_dir=Path(d["job_dir"]), manifest=str(d["manifest"]),
                manifest_sha256=str(d["manifest_sha256"]), results_dir=str(d["results_dir"]),
                log_dir=str(d["log_dir"]),
                event_log=Path(d["event_log"]) if d.get("event_log") else None,
                spool=bool(d["spool"]), submitted=float(d["submitted"]),
                submit_file=Path(d["submit_file"]) if d.get("submit_file") else None,
                chunks=tuple(ChunkEntry(**c) for c in d["chunks"]),
                chunk_size=int(d["chunk_size"]),
                max_rows=None if d.get("max_rows") is None else int(d["max_rows"]),
                parent=None if d.get("parent") is None else int(d["parent"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{source}: damaged run record ({exc})",
                             "submit again with `condorkit submit`") from exc


def runs_dir(job_dir: Path) -> Path:
    return _runs_dir(job_dir)


def write_run_record(record: RunRecord) -> Path:
    """Write ``runs/CLUSTER.json`` and make it the job folder's current run."""
    folder = runs_dir(record.job_dir)
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(record.to_dict(), indent=1, sort_keys=True).encode() + b"\n"
    path = folder / f"{record.cluster}.json"
    ckjob.atomic_write_bytes(str(path), data)
    ckjob.atomic_write_bytes(str(current_run(record.job_dir)), data)
    return path


def load_run(job_dir: Path, cluster: int | None = None) -> RunRecord:
    """The job folder's current run, or the run of ``cluster``."""
    path = (current_run(job_dir) if cluster is None
            else runs_dir(job_dir) / f"{cluster}.json")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        what = "no run has been submitted" if cluster is None else f"no run of cluster {cluster}"
        raise UsageError(f"{job_dir}: {what} from this job folder ({path} is missing)",
                         "submit with `condorkit submit`, or pass -C JOB_FOLDER") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable run record ({exc})",
                         "submit again with `condorkit submit`") from exc
    return RunRecord.from_dict(doc, path)


def check_job_folder(job: Job, spool: bool = False) -> None:
    """Refuse, up front, a job folder the jobs' owner cannot write back into.

    Without spooling, HTCondor writes the event log, each chunk's stdout/stderr and the results
    into ``LOGDIR`` and ``RESULTS`` as the job's owner. A job submitted by root runs as another
    user (HTCondor refuses root jobs; on the test pool it runs as the pool user), who cannot
    write folders only root may write: the jobs would run and then be held with "Transfer
    output files failure ... Permission denied".
    """
    folders = [job.log_dir, job.results_dir]
    for d in folders:
        d.mkdir(parents=True, exist_ok=True)
    if spool or os.geteuid() != 0:
        return
    shut = [d for d in folders if not d.stat().st_mode & 0o002]
    if shut:
        names = " ".join(str(d) for d in shut)
        raise UsageError(f"{names}: only root can write here, but HTCondor runs root's jobs as "
                         "another user, who must write the logs and results back",
                         f"submit as an ordinary user, or `chmod 1777 {names}`, or use --spool")


# ----------------------------------------------------------------------------- submitting


@dataclass(frozen=True)
class SubmitReport:
    """A submitted run: its record, where that was written, and HTCondor's warnings."""

    record: RunRecord
    record_path: Path
    warnings: tuple[str, ...]


def chunks_to_run(job: Job, missing_only: bool = True) -> tuple[list[Chunk], list[Chunk]]:
    """Split the job's chunks into (to run, already holding valid results)."""

    todo, valid = [], []
    for task in job.tasks():
        if missing_only and task.valid() is None:
            valid.append(task.chunk)
        else:
            todo.append(task.chunk)
    return todo, valid


def _event_log(htcondor: Any, text: str, item: dict[str, str], initialdir: Path) -> Path | None:
    sub = htcondor.Submit(text)
    for k, v in item.items():
        sub[k] = v
    if "log" not in sub:
        return None
    log = Path(sub.expand("log"))
    return log if log.is_absolute() else initialdir / log


def submit_run(job: Job, chunks: Sequence[Chunk] | None = None, *, spool: bool = False,
               schedd_name: str | None = None, parent: int | None = None) -> SubmitReport:
    """Render the submit file and submit ``chunks`` (default: all) in one ``Schedd.submit``.

    The rendered text is submitted as is; ``itemdata`` carries the selected items of its
    ``queue start,count from (...)`` statement, so proc N runs the N-th selected chunk. With
    ``spool`` the input files are spooled to the schedd (for a schedd that cannot see the job
    folder); the outputs come back with :func:`retrieve`.
    """
    from condorkit.condor.render import render_submit

    check_job_folder(job, spool)
    htcondor = _htcondor()
    chosen = list(job.chunks if chunks is None else chunks)
    if not chosen:
        raise UsageError("no chunks to submit", "every chunk already has valid results")
    text = render_submit(job)
    items = parse_items(text)
    by_start = {str(i.get("start")): i for i in items}
    missing = [c.start for c in chosen if str(c.start) not in by_start]
    if len(by_start) != len(items) or missing:
        raise CondorError("the submit file's queue statement does not list one `start` item per "
                          f"chunk (chunks without an item: {missing[:5]})",
                          "a custom template must keep `queue start,count from (...)`")
    selected = [by_start[str(c.start)] for c in chosen]
    event_log = _event_log(htcondor, text, selected[0], job.dir)
    schedd, info = locate_schedd(schedd_name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = schedd.submit(htcondor.Submit(text), itemdata=iter(selected), spool=spool)
            if spool:
                schedd.spool(result)
        except Exception as exc:
            raise CondorError(f"the schedd {info.name!r} refused the submission: "
                              f"{schedd_reason(exc)}",
                              "the pool's own reason is above; fix the option it names, and "
                              "check the submit file with `condorkit mksubmit`") from exc
    cluster, first = int(result.cluster()), int(result.first_proc())
    folder = runs_dir(job.dir)
    folder.mkdir(parents=True, exist_ok=True)
    submit_file = folder / f"{cluster}.sub"
    ckjob.atomic_write_bytes(str(submit_file), text.encode())
    record = RunRecord(
        cluster=cluster, schedd=info, job_dir=job.dir, manifest=str(job.manifest.path),
        manifest_sha256=job.manifest.sha256, results_dir=job.config.results_dir,
        log_dir=job.config.log_dir, event_log=event_log, spool=spool, submitted=time.time(),
        submit_file=submit_file, parent=parent, chunk_size=job.config.chunk,
        max_rows=job.config.max_rows,
        chunks=tuple(ChunkEntry(c.index, c.start, c.count, job.keys[c.index], first + n)
                     for n, c in enumerate(chosen)))
    path = write_run_record(record)
    notes = [str(w.message) for w in caught]
    if not spool and event_log is not None and not _appears(event_log, 3.0):
        notes.append(f"the schedd did not create the event log {event_log}: the job owner "
                     f"probably cannot write {event_log.parent}; outputs will not come back "
                     "either (make the log and results folders writable for the job owner)")
    return SubmitReport(record, path, tuple(notes))


def schedd_reason(exc: BaseException) -> str:
    """The schedd's own words from a failed submit (e.g. a SUBMIT_REQUIREMENT's reason)."""
    text = str(exc).strip()
    m = re.search(r"SCHEDD:\d+:(.+)", text, re.S)
    return m.group(1).strip() if m else text


def _appears(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# ----------------------------------------------------------------------------- acting on jobs


def _job_ids(record: RunRecord, procs: Iterable[int]) -> list[str]:
    return [f"{record.cluster}.{p}" for p in sorted(set(procs))]


def retrieve(record: RunRecord, procs: Iterable[int], schedd: Any | None = None) -> None:
    """Bring the outputs (results, logs) of finished spooled jobs back into the job folder."""
    ids = _job_ids(record, procs)
    if not ids:
        return
    schedd = schedd or connect(record.schedd)
    try:
        schedd.retrieve(ids)
    except Exception as exc:
        raise CondorError(f"cannot retrieve the outputs of {', '.join(ids)}: {exc}",
                          "retry `condorkit wait`; the outputs stay spooled until then") from exc


def remove(record: RunRecord, procs: Iterable[int], reason: str,
           schedd: Any | None = None) -> None:
    """Remove jobs of the run from the queue (the reason shows in their history)."""
    ids = _job_ids(record, procs)
    if not ids:
        return
    htcondor = _htcondor()
    schedd = schedd or connect(record.schedd)
    try:
        # the reason must be a tuple: a plain str is silently dropped by the bindings
        schedd.act(htcondor.JobAction.Remove, ids, reason=(reason, 0))
    except Exception as exc:
        raise CondorError(f"cannot remove {', '.join(ids)}: {exc}", CONFIG_HINT) from exc


# ----------------------------------------------------------------------------- adopting a cluster


def adopt_run(job_dir: Path, config: Any, cluster: int,
              schedd_name: str | None = None) -> RunRecord:
    """Write a run record for a cluster submitted another way (``condor_submit submit.sub``).

    The jobs' ``CondorkitStart``/``CondorkitCount`` attributes (set by the submit template) give
    the chunk table; the job folder's manifest and options give each chunk's key.
    """
    from condorkit.model.job import prepare

    job_dir = job_dir.resolve()
    schedd, info = locate_schedd(schedd_name)
    constraint = f"ClusterId == {int(cluster)}"
    projection = ["ProcId", "CondorkitStart", "CondorkitCount", "Iwd", "SUBMIT_Iwd", "UserLog",
                  "SUBMIT_UserLog", "QDate"]
    try:
        ads = list(schedd.query(constraint, projection=projection))
        seen = {int(a["ProcId"]) for a in ads}
        ads += [a for a in schedd.history(constraint, projection=projection)
                if int(a["ProcId"]) not in seen]
    except Exception as exc:
        raise CondorError(f"cannot look up cluster {cluster} on {info.name!r}: {exc}",
                          CONFIG_HINT) from exc
    if not ads:
        raise UsageError(f"cluster {cluster} is neither in the queue nor in the history of the "
                         f"schedd {info.name!r}", "check the cluster id (condor_submit prints it)")

    def text(ad: Any, *keys: str) -> str:
        for k in keys:
            v = ad.get(k)
            if isinstance(v, str) and v:
                return v
        return ""

    table = {}
    for ad in ads:
        start, count = ad.get("CondorkitStart"), ad.get("CondorkitCount")
        if not isinstance(start, int) or not isinstance(count, int):
            raise UsageError(f"job {cluster}.{ad['ProcId']} has no CondorkitStart/CondorkitCount",
                             "only clusters made from condorkit's submit file can be followed")
        iwd = Path(text(ad, "SUBMIT_Iwd", "Iwd"))
        if iwd.resolve() != job_dir:
            raise UsageError(f"cluster {cluster} was submitted from {iwd}, not {job_dir}",
                             f"run the command in {iwd} (or pass -C {iwd})")
        table[int(ad["ProcId"])] = (start, count)
    size = max(c for _, c in table.values())
    last = max(s + c - 1 for s, c in table.values())
    job = prepare(job_dir, config.with_overrides(chunk=size), write=False)
    if last < job.rows:
        job = prepare(job_dir, config.with_overrides(chunk=size, max_rows=last), write=False)
    chunks = {c.start: c for c in job.chunks}
    entries = []
    for proc, (start, count) in sorted(table.items()):
        c = chunks.get(start)
        if c is None or c.count != count:
            raise UsageError(f"job {cluster}.{proc} runs rows {start}..{start + count - 1}, which "
                             "is not a chunk of the current manifest",
                             "the manifest changed since the submission; submit again")
        entries.append(ChunkEntry(c.index, c.start, c.count, job.keys[c.index], proc))
    first = ads[0]
    log = text(first, "SUBMIT_UserLog", "UserLog")
    spool = bool(text(first, "SUBMIT_Iwd"))
    qdate = first.get("QDate")
    record = RunRecord(
        cluster=int(cluster), schedd=info, job_dir=job_dir, manifest=str(job.manifest.path),
        manifest_sha256=job.manifest.sha256, results_dir=job.config.results_dir,
        log_dir=job.config.log_dir, event_log=(job_dir / log) if log else None, spool=spool,
        submitted=float(qdate) if isinstance(qdate, int) else time.time(), submit_file=None,
        chunks=tuple(entries), chunk_size=size, max_rows=job.config.max_rows)
    write_run_record(record)
    return record
