"""condorkit.model.failures: one cause line per failed attempt, grouped, with hints."""

from __future__ import annotations

from condorkit.model.failures import cause_line, describe, group, hint

TRACEBACK = """condorkit-wrapper: host=h python=3.11.2 (/usr/bin/python3) program=p.py rows=r
Traceback (most recent call last):
  File "/s/p.py", line 1, in <module>
    import PIL
ModuleNotFoundError: No module named 'PIL'
condorkit-wrapper: program exited with code 1
"""


def test_cause_line_takes_the_exception_of_a_traceback() -> None:
    assert cause_line(TRACEBACK) == "ModuleNotFoundError: No module named 'PIL'"


def test_cause_line_prefers_the_wrappers_error() -> None:
    text = "noise\ncondorkit-wrapper: error: no Python interpreter 'python3' on h\n"
    assert cause_line(text) == "no Python interpreter 'python3' on h"


def test_cause_line_without_traceback_is_the_first_own_line() -> None:
    assert cause_line("condorkit-wrapper: host=h\nfirst\nsecond\n") == "first"
    assert cause_line("") == ""


def test_chained_traceback_gives_the_last_exception() -> None:
    text = ("Traceback (most recent call last):\n  x\nKeyError: 'a'\n\nDuring handling of the "
            "above exception, another exception occurred:\n\nTraceback (most recent call "
            "last):\n  y\nValueError: bad row\n")
    assert cause_line(text) == "ValueError: bad row"


def test_describe_signals_and_codes() -> None:
    assert describe(-9, "") == "killed by SIGKILL"
    assert describe(3, "") == "exit code 3"
    assert describe(1, TRACEBACK) == "exit code 1: ModuleNotFoundError: No module named 'PIL'"


def test_hint_for_a_missing_module_names_the_interpreter_and_the_package() -> None:
    h = hint("exit code 1: ModuleNotFoundError: No module named 'PIL'", "/usr/bin/python3")
    assert "/usr/bin/python3 -m pip install pillow" in h and "condorkit bundle" in h
    assert "numpy" in hint("exit code 1: ModuleNotFoundError: No module named 'numpy.linalg'")


def test_hint_for_wrapper_exit_codes_and_unknown_causes() -> None:
    assert "bundle" in hint("exit code 94: needs glibc >= 2.36")
    assert hint("exit code 2: whatever") == ""


def test_group_counts_each_cause_once_with_one_log() -> None:
    causes = group([(41, "exit code 1: A", "/l/41.err"), (1, "exit code 1: A", "/l/1.err"),
                    (21, "exit code 2: B", "")])
    assert [(c.cause, c.count, c.starts, c.log) for c in causes] == [
        ("exit code 1: A", 2, (1, 41), "/l/1.err"), ("exit code 2: B", 1, (21,), "")]
