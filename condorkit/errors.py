"""The one error hierarchy of condorkit.

Every error carries a message that says what failed and how to fix it, and an exit code that the
CLI boundary (cli.main) maps it to. Library code raises these; only the CLI prints them.
"""

from __future__ import annotations


class CondorkitError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; ``hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(CondorkitError):
    """Bad command-line usage or configuration value."""

    exit_code = 2


class ConfigError(UsageError):
    """A project file, environment variable or option holds an invalid value."""


class ManifestError(CondorkitError):
    """A manifest line cannot be parsed. Always names the file and line."""

    exit_code = 3

    def __init__(self, path: str, line: int, message: str, hint: str = "") -> None:
        # line 0: the whole file is at fault (e.g. no data rows), so no line number is named
        super().__init__(f"{path}:{line}: {message}" if line > 0 else f"{path}: {message}", hint)
        self.path = path
        self.line = line


class RenderError(CondorkitError):
    """A template cannot be rendered, or a value cannot be written safely into a submit file."""

    exit_code = 4


class QuotingError(RenderError):
    """A value cannot be quoted safely for the submit language or the shell."""


class ResultsError(CondorkitError):
    """A results file is missing, truncated, tampered with, or rows are missing."""

    exit_code = 5


class BundleError(CondorkitError):
    """The job environment bundle cannot be built or unpacked."""

    exit_code = 6


class CondorError(CondorkitError):
    """Talking to HTCondor (schedd, collector, event log) failed."""

    exit_code = 7


class RunFailed(CondorkitError):
    """A run finished, but some chunks failed or produced no valid results."""

    exit_code = 8


class GraphError(CondorkitError):
    """A task graph is malformed: a cycle, a duplicate edge, an unreadable line."""

    exit_code = 9


class OutputError(CondorkitError):
    """A file cannot be written: the path is not a regular file (a device, a FIFO, a folder, a
    dangling link), its folder is missing or read-only, or the disk is full."""

    exit_code = 10


class Interrupted(CondorkitError):
    """The run was stopped by Ctrl-C or SIGTERM; a later run resumes."""

    exit_code = 130
