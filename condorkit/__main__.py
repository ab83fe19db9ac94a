"""``python -m condorkit``: the same as the ``condorkit`` command."""

from condorkit.cli import entry

entry()
