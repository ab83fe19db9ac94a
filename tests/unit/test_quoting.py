"""Quoting for the submit language and the shell, checked against the real parsers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from condorkit.condor.quoting import (
    escape_dollars,
    parse_submit_args,
    submit_args,
    submit_expr,
    submit_file_list,
    submit_value,
)
from condorkit.condor.submit import _htcondor
from condorkit.errors import QuotingError

NASTY = ["a b", "it's", 'say "hi"', "$(HOME)", "x$y", "", "queue", "; rm -rf /", "`id`",
         "</script>", "$ (Memory)", "tab\there", "ünï", "'", '"', "''", "a'b\"c", "$"]
# anything but line breaks and NUL, which no submit value can hold
safe_text = st.text(st.characters(blacklist_categories=("Cs",),
                                  blacklist_characters="\r\n\x00\x0b\x0c\x85\u2028\u2029"),
                    max_size=30).filter(lambda s: "$$" not in s and "$(DOLLAR)" not in s)


def expand_arguments(args_value: str) -> str:
    htcondor = _htcondor()
    sub = htcondor.Submit(f"executable = /bin/true\narguments = {args_value}\nqueue\n")
    return str(sub.expand("arguments"))


def test_nasty_arguments_round_trip_through_htcondor() -> None:
    assert parse_submit_args(expand_arguments(submit_args(NASTY))) == NASTY


@settings(max_examples=150, deadline=None)
@given(st.lists(safe_text, max_size=6))
def test_any_arguments_round_trip_through_htcondor(args: list[str]) -> None:
    assert parse_submit_args(expand_arguments(submit_args(args))) == args


@settings(max_examples=100, deadline=None)
@given(safe_text.filter(lambda s: s == s.strip(" \t") and s != ""))
def test_values_are_literal_after_htcondor_expansion(value: str) -> None:
    if value.endswith("\\"):
        with pytest.raises(QuotingError, match="continuation"):
            submit_value(value)
        return
    htcondor = _htcondor()
    sub = htcondor.Submit(f"executable = /bin/true\nmy_value = {submit_value(value)}\nqueue\n")
    assert sub.expand("my_value") == value


def test_kept_macro_still_expands_and_others_do_not() -> None:
    htcondor = _htcondor()
    args = submit_args(["r-$(start).x", "$(start)x$(y)"], keep=("start",))
    text = f"executable = /bin/true\narguments = {args}\nqueue start from (\n7\n)\n"
    sub = htcondor.Submit(text)
    sub["start"] = "7"
    assert parse_submit_args(sub.expand("arguments")) == ["r-7.x", "7x$(y)"]
    assert escape_dollars("$(start)$(x)", ("start",)) == "$(start)$(DOLLAR)(x)"


@pytest.mark.parametrize("bad", ["a\nqueue", "x\r", "nul\x00", "ls\u2028"])
def test_line_breaks_are_refused_everywhere(bad: str) -> None:
    for fn in (submit_value, submit_expr, lambda v: submit_args([v]),
               lambda v: submit_file_list([v])):
        with pytest.raises(QuotingError):
            fn(bad)


@pytest.mark.parametrize("bad", ["$$(Memory)", "a$(DOLLAR)b", "$$"])
def test_unrepresentable_dollars_are_refused(bad: str) -> None:
    for fn in (submit_value, lambda v: submit_args([v])):
        with pytest.raises(QuotingError, match="DOLLAR"):
            fn(bad)
    with pytest.raises(QuotingError, match="DOLLAR"):  # a `$` right before a kept macro
        submit_args(["x$" + "$(start)"], keep=("start",))


@pytest.mark.parametrize("bad", ["a,b", "a b", "x'y", 'x"y', ""])
def test_file_lists_refuse_separators(bad: str) -> None:
    with pytest.raises(QuotingError, match="file|empty"):
        submit_file_list([bad])


def test_value_whitespace_empty_and_continuation_refused() -> None:
    for bad in (" lead", "trail ", "", "ends\\"):
        with pytest.raises(QuotingError):
            submit_value(bad)


def test_expr_unbalanced_quote() -> None:
    with pytest.raises(QuotingError):
        submit_expr('OpSys == "LINUX')
    assert submit_expr('OpSys == "LINUX" && Memory > 100') == 'OpSys == "LINUX" && Memory > 100'
