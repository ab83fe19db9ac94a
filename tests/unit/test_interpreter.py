"""condorkit.model.interpreter: the one rule for which Python runs a local .py program."""

from __future__ import annotations

import os
import sys

import pytest

from condorkit.errors import ConfigError
from condorkit.model.interpreter import ENV_VAR, job_env, local_python, python_command


def test_default_is_the_interpreter_running_condorkit() -> None:
    assert local_python() == os.path.abspath(sys.executable)


def test_a_bundle_decides_and_the_variable_is_removed() -> None:
    assert local_python("python3", bundled=True) is None
    assert ENV_VAR not in job_env({ENV_VAR: "x", "A": "1"}, bundled=True)


def test_a_chosen_interpreter_is_resolved_or_refused() -> None:
    assert local_python(sys.executable) == os.path.abspath(sys.executable)
    with pytest.raises(ConfigError, match="option python .environment.: 'no-such-python-x'"):
        local_python("no-such-python-x", "environment")


def test_job_env_sets_the_variable_for_the_wrapper() -> None:
    env = job_env({"A": "1"})
    assert env[ENV_VAR] == os.path.abspath(sys.executable) and env["A"] == "1"


def test_graph_python_scripts_run_under_the_rule() -> None:
    assert python_command(("task.py", "-x")) == (os.path.abspath(sys.executable), "task.py", "-x")
    assert python_command(("true",)) == ("true",)
