"""The local run's joblog: GNU parallel's format exactly, and condorkit's own columns beside it.

Owns both files. ``joblog.tsv`` has GNU parallel's nine tab-separated columns (``Seq Host
Starttime JobRuntime Send Receive Exitval Signal Command``, start time with 3 decimals, run time
``%10.3f``, ``:`` for this host), so ``parallel --joblog FILE --retry-failed`` and other joblog
tools read it. ``Seq`` keeps increasing across runs appended to the same file. ``Command`` is a
shell command that redoes the attempt's work (``condorkit run -C JOB --lock-wait 3600``, which
resumes: only the chunks without valid results run, and waits for a concurrent rerun of the same
job, as ``parallel --retry-failed`` starts one per failed line), then a shell comment naming the
chunk and rows.
The same ``Seq`` keys condorkit's extra columns (chunk, rows, attempt, outcome, note) in
``NAME-condorkit.SUFFIX`` next to it (:func:`extra_path`; nowhere when the joblog is not a
regular file, e.g. ``/dev/null``). A process killed by a signal has
``Exitval`` 0 and the signal in ``Signal``, as GNU parallel records it. Prints nothing.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from condorkit.model.fileio import open_append

PARALLEL_HEADER = ("Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval",
                   "Signal", "Command")
EXTRA_HEADER = ("Seq", "Chunk", "Rows", "Attempt", "Outcome", "Note")
_TAIL = 1 << 16
LOCK_WAIT_S = 3600  # a rerun waits this long for a concurrent rerun of the same job


def extra_path(path: Path) -> Path:
    """``logs/joblog.tsv`` -> ``logs/joblog-condorkit.tsv``."""
    return path.with_name(f"{path.stem}-condorkit{path.suffix}")


def last_seq(path: Path) -> int:
    """The highest ``Seq`` among the last lines of a joblog (0 for none); reads only its tail."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return 0
    if size > _TAIL:
        tail = tail[1:]  # maybe cut in the middle
    seqs = [int(c) for c in (x.split("\t", 1)[0] for x in tail) if c.isdigit()]
    return max(seqs, default=0)


def _clean(value: object) -> str:
    return str(value).replace("\t", " ").replace("\n", " ").replace("\r", " ")


@dataclass(frozen=True)
class Entry:
    """One attempt. ``exit_code`` as subprocess gives it (negative: killed by that signal)."""

    start: float
    runtime: float
    exit_code: int
    received: int
    chunk: str
    rows: str
    attempt: int
    outcome: str
    note: str = ""


class JobLog:
    """Both files of one run, opened for appending; :meth:`write` numbers each attempt."""

    def __init__(self, path: Path, job_dir: Path) -> None:
        self.path, self.extra = path, extra_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.seq = max(last_seq(path), last_seq(self.extra))
        self.command = shlex.join(["condorkit", "run", "-C", str(job_dir.resolve()),
                                   "--lock-wait", str(LOCK_WAIT_S)])
        self.files: list[TextIO] = []
        main = open_append(path, "the joblog")  # never a FIFO, a device or a folder
        if not stat.S_ISREG(os.fstat(main.fileno()).st_mode):
            self.extra = Path(os.devnull)  # a joblog sent to /dev/null or a terminal
        self.files = [main, open_append(self.extra, "the joblog")]
        for f, header in zip(self.files, (PARALLEL_HEADER, EXTRA_HEADER), strict=True):
            if f.tell() == 0:
                f.write("\t".join(header) + "\n")

    def write(self, e: Entry) -> int:
        self.seq += 1
        sig = -e.exit_code if e.exit_code < 0 else 0
        comment = _clean(f"# chunk {e.chunk} rows {e.rows}")
        main = (self.seq, ":", f"{e.start:.3f}", f"{e.runtime:10.3f}", 0, e.received,
                max(e.exit_code, 0), sig, f"{self.command} {comment}")
        extra = (self.seq, e.chunk, e.rows, e.attempt, e.outcome, e.note)
        for f, cells in zip(self.files, (main, extra), strict=True):
            f.write("\t".join(_clean(c) for c in cells) + "\n")
            f.flush()
        return self.seq

    def close(self) -> None:
        for f in self.files:
            f.close()
