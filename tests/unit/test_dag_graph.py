"""Task graphs in paexec's -g format: parsing, errors with lines, the local runner, output.

The runner's tasks are real processes (sh scripts); paexec's own output is compared where the
`paexec` program is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from support.shared import required, shared_file

from condorkit.errors import GraphError, UsageError
from condorkit.local.graph import run_graph
from condorkit.model.graph import (
    FAILURE,
    SKIPPED,
    format_report,
    format_result,
    parse_graph,
    read_graph,
    reorder,
)

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "examples" / "pkgbuild"
GMAKE_DEPENDENTS = ("audio/cdparanoia", "audio/abcde", "audio/id3v2", "misc/mkcue")
BUILT = {"audio/cd-discid", "textproc/gsed", "audio/id3", "shells/bash", "devel/libtool-base",
         "audio/id3lib", "devel/m4", "devel/bison", "lang/f2c"}
# task numbers as `paexec -x -g -l` 1.1.1 printed them for this file (first appearance, 1-based)
PAEXEC_NUMBERS = {"audio/cd-discid": 1, "audio/abcde": 2, "textproc/gsed": 3,
                  "audio/cdparanoia": 4, "audio/id3v2": 5, "audio/id3": 6, "misc/mkcue": 7,
                  "shells/bash": 8, "devel/libtool-base": 9, "devel/gmake": 10,
                  "audio/id3lib": 11, "devel/m4": 12, "devel/bison": 13, "lang/f2c": 14}


def script(folder: Path, name: str, body: str) -> Path:
    p = folder / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


# ----------------------------------------------------------------------------- parsing


def test_packages_graph_parses_with_paexec_numbering() -> None:
    g = read_graph(PKG / "packages.txt")
    assert len(g.edges) == 16 and len(g.tasks) == 14
    assert {t: g.number(t) for t in g.tasks} == PAEXEC_NUMBERS
    assert g.parents("audio/abcde")[:2] == ("audio/cd-discid", "textproc/gsed")
    assert g.dependents("devel/gmake") == GMAKE_DEPENDENTS
    assert g.dependents("devel/m4") == ("devel/bison", "shells/bash", "audio/abcde")
    assert g.dependents("audio/abcde") == ()


def test_example_graph_is_the_shared_one() -> None:
    shared = shared_file("data/paexec-packages.txt")
    assert (PKG / "packages.txt").read_bytes() == shared.read_bytes()


def test_lone_tasks_comments_and_blank_lines() -> None:
    g = parse_graph("# a comment\n\nlone\n  a   b \nb c\nlone\n", "g.txt")
    assert g.tasks == ("lone", "a", "b", "c")
    assert [(a, b, n) for a, b, n in g.edges] == [("a", "b", 4), ("b", "c", 5)]


@pytest.mark.parametrize("text,pattern", [
    ("a b\nb c\nc a\n", r"g\.txt: cycle: a -> b -> c -> a \(lines 1, 2, 3\)"),
    ("x\na b\nc d\nd c\n", r"cycle: c -> d -> c \(lines 3, 4\)"),
    ("a b\nb b\n", r"g\.txt:2: cycle: b -> b"),
    ("a b c\n", r"g\.txt:1: unknown line 'a b c'.*3 fields"),
    ("a\nweight: a five\n", r"g\.txt:2: bad weight line"),
    ("a\x01b\n", r"g\.txt:1: control character"),
    ("# nothing\n\n", r"g\.txt: no tasks"),
])
def test_bad_graphs_name_the_line(text: str, pattern: str) -> None:
    with pytest.raises(GraphError, match=pattern) as info:
        parse_graph(text, "g.txt")
    assert info.value.exit_code == 9 and info.value.hint


def test_cycle_inside_a_bigger_graph_names_only_the_cycle() -> None:
    text = (PKG / "packages.txt").read_text() + "audio/abcde devel/m4\n"
    with pytest.raises(GraphError) as info:
        parse_graph(text, "p.txt")
    msg = info.value.message
    # starts at the cycle's lowest task number (abcde is task 2)
    assert "cycle: audio/abcde -> devel/m4 -> devel/bison -> shells/bash -> audio/abcde" in msg
    assert "(lines 17, 13, 16, 7)" in msg


def test_unreadable_graph_files(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match="does not exist"):
        read_graph(tmp_path / "nope.txt")
    (tmp_path / "latin1.txt").write_bytes(b"a b\nc \xe9\n")
    with pytest.raises(GraphError, match=r"latin1\.txt:2: not UTF-8"):
        read_graph(tmp_path / "latin1.txt")


# ----------------------------------------------------------------------------- running


def test_pkgbuild_failure_takes_down_exactly_the_dependents(tmp_path: Path) -> None:
    built = tmp_path / "built"
    built.mkdir()
    builder = script(tmp_path, "b.sh", f'echo "build $1"\ntouch "{built}/$(echo "$1" | tr / _)"\n'
                                        '[ "$1" != devel/gmake ]\n')
    report = run_graph(read_graph(PKG / "packages.txt"), [str(builder)], workers=3)
    assert set(report.succeeded) == BUILT
    assert report.failed == ("devel/gmake",)
    assert set(report.skipped) == set(GMAKE_DEPENDENTS)
    ran = {p.name for p in built.iterdir()}
    assert ran == {t.replace("/", "_") for t in BUILT | {"devel/gmake"}}  # skipped never ran
    gmake = next(r for r in report.results if r.name == "devel/gmake")
    assert gmake.status == FAILURE and gmake.exit_code == 1 and gmake.took_down == GMAKE_DEPENDENTS
    assert all(r.cause == "devel/gmake" for r in report.results if r.status == SKIPPED)
    assert not report.ok


def test_example_builder_script(tmp_path: Path) -> None:
    report = run_graph(read_graph(PKG / "packages.txt"), [str(PKG / "build.sh")], workers=2)
    assert set(report.succeeded) == BUILT and set(report.skipped) == set(GMAKE_DEPENDENTS)
    gmake = next(r for r in report.results if r.name == "devel/gmake")
    assert gmake.output == "build devel/gmake\n" and "configure failed" in gmake.stderr


def test_tasks_run_in_parallel(tmp_path: Path) -> None:
    # a and b each wait (up to 3 s) for the other's marker: both succeed only side by side
    body = ('touch "m-$1"\nother=a; [ "$1" = a ] && other=b\n'
            'for i in $(seq 30); do [ -e "m-$other" ] && exit 0; sleep 0.1; done\nexit 1\n')
    for workers, ok in ((2, True), (1, False)):
        folder = tmp_path / str(workers)
        folder.mkdir()
        s = script(folder, "barrier.sh", body)
        assert run_graph(parse_graph("a\nb\n"), [str(s)], workers=workers, cwd=folder).ok is ok


def test_a_task_starts_as_soon_as_its_dependencies_succeeded(tmp_path: Path) -> None:
    # `slow` (1 worker) waits for the marker of `c`, which needs a then b on the other worker:
    # c must start while slow still runs, not after a "wave" of running tasks has finished
    s = script(tmp_path, "t.sh", f'cd "{tmp_path}"\ntouch "m-$1"\n[ "$1" = slow ] || exit 0\n'
               'for i in $(seq 100); do [ -e m-c ] && exit 0; sleep 0.1; done\nexit 1\n')
    report = run_graph(parse_graph("slow\na b\nb c\n"), [str(s)], workers=2)
    assert report.ok and set(report.succeeded) == {"slow", "a", "b", "c"}
    r = {x.name: x for x in report.results}
    assert r["c"].started < r["slow"].started + r["slow"].duration  # c started while slow ran


def test_stdin_mode_and_arguments(tmp_path: Path) -> None:
    s = script(tmp_path, "s.sh", 'read t; echo "arg=[$*] stdin=[$t]"\n')
    report = run_graph(parse_graph("it's\n"), [str(s), "one two"], stdin=True)
    assert report.results[0].output == "arg=[one two] stdin=[it's]\n"
    report = run_graph(parse_graph("it's\n"), ["echo", "x"])
    assert report.results[0].output == "x it's\n"


def test_failures_timeouts_and_bad_commands(tmp_path: Path) -> None:
    s = script(tmp_path, "s.sh", '[ "$1" = hang ] && sleep 30\nexit 3\n')
    r = run_graph(parse_graph("x\nhang\n"), [str(s)], workers=2, timeout=0.5)
    codes = {t.name: t.exit_code for t in r.results}
    assert codes == {"x": 3, "hang": 124} and set(r.failed) == {"x", "hang"}
    with pytest.raises(UsageError, match="not an executable"):
        run_graph(parse_graph("a\n"), [str(tmp_path / "missing.sh")])
    with pytest.raises(UsageError, match="not on PATH"):
        run_graph(parse_graph("a\n"), ["no-such-command-xyz"])
    with pytest.raises(UsageError, match="no command"):
        run_graph(parse_graph("a\n"), [])
    with pytest.raises(UsageError, match="at least 1"):
        run_graph(parse_graph("a\n"), ["true"], workers=0)


# ----------------------------------------------------------------------------- output


def test_output_is_paexec_g_format(tmp_path: Path) -> None:
    report = run_graph(read_graph(PKG / "packages.txt"), [str(PKG / "build.sh")], workers=1)
    lines = format_report(report)
    i = lines.index("build devel/gmake")
    assert lines[i:i + 3] == ["build devel/gmake", "failure",
                              "devel/gmake audio/cdparanoia audio/abcde audio/id3v2 misc/mkcue"]
    assert lines.count("success") == 9 and lines.count("failure") == 1
    tagged = format_report(report, number=True, node=True, eot=True)
    assert "0 10 build devel/gmake" in tagged and "0 10" in tagged  # eot line of task 10
    ordered = format_report(report, number=True, ordered=True)
    assert ordered[:2] == ["1 build audio/cd-discid", "1 success"]
    assert [int(x.split()[0]) for x in ordered] == sorted(int(x.split()[0]) for x in ordered)
    skipped = next(r for r in report.results if r.status == SKIPPED)
    assert format_result(skipped, number=True) == []


def test_reorder_groups_tagged_lines_in_task_order() -> None:
    sliced = ["2 b1", "1 a1", "2 b2", "10 j1", "1 a2", "2 ", "1"]
    assert reorder(sliced) == ["a1", "a2", "", "b1", "b2", "", "j1"]
    assert reorder(sliced, keep_number=True)[:3] == ["1 a1", "1 a2", "1"]
    with_node = ["s2 3  X", "s1 1 A", "s2 3 Y"]
    assert reorder(with_node, node=True) == ["A", " X", "Y"]
    assert reorder(with_node, node=True, keep_number=True, keep_node=True)[0] == "s1 1 A"
    with pytest.raises(UsageError, match="line 1"):
        reorder(["no number here"])


PAEXEC = shutil.which("paexec")


def test_same_outcome_and_numbers_as_real_paexec(tmp_path: Path) -> None:
    required(PAEXEC is not None, "paexec (apt-get install paexec)")
    text = (PKG / "packages.txt").read_bytes()
    proc = subprocess.run([PAEXEC, "-x", "-g", "-l", "-n", "+3", "-c", str(PKG / "build.sh")],
                          input=text, capture_output=True, check=True)
    theirs = proc.stdout.decode().splitlines()
    ours = format_report(run_graph(read_graph(PKG / "packages.txt"), [str(PKG / "build.sh")],
                                   workers=3), number=True)

    def normalized(lines: list[str]) -> set[tuple[int, str]]:
        out = set()
        for x in lines:
            num, text = x.split(" ", 1)
            words = text.split()
            if words[0] == "devel/gmake":  # paexec 1.1.1 lists the same dependents in another order
                text = " ".join([words[0], *sorted(words[1:])])
            out.add((int(num), text))
        return out

    assert normalized(theirs) == normalized(ours)
    assert reorder(theirs)[:2] == ["build audio/cd-discid", "success"]  # paexec_reorder's job
