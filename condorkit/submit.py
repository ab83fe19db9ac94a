"""Talking to HTCondor to parse and submit jobs (the htcondor2 bindings, imported lazily).

Owns every use of ``htcondor2`` on the submit side: parsing a rendered submit file with the real
HTCondor parser, expanding its macros for one queue item (used by the dry-run and the parity
tests), and submitting a run with one ``Schedd.submit(..., itemdata=...)`` call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CondorError
from .quoting import parse_submit_args


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
