"""Shared pieces of the command line: output helpers (stdout for data, stderr for logs), the
progress bar, and the job options, built from the fields of
:class:`~condorkit.model.config.JobConfig`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

# ----------------------------------------------------------------------------- output helpers


def err(msg: str) -> None:
    """A log line on stderr."""
    print(msg, file=sys.stderr, flush=True)


def out(text: str) -> None:
    """Data on stdout."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if is_dataclass(obj) and not isinstance(obj, type):
        return {k: _jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def emit_json(obj: Any) -> None:
    out(json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


class Progress:
    """A one-line progress bar with ETA on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total: int, label: str, enabled: bool | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self.t0 = time.monotonic()
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        elapsed = time.monotonic() - self.t0
        eta = f"{elapsed / frac - elapsed:5.0f}s" if frac > 0 else "    ?"
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{self.label} [{bar:<30}] {done}/{self.total} ETA {eta} {note}"[:160])
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def show_causes(causes: Sequence[Any], limit: int = 8) -> None:
    """Failed chunks grouped by cause: count, the first chunks, one log to read, a hint."""
    for c in causes[:limit]:
        starts = ", ".join(str(s) for s in c.starts[:5]) + (", ..." if c.count > 5 else "")
        err(f"  {c.count} chunk(s) failed: {c.cause}")
        err(f"      chunks starting at row {starts}" + (f"; log: {c.log}" if c.log else ""))
        if c.hint:
            err(f"      hint: {c.hint}")
    if len(causes) > limit:
        err(f"  ... and {len(causes) - limit} more cause(s); see --json")


# ----------------------------------------------------------------------------- job loading


def job_dir_of(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "job_dir", None) or ".").resolve()


def config_of(args: argparse.Namespace, **cli: Any) -> Any:
    """The job's configuration: condorkit.toml < CONDORKIT_* < the command's job options."""
    from condorkit.model.config import command_line_options, load_config

    names = [f.name for f in command_line_options()] + ["chunk", "max_rows", "workers"]
    opts = {k: getattr(args, k, None) for k in names}
    for k, v in opts.items():
        if isinstance(v, list):
            opts[k] = tuple(v) or None
    opts.update(cli)
    return load_config(job_dir_of(args), opts)


def chunk_of(args: argparse.Namespace) -> int | None:
    """``--chunk``, or with ``--target-minutes M`` the size a measured dry-run chooses (what it
    measured and chose goes to stderr)."""
    minutes = getattr(args, "target_minutes", None)
    if minutes is None:
        return getattr(args, "chunk", None)
    from condorkit.condor.autochunk import choose_chunk

    choice = choose_chunk(job_dir_of(args), config_of(args, max_rows=getattr(args, "max", None)),
                          minutes)
    err(f"{args.command}: {choice.describe()}")
    return choice.chunk


def add_target_minutes(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target-minutes", type=float, metavar="M",
                   help="choose the chunk size so that a job lasts about M minutes "
                        "(from a dry-run of one chunk)")


def prepare_job(args: argparse.Namespace, write: bool = True, **cli: Any) -> Any:
    from condorkit.model.job import prepare

    return prepare(job_dir_of(args), config_of(args, **cli), write=write)


def add_job_options(p: argparse.ArgumentParser, names: Sequence[str] | None = None,
                    title: str = "job options (override condorkit.toml and CONDORKIT_* "
                                 "variables)") -> None:
    """One flag per configuration field marked as a command-line option (see JobConfig), or
    only for the fields in ``names``."""
    from condorkit.model.config import command_line_options, option_kind

    g = p.add_argument_group(title)
    for f in command_line_options():
        if names is not None and f.name not in names:
            continue
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        kind = option_kind(f.name)
        kwargs: dict[str, Any] = {"dest": f.name, "help": f.metadata["help"]}
        if f.metadata["metavar"]:
            kwargs["metavar"] = f.metadata["metavar"]
        if kind == "tuple":
            kwargs["action"] = "append"
        elif kind == "int":
            kwargs["type"] = int
        g.add_argument(flag, **kwargs)
