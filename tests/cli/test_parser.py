"""The command line's parser: a local command builds only the local group, the rest all."""

from __future__ import annotations

import argparse
import subprocess
import sys

from condorkit.cli import LOCAL_COMMANDS, build_parser
from condorkit.cli.local import add_local_commands


def commands(p: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_local_commands_is_what_the_local_group_adds() -> None:
    p = argparse.ArgumentParser()
    add_local_commands(p.add_subparsers(), argparse.ArgumentParser(add_help=False))
    assert commands(p) == LOCAL_COMMANDS


def test_a_local_command_builds_only_the_local_group_others_everything() -> None:
    full = commands(build_parser())
    assert LOCAL_COMMANDS < full and {"submit", "status", "dag", "graph"} <= full
    for name in LOCAL_COMMANDS:
        assert commands(build_parser(name)) == LOCAL_COMMANDS
    assert commands(build_parser("submit")) == full
    assert commands(build_parser("no-such-command")) == full  # its error lists every command


def test_condorkit_run_imports_neither_the_pool_nor_the_graph_commands() -> None:
    code = ("import sys\nfrom condorkit.cli import main\ntry:\n    main(['run', '--help'])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('condorkit.cli.pool', 'condorkit.cli.dag', "
            "'importlib.resources') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]", out
