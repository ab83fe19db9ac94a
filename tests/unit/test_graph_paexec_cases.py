"""The graph-mode cases of paexec's own regression suite, as facts, against condorkit.

paexec's suite builds a small pkgsrc-like graph with a builder that fails for the packages
matching a pattern, and checks which tasks ran, failed and were skipped, and each failure's
report line (the failed task, then every task that depends on it, directly or not). Every case
here runs in both of condorkit's modes (a process per task, and a paexec calculator per
worker), and, where the `paexec` program is installed, through paexec too, with the same
expected sets and lines (the order of tasks within one failure line is free).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.shared import required

from condorkit.errors import GraphError
from condorkit.local.graph import run_graph
from condorkit.local.slots import MAGIC_EOT, Protocol
from condorkit.model.graph import FAILURE, SKIPPED, SUCCESS, format_report, parse_graph, parse_rows

PAEXEC = shutil.which("paexec")

# the dependencies of paexec's make_package example: `A B` = B needs A
PACKAGES = """textproc/dictem
devel/autoconf wip/libmaa
devel/gmake wip/libmaa
wip/libmaa wip/dict-server
wip/libmaa wip/dict-client
devel/m4 wip/dict-server
devel/byacc wip/dict-server
devel/byacc wip/dict-client
devel/flex wip/dict-server
devel/flex wip/dict-client
devel/glib2
devel/libjudy
"""
# a diamond: both dict packages feed pkg_online
DIAMOND = """devel/flex wip/dict-server
devel/flex wip/dict-client
wip/dict-server wip/pkg_online
wip/dict-client wip/pkg_online
"""
DICT = {"wip/dict-server", "wip/dict-client"}
LIBMAA = {"wip/libmaa"} | DICT

# pattern -> (failed, skipped, {failed task: the dependents its line lists}), as paexec's suite
# checks them (ok9/ok10/ok11, ok20/ok21 and the line counts)
CASES: dict[str, tuple[set[str], set[str], dict[str, set[str]]]] = {
    "NOTHING": (set(), set(), {}),
    "byacc": ({"devel/byacc"}, DICT, {"devel/byacc": DICT}),
    "flex": ({"devel/flex"}, DICT, {"devel/flex": DICT}),
    "libmaa": ({"wip/libmaa"}, DICT, {"wip/libmaa": DICT}),
    "m4": ({"devel/m4"}, {"wip/dict-server"}, {"devel/m4": {"wip/dict-server"}}),
    "libjudy": ({"devel/libjudy"}, set(), {"devel/libjudy": set()}),
    "dictem": ({"textproc/dictem"}, set(), {"textproc/dictem": set()}),
    "glib2": ({"devel/glib2"}, set(), {"devel/glib2": set()}),
    "gmake": ({"devel/gmake"}, LIBMAA, {"devel/gmake": LIBMAA}),
    "autoconf": ({"devel/autoconf"}, LIBMAA, {"devel/autoconf": LIBMAA}),
    "dict-server": ({"wip/dict-server"}, set(), {"wip/dict-server": set()}),
    # two failures sharing dependents: each line lists all of them
    "flex|byacc": ({"devel/flex", "devel/byacc"}, DICT,
                   {"devel/flex": DICT, "devel/byacc": DICT}),
    "gmake|autoconf": ({"devel/gmake", "devel/autoconf"}, LIBMAA,
                       {"devel/gmake": LIBMAA, "devel/autoconf": LIBMAA}),
}
# the number of output lines paexec's suite counts (-l, a builder echoing its task): 2 per task
# that ran, 1 more per failure
LINES = {"NOTHING": 22, "byacc": 19, "flex": 19, "libmaa": 19, "m4": 21, "libjudy": 23,
         "dictem": 23, "glib2": 23, "gmake": 17, "autoconf": 17, "dict-server": 23,
         "flex|byacc": 20, "gmake|autoconf": 18}


def script(folder: Path, name: str, body: str) -> Path:
    p = folder / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def builders(tmp_path: Path) -> tuple[Path, Path]:
    """A per-task builder (exit status) and a calculator (answer lines), failing on $PATTERN."""
    per_task = script(tmp_path, "build.sh", 'echo "$1"\n'
                      'if echo "$1" | grep -Eq -- "$PATTERN"; then exit 1; fi\n')
    calc = script(tmp_path, "calc.sh", 'while read -r t; do echo "$t"\n'
                  '  if echo "$t" | grep -Eq -- "$PATTERN"; then echo failure; '
                  'else echo success; fi\n  echo\ndone\n')
    return per_task, calc


def outcome(lines: list[str]) -> tuple[set[str], set[str], dict[str, set[str]]]:
    """(ran, failed, failure lines) from `-l` output of a builder that echoes its task."""
    by_task: dict[str, list[str]] = {}
    for line in lines:
        num, _, text = line.partition(" ")
        by_task.setdefault(num, []).append(text)
    ran, failed, report = set(), set(), {}
    for texts in by_task.values():
        ran.add(texts[0])
        if texts[1] == "failure":
            failed.add(texts[0])
            first, *rest = texts[2].split()
            assert first == texts[0] and len(rest) == len(set(rest))  # each dependent once
            report[first] = set(rest)
    return ran, failed, report


@pytest.mark.parametrize("mode", ["per-task", "calculator"])
@pytest.mark.parametrize("pattern", list(CASES))
def test_paexec_package_cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pattern: str,
                              mode: str) -> None:
    monkeypatch.setenv("PATTERN", pattern)
    per_task, calc = builders(tmp_path)
    graph = parse_graph(PACKAGES, "tasks")
    for workers in (1, 4):
        if mode == "calculator":
            report = run_graph(graph, [str(calc)], workers=workers, calculator=Protocol())
        else:
            report = run_graph(graph, [str(per_task)], workers=workers)
        failed, skipped, lines = CASES[pattern]
        assert set(report.failed) == failed and set(report.skipped) == skipped
        assert set(report.succeeded) == set(graph.tasks) - failed - skipped
        assert len(report.results) == len(graph.tasks)  # each task reported exactly once
        out = format_report(report, number=True)
        assert len(out) == LINES[pattern]
        assert outcome(out) == (set(graph.tasks) - skipped, failed, lines)


@pytest.mark.parametrize("pattern", list(CASES))
def test_real_paexec_agrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            pattern: str) -> None:
    required(PAEXEC is not None, "paexec (apt-get install paexec)")
    monkeypatch.setenv("PATTERN", pattern)
    per_task, calc = builders(tmp_path)
    failed, skipped, lines = CASES[pattern]
    tasks = set(parse_graph(PACKAGES).tasks)
    for args in (["-c", str(calc)], ["-x", "-c", str(per_task)]):
        proc = subprocess.run([str(PAEXEC), "-l", "-g", "-n", "+3", *args], input=PACKAGES,
                              capture_output=True, text=True, check=True, timeout=60)
        out = proc.stdout.splitlines()
        assert len(out) == LINES[pattern]
        assert outcome(out) == (tasks - skipped, failed, lines)


def test_diamond_lists_a_shared_dependent_once(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATTERN", "flex")
    per_task, calc = builders(tmp_path)
    for cmd, proto in (([str(per_task)], None), ([str(calc)], Protocol())):
        report = run_graph(parse_graph(DIAMOND), cmd, workers=2, calculator=proto)
        ran, failed, lines = outcome(format_report(report, number=True))
        assert failed == {"devel/flex"} and ran == {"devel/flex"}
        assert lines == {"devel/flex": DICT | {"wip/pkg_online"}}
        assert set(report.skipped) == DICT | {"wip/pkg_online"}


def test_one_over_x_chain(tmp_path: Path) -> None:
    # paexec's 1/X case: a chain through task 0, where 1/0 fails; the line lists the rest
    chain = "1 2\n2 3\n3 4\n4 5\n5 0\n0 7\n7 8\n8 9\n9 10\n10 11\n11 12\n"
    calc = script(tmp_path, "div.sh", 'while read -r x; do if [ "$x" = 0 ]; then '
                  'echo "Cannot calculate 1/0"; echo failure; else echo "1/$x"; echo success; '
                  'fi; echo; done\n')
    report = run_graph(parse_graph(chain), [str(calc)], workers=10, calculator=Protocol())
    lines = format_report(report, number=True, eot=True, ordered=True)
    assert lines[-4:] == ["6 Cannot calculate 1/0", "6 failure", "6 0 7 8 9 10 11 12", "6"]
    assert set(report.succeeded) == {"1", "2", "3", "4", "5"}


def test_no_input_is_an_error_not_a_silent_success() -> None:
    # paexec prints nothing for an empty graph; condorkit says so (a deliberate difference)
    with pytest.raises(GraphError, match="no tasks"):
        parse_graph("")


@pytest.mark.parametrize("text,cycle", [
    # paexec's cyclic-dependency cases: the same cycle is named
    ("devel/gettext-lib devel/gmake\ndevel/gmake lang/gcc\npkgtools/pkg_install-info lang/gcc\n"
     "devel/libtool-base devel/gettext-lib\nsysutils/checkperms devel/gettext-lib\n"
     "lang/gcc converters/libiconv\nlang/gcc devel/gettext-lib\n",
     "devel/gettext-lib -> devel/gmake -> lang/gcc -> devel/gettext-lib"),
    ("task-2 task-1\ntask-1 task0\ntask0 task10\ntask10 task20\ntask20 task30\ntask30 task10\n",
     "task10 -> task20 -> task30 -> task10"),
    ("task0 task10\ntask10 task20\ntask20 task30\ntask50 task50\ntask30 task40\n",
     "task50 -> task50"),
    ("task0\ntask100\ntask0 task200\ntask0 task100\ntask10 task100\ntask20 task100\n"
     "task50 task100\ntask100 task110\ntask200 task300\ntask300 task0\n",
     "task0 -> task200 -> task300 -> task0"),
])
def test_paexec_cycle_cases(text: str, cycle: str) -> None:
    with pytest.raises(GraphError, match=cycle):
        parse_graph(text, "g")


# paexec's weight cases: `weight:` lines, and -W (heavier first, a weight being the task's own
# plus those of every task that depends on it, each counted once)
WEIGHTS1 = ("pcc\nweight: gcc 10\nweight: tcl 8\nglibc\nweight: glibc 9\nweight: python 7\n"
            "python\nweight: pcc 4\nweight: dictd 3\nweight: mplayer 11\nweight: pike 6\n"
            "weight: ruby 5\nweight: gnome 12\ngnome\nweight: kde 13\nweight: runawk 2\n"
            "weight: mk-configure 1\nweight: qt4 14\n")
WEIGHTS2 = ("pipestatus pkg_status\npkg_summary-utils pkg_status\ndict pkg_online-client\n"
            "pkg_summary-utils pkg_online-client\npipestatus pkg_online-client\n"
            "netcat pkg_online-client\ndictd pkg_online-server\n"
            "pkg_summary-utils pkg_online-server\npipestatus pkg_online-server\njudyhash\n"
            "runawk\nlibmaa paexec\nlibmaa dictd\nlibmaa dict\npipestatus pkg_summary-utils\n"
            "pipestatus pkg_summary-utils\npipestatus pkg_summary-utils\n"  # repeated, as there
            "paexec pkg_summary-utils\nrunawk pkg_summary-utils\n\nweight: judyhash 12\n"
            "weight: dictd 20\nweight: dict 15\nweight: pkg_summary-utils 2\nweight: runawk 2\n"
            "weight: paexec 4\nweight: libmaa 5\nweight: pkg_online-server 1\n"
            "weight: pkg_online-client 1\n")


def test_paexec_weight_cases() -> None:
    g1 = parse_graph(WEIGHTS1)
    assert dict(zip(g1.tasks, g1.sum_weights(), strict=True)) == {
        "pcc": 4, "gcc": 10, "tcl": 8, "glibc": 9, "python": 7, "dictd": 3, "mplayer": 11,
        "pike": 6, "ruby": 5, "gnome": 12, "kde": 13, "runawk": 2, "mk-configure": 1, "qt4": 14}
    report = run_graph(g1, ["true"], workers=1, weighted=True)
    assert [r.name for r in report.results] == [
        "qt4", "kde", "gnome", "mplayer", "gcc", "glibc", "tcl", "python", "pike", "ruby", "pcc",
        "dictd", "runawk", "mk-configure"]
    g2 = parse_graph(WEIGHTS2)
    assert len(g2.edges) == 15  # the repeated dependency counts once
    assert dict(zip(g2.tasks, g2.sum_weights(), strict=True)) == {
        "pipestatus": 6, "pkg_status": 1, "pkg_summary-utils": 5, "dict": 16,
        "pkg_online-client": 1, "netcat": 2, "dictd": 21, "pkg_online-server": 1,
        "judyhash": 12, "runawk": 7, "libmaa": 49, "paexec": 9}
    report = run_graph(g2, ["true"], workers=1, weighted=True)
    order = [r.name for r in report.results]
    assert order[0] == "libmaa" and report.ok


# ----------------------------------------------------------------------------- calculators


def flaky_calculator(tmp_path: Path, body: str) -> Path:
    return script(tmp_path, "flaky.sh", f'cd "{tmp_path}"\nwhile read -r t; do\n{body}\n'
                  'echo "$t"; echo success; echo "$PAEXEC_EOT"; done\n')


def test_a_dead_calculator_is_restarted_and_its_task_retried(tmp_path: Path) -> None:
    # like paexec -Z: every task kills its calculator the first time it is seen
    calc = flaky_calculator(tmp_path, '  [ -e "seen-$t" ] || { touch "seen-$t"; exit 3; }')
    chain = "a b\nb c\nc d\nx\ny\n"
    for proto in (Protocol(), Protocol(MAGIC_EOT)):
        for p in tmp_path.glob("seen-*"):
            p.unlink()
        report = run_graph(parse_graph(chain), [str(calc)], workers=2, calculator=proto)
        assert report.ok and report.restarts == 6
        assert all("exited (status 3)" in r.stderr and "retried" in r.stderr
                   for r in report.results)
        assert [r.output for r in report.results if r.name == "c"] == ["c\n"]


def test_a_calculator_that_always_dies_fails_its_task_only(tmp_path: Path) -> None:
    calc = flaky_calculator(tmp_path, '  [ "$t" = b ] && exit 5')
    report = run_graph(parse_graph("a b\nb c\nx\n"), [str(calc)], workers=2,
                       calculator=Protocol(), retries=2)
    assert set(report.succeeded) == {"a", "x"} and report.failed == ("b",)
    assert report.skipped == ("c",)
    b = next(r for r in report.results if r.name == "b")
    assert b.exit_code == 5 and "gave up after 3 attempt(s)" in b.stderr
    lines = [x for x in format_report(report, number=True) if x.startswith("2 ")]
    assert lines == ["2 failure", "2 b c"]


def test_calculator_answers_protocol_errors_and_timeouts(tmp_path: Path) -> None:
    calc = script(tmp_path, "c.sh", 'while read -r t; do case "$t" in\n'
                  '  hang) sleep 30;;\n  odd) echo "no status"; echo;;\n'
                  '  *) echo "line 1 of $t"; echo "line 2"; echo success; echo;;\nesac; done\n')
    report = run_graph(parse_graph("ok\nodd\nhang\nok2\n"), [str(calc)], workers=1,
                       calculator=Protocol(), timeout=1.0)
    r = {x.name: x for x in report.results}
    assert r["ok"].status == SUCCESS and r["ok"].output == "line 1 of ok\nline 2\n"
    assert r["odd"].status == FAILURE and "did not end with 'success'" in r["odd"].stderr
    assert r["hang"].exit_code == 124 and "timed out" in r["hang"].stderr
    assert r["ok2"].status == SUCCESS  # a fresh calculator after the killed one


def test_a_calculator_sees_paexec_eot_and_custom_markers(tmp_path: Path) -> None:
    calc = script(tmp_path, "c.sh", 'while read -r t; do echo "$t"; echo success; '
                  'echo "$PAEXEC_EOT"; done\n')
    for proto in (Protocol("END"), Protocol(MAGIC_EOT)):
        report = run_graph(parse_graph("a b\n"), [str(calc)], calculator=proto)
        assert report.ok and [r.output for r in report.results] == ["a\n", "b\n"]


def test_rows_calculator_and_rows_per_task(tmp_path: Path) -> None:
    # paexec without -g: each line is one task (spaces and repeats included), no status lines
    rows = parse_rows("a\nb c\n\na\n")
    assert rows.tasks == ("a", "b c", "a") and rows.rows
    calc = script(tmp_path, "up.sh", 'while read -r t; do echo "$t" | tr a-z A-Z; echo; done\n')
    report = run_graph(rows, [str(calc)], workers=2, calculator=Protocol())
    assert sorted(format_report(report, number=True)) == ["1 A", "2 B C", "3 A"]
    report = run_graph(rows, ["echo", "got"], workers=2)
    assert sorted(format_report(report)) == ["got a", "got a", "got b c"]
    bad = script(tmp_path, "bad.sh", '[ "$1" != "b c" ]\n')
    report = run_graph(rows, [str(bad)], workers=2)
    assert report.failed == ("b c",) and report.skipped == () and len(report.succeeded) == 2
    assert [r.status for r in report.results].count(SKIPPED) == 0
