"""DAG-file quoting: node names, paths, and VARS values that reach a submit macro intact.

A VARS value passes two parsers: DAGMan's (a double-quoted string with ``\\"`` and ``\\\\``) and
then HTCondor's submit language, where it is spliced into ``arguments = "... $(task)"``. The
second is checked with HTCondor's own parser; the first with DAGMan's documented rule here and
with the real DAGMan in tests/integration/test_dag_pool.py.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from condorkit.condor.quoting import (
    dag_name,
    dag_path,
    dag_vars_value,
    parse_submit_args,
    submit_arg,
)
from condorkit.condor.submit import _htcondor
from condorkit.errors import QuotingError

NASTY = ["it's", 'q"z', "d$x", "back\\slash", "ünï", "a'b\"c", "x$(HOME)", "trail\\", "'", '"',
         "semi;colon", "#hash", "{brace}", "devel/gmake"]
task_text = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc", "Zl", "Zp")),
                    min_size=1, max_size=20).filter(
    lambda s: "$$" not in s and "$(DOLLAR)" not in s and not s.endswith("\\"))


def dag_unquote(value: str) -> str:
    """DAGMan's reading of a VARS value: a double-quoted string, backslash escapes \\ and \"."""
    assert value[0] == value[-1] == '"'
    body = value[1:-1]
    assert not re.search(r'(?<!\\)(\\\\)*"', body), f"unescaped quote in {value!r}"
    return re.sub(r"\\(.)", r"\1", body)


def through_submit(token: str) -> list[str]:
    """What a job gets when ``task`` holds ``token`` and arguments = "x $(task)"."""
    sub = _htcondor().Submit(f'executable = /bin/true\ntask = {token}\n'
                             f'arguments = "x $(task)"\nqueue\n')
    return parse_submit_args(str(sub.expand("arguments")))


@pytest.mark.parametrize("task", [t for t in NASTY if not t.endswith("\\")])
def test_nasty_task_names_reach_the_job_verbatim(task: str) -> None:
    token = dag_unquote(dag_vars_value(submit_arg(task)))
    assert through_submit(token) == ["x", task]


@settings(max_examples=150, deadline=None)
@given(task_text)
def test_any_task_name_round_trips(task: str) -> None:
    assert through_submit(dag_unquote(dag_vars_value(submit_arg(task)))) == ["x", task]


@given(st.text(st.characters(blacklist_categories=("Cs",),
                             blacklist_characters="\r\n\x00\x0b\x0c\x85\u2028\u2029")))
def test_vars_value_is_one_dag_string(value: str) -> None:
    assert dag_unquote(dag_vars_value(value)) == value


@pytest.mark.parametrize("bad", ["two\nlines", "nul\x00", "cr\r"])
def test_vars_value_refuses_line_breaks(bad: str) -> None:
    with pytest.raises(QuotingError, match="line break"):
        dag_vars_value(bad)


def test_submit_arg_refuses_unrepresentable_dollars() -> None:
    with pytest.raises(QuotingError, match=r"\$\$"):
        submit_arg("a$$b")


@pytest.mark.parametrize("name", ["chunk-1", "t14", "aggregate", "condorkit.dag", "A_b.c-9"])
def test_good_node_names(name: str) -> None:
    assert dag_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "a+b", "-x", ".x", "a/b", 'q"', "x" * 201,
                                  "PARENT", "child", "All_Nodes", "ü"])
def test_bad_node_names(name: str) -> None:
    with pytest.raises(QuotingError):
        dag_name(name)


def test_dag_path_refuses_white_space_and_quotes() -> None:
    assert dag_path("/a/b-c/x.sub") == "/a/b-c/x.sub"
    for bad in ("/a b/x.sub", "/a\tb", '/a"b', "/a'b", "", "/a\nb"):
        with pytest.raises(QuotingError):
            dag_path(bad)
