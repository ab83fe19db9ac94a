"""The states a chunk or a graph task can be in, shared by both backends and the CLI.

Owns the names only. They are ``StrEnum`` s, so they compare equal to, print as and serialize
to their lowercase names (the values the ``--json`` output and run records have always carried).

A chunk of a local run: pending -> done | failed, or skipped (a valid result was already there).
A chunk of a pool run: idle -> running -> completed (spooled, outputs not yet retrieved) -> done
(exit 0 AND a valid results file) | failed, or held. A graph task: success, failure or skipped.
"""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """The state of a chunk (local or pool run)."""

    PENDING = "pending"
    SKIPPED = "skipped"
    IDLE = "idle"
    RUNNING = "running"
    HELD = "held"
    COMPLETED = "completed"
    DONE = "done"
    FAILED = "failed"


# the states `condorkit status` counts, in display order, and the ones a pool chunk ends in
POOL_STATES = (State.IDLE, State.RUNNING, State.HELD, State.COMPLETED,
               State.DONE, State.FAILED)
POOL_END_STATES = frozenset({State.HELD, State.DONE, State.FAILED})


class TaskStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"
