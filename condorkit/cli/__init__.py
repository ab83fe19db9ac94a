"""The command line: the only package that writes to the terminal.

Owns argument parsing, rendering library results (tables, ``--json``, progress on stderr) and the
single error boundary that maps :class:`~condorkit.errors.CondorkitError` to exit codes. stdout
carries data only (``mksubmit`` prints nothing but the submit file); logs go to stderr; tracebacks
appear only with ``-v``. One module per command group: :mod:`.local` (mksubmit, dry-run, run,
aggregate, demo, bundle), :mod:`.pool` (submit ... where), :mod:`.dag` (dag, graph); the shared
output helpers and job options are in :mod:`.common`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from condorkit.cli.common import err
from condorkit.cli.local import add_local_commands
from condorkit.errors import CondorkitError, OutputError
from condorkit.version import __version__

if TYPE_CHECKING:
    from condorkit.local.standby import Standby

# ----------------------------------------------------------------------------- parser

Command = Callable[[argparse.Namespace], int]


#: the commands :func:`~condorkit.cli.local.add_local_commands` adds (a test checks the list)
LOCAL_COMMANDS = frozenset({"mksubmit", "dry-run", "run", "aggregate", "demo", "bundle"})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; for one of the ``LOCAL_COMMANDS`` only the local group (the pool and
    graph groups are neither imported nor built: ``condorkit run`` starts its workers sooner)."""
    p = argparse.ArgumentParser(prog="condorkit", description=(
        "Run one program over every row of a manifest: on all local cores (condorkit run) or on "
        "an HTCondor pool (condorkit mksubmit / submit)."))
    p.add_argument("--version", action="version", version=f"condorkit {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    common.add_argument("-C", "--job-dir", help="job folder (default: current folder)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_local_commands(sub, common)
    if command not in LOCAL_COMMANDS:
        from condorkit.cli.dag import add_dag_commands
        from condorkit.cli.pool import add_pool_commands

        add_pool_commands(sub, common)
        add_dag_commands(sub, common)
    return p


#: commands that write the job folder's state (rows files, results, run records, DAG files)
WRITES_STATE = frozenset({"mksubmit", "dry-run", "run", "submit", "resubmit", "dag"})


def main(argv: Sequence[str] | None = None, standby: Standby | None = None) -> int:
    """The CLI boundary: parse, dispatch, map errors to exit codes. ``standby``: a worker
    started before parsing (:mod:`condorkit.local.standby`), for ``run`` to adopt."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    args.standby = standby
    try:
        if args.command in WRITES_STATE and not getattr(args, "status", False):
            from condorkit.cli.common import job_dir_of
            from condorkit.model.joblock import job_lock

            # one lock around the whole command: its rows files stay the ones it runs
            with job_lock(job_dir_of(args), f"condorkit {args.command}",
                          wait=float(getattr(args, "lock_wait", 0.0) or 0.0)):
                return int(args.func(args) or 0)
        return int(args.func(args) or 0)
    except CondorkitError as exc:
        if args.verbose:
            traceback.print_exc()
        err(f"condorkit {args.command}: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        err(f"condorkit {args.command}: interrupted")
        return 130
    except BrokenPipeError:
        return 141
    except OSError as exc:  # a file or folder that cannot be used: one line, not a traceback
        if args.verbose:
            traceback.print_exc()
        where = f" ({exc.filename})" if exc.filename else ""
        err(f"condorkit {args.command}: error: {exc.strerror or exc}{where}\n"
            "  hint: check that path (free space, permissions); -v shows the traceback")
        return OutputError.exit_code


def mksubmit_main(argv: Sequence[str] | None = None) -> int:
    """The tutorial-compatible ``mksubmit CHUNK [MAX]`` command."""
    return main(["mksubmit", *(sys.argv[1:] if argv is None else argv)])


def _exit(code: int) -> NoReturn:
    """End the process after a command: everything it loaded is moved out of the collector's
    reach first (``gc.freeze``), so the interpreter's last collection does not walk it (that
    took 10-20 ms after ``condorkit run``); finalisation otherwise runs as usual."""
    import gc

    gc.freeze()
    sys.exit(code)


def entry(standby: Standby | None = None) -> NoReturn:
    """The ``condorkit`` command (and ``python -m condorkit``), from :mod:`condorkit.__main__`
    (which may have started a ``run``'s standby worker first)."""
    try:
        code = main(standby=standby)
    finally:
        if standby is not None:
            standby.close()  # a no-op once a run adopted it
    _exit(code)


def mksubmit_entry() -> NoReturn:
    """The ``mksubmit`` command."""
    _exit(mksubmit_main())


if __name__ == "__main__":  # pragma: no cover
    entry()
