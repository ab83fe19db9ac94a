"""``python -m condorkit`` and the ``condorkit`` command.

A ``condorkit run`` gets its standby worker (:mod:`condorkit.local.standby`) started here,
before the command line's modules are even imported; then :func:`condorkit.cli.entry` runs the
command. Light imports only, for that reason.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def entry() -> NoReturn:
    from condorkit.local.standby import start

    standby = start(sys.argv[1:])
    from condorkit.cli import entry as command

    command(standby)


if __name__ == "__main__":
    entry()
