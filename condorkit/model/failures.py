"""Why chunks failed, in words a user can act on: one home for turning an exit code and a stderr
tail into a cause, and for grouping failed chunks by cause (with a count, one log file to read and
a hint where the fix is known). Used by the local run's summary and by ``condorkit status`` on a
pool. Pure functions and frozen dataclasses; prints nothing.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass

#: the wrapper's own chatter (not the cause of anything), and its error prefix
_WRAPPER = "condorkit-wrapper: "
_WRAPPER_ERROR = "condorkit-wrapper: error: "
_MISSING_MODULE = re.compile(r"^(?:ModuleNotFoundError|ImportError): No module named '([^']+)'")
#: wrapper exit codes (wrappers/wrapper.sh) and what to do about them
_WRAPPER_HINTS = {
    90: "the job's arguments are wrong: regenerate the submit file with mksubmit",
    91: "the bundle is missing or corrupt: rebuild it with `condorkit bundle`",
    92: "the bundle holds an unsafe member: rebuild it with `condorkit bundle`",
    93: "no usable Python on the worker: set `bundle` (see `condorkit bundle`) or `python`",
    94: "the bundle does not fit this worker (architecture or C library): see docs/bundle.md",
    95: "the program is not transferred: check `program` and `input_files`",
    96: "the program exited 0 without writing its results file: it must write OUT "
        "(ckjob.write_results or ckjob.map_rows)",
}


#: import names whose package on the index has another name
_PACKAGE = {"PIL": "pillow", "cv2": "opencv-python-headless", "yaml": "pyyaml",
            "sklearn": "scikit-learn", "skimage": "scikit-image", "bs4": "beautifulsoup4"}


@dataclass(frozen=True)
class FailureCause:
    """Chunks that failed for the same reason."""

    cause: str  # e.g. "exit code 1: ModuleNotFoundError: No module named 'PIL'"
    count: int  # chunks
    starts: tuple[int, ...]  # their first rows
    log: str  # one stderr log to read ("" when none was kept)
    hint: str  # what to do, or ""


def cause_line(stderr: str) -> str:
    """The one stderr line that says what went wrong.

    The wrapper's own error line wins; in a Python traceback, the exception line (the last
    unindented line after ``Traceback``); otherwise the first line that is not wrapper chatter.
    """
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(_WRAPPER_ERROR):
            return ln[len(_WRAPPER_ERROR):].strip()
    own = [ln for ln in lines if not ln.startswith(_WRAPPER)]
    if any(ln.startswith("Traceback (most recent call last)") for ln in own):
        last = [ln for ln in own if not ln[:1].isspace()
                and not ln.startswith(("Traceback (", "During handling", "The above exception"))]
        if last:
            return last[-1].strip()
    return own[0].strip() if own else ""


def describe(exit_code: int, stderr: str) -> str:
    """``exit code N: LINE`` (or ``killed by SIGNAME``): the cause of one failed attempt."""
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    line = cause_line(stderr)
    return f"exit code {exit_code}: {line}" if line else f"exit code {exit_code}"


def hint(cause: str, python: str = "") -> str:
    """What to do about ``cause`` where that is known, else ""."""
    code = re.match(r"^exit code (\d+)", cause)
    line = cause.split(": ", 1)[1] if ": " in cause else ""
    missing = _MISSING_MODULE.match(line)
    if missing:
        module = missing.group(1).split(".")[0]
        package = _PACKAGE.get(module, module)
        where = f"the interpreter {python}" if python else "the job's interpreter"
        return (f"install {package} in {where} (e.g. `{python or 'python3'} -m pip install "
                f"{package}`), or list it in requirements.txt and bundle it (`condorkit bundle`, "
                f'bundle = "auto")')
    if code:
        n = int(code.group(1))
        if n in _WRAPPER_HINTS:
            return _WRAPPER_HINTS[n]
        if n == 127:
            return "a command was not found on the worker: ship it with input_files or a bundle"
        if n == 124:
            return "the chunk hit its time limit: raise the limit or use smaller chunks"
    if cause.startswith("killed by SIGKILL"):
        return "killed from outside (out of memory?): raise request_memory or use smaller chunks"
    return ""


def group(failed: Iterable[tuple[int, str, str]], python: str = "") -> tuple[FailureCause, ...]:
    """Group ``(start, cause, log)`` of failed chunks by cause, the most frequent first."""
    by: dict[str, list[tuple[int, str]]] = {}
    for start, cause, log in failed:
        by.setdefault(cause, []).append((start, log))
    out = []
    for cause, items in by.items():
        starts = tuple(sorted(s for s, _ in items))
        log = next((lg for _, lg in sorted(items) if lg), "")
        out.append(FailureCause(cause, len(items), starts, log, hint(cause, python)))
    out.sort(key=lambda c: (-c.count, c.starts[0] if c.starts else 0))
    return tuple(out)
