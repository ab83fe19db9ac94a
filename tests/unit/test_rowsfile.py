"""Rows files and chunk keys built many rows at a time (``model/rowsfile.py``) against the plain
definition: ``json.dumps(rec, sort_keys=True, ensure_ascii=True)`` per row, sha256 over the
options hash then each row's JSON without ``line`` (``ckjob.rows_key``), and the manifest hash of
``Tally.add`` row by row. Byte-identical, so results computed before stay valid. Also: writing is
all or nothing (a bad line late in the manifest changes no rows file and leaves no folder), and
an unchanged rows file is not rewritten."""

from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob

from condorkit.errors import ManifestError
from condorkit.model import manifest
from condorkit.model.config import JobConfig
from condorkit.model.job import _options_hash, prepare
from condorkit.model.layout import ROWS_STAGING, STATE_DIR, rows_name
from condorkit.model.manifest import Tally, iter_rows

# names that sort before, between and after "line" and "row" (sort_keys puts those among them)
MANY = ("a", "lima:int", "lin", "line_x", "rov:url", "row_id", "s:int", "zz")
STRS = ["plain", "é", "ä中文", "😀", "a😀b\U0010fffd", "\u00a0nbsp", "mid\ufeffbom", '"q"', "\\",
        "back\\slash\\", "'", "</script>", "{}[]", "\ud7ff\ue000", "%20", "tab\\t", "not#comment"]
INTS = ["0", "-0", "+5", "007", "-007", "123456789012345678", "-999999999999999999", "+0"]
URLS = ["http://h/a", "https://h/é?x=1&y=\"2\"", "file:///t/%20a", "C:\\x", "plain/path",
        "HTTP://H/😀"]


def _value(rng: random.Random, typ: str) -> str:
    if typ == "int":
        return rng.choice(INTS)
    if typ == "url":
        return rng.choice(URLS)
    return "".join(rng.choice(STRS) for _ in range(rng.randint(1, 3)))


def _manifest(rng: random.Random, spec: tuple[str, ...], rows: int, crlf: bool, bom: bool) -> bytes:
    types = [s.partition(":")[2] or "str" for s in spec]
    lines = ["# a comment \x01 with anything"] if rng.random() < 0.5 else []
    for _ in range(rows):
        while rng.random() < 0.15:
            lines.append(rng.choice(["", "  ", "\t", "# c", "   # indented"]))
        seps = [rng.choice([" ", "\t", "  ", " \t "]) for _ in types]
        fields = [_value(rng, t) for t in types]
        pad = rng.choice(["", " ", "\t"])
        lines.append(pad + "".join(f + s for f, s in zip(fields, seps, strict=True)).rstrip()
                     + rng.choice(["", " ", "\t "]))
    end = "\r\n" if crlf else "\n"
    data = end.join(lines) + (end if rng.random() < 0.7 else "")
    return (b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8")


def _job(folder: Path, data: bytes, spec: tuple[str, ...], chunk: int,
         max_rows: int | None = None) -> tuple[Path, JobConfig]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "program.py").write_text("print('hi')\n")
    (folder / "manifest.txt").write_bytes(data)
    return folder, JobConfig(columns=spec, chunk=chunk, max_rows=max_rows)


def _reference(folder: Path, config: JobConfig) -> tuple[dict[str, bytes], list[str], str]:
    """The rows files, keys and manifest hash as defined: one json.dumps per row."""
    cols = config.column_spec()
    opts = _options_hash(config, folder / "program.py", (), None)
    tally = Tally(folder / "manifest.txt")
    rows = [tally.add(r) for r in iter_rows(folder / "manifest.txt", cols)]
    rows = rows[:config.max_rows] if config.max_rows else rows
    files: dict[str, bytes] = {}
    keys: list[str] = []
    for at in range(0, len(rows), config.chunk):
        group = rows[at:at + config.chunk]
        h = hashlib.sha256(opts.encode())
        lines = []
        for r in group:
            rec: dict[str, object] = dict(zip(cols.names, r.values, strict=True))
            rec["row"] = r.row
            h.update(json.dumps(rec, sort_keys=True, ensure_ascii=True).encode())
            rec["line"] = r.line
            lines.append(json.dumps(rec, sort_keys=True, ensure_ascii=True) + "\n")
        keys.append(h.hexdigest())
        header = {"format": ckjob.ROWS_FORMAT, "start": group[0].row, "count": len(group),
                  "key": keys[-1], "options": opts, "columns": list(cols.names)}
        files[rows_name(group[0].row)] = (json.dumps(header, sort_keys=True) + "\n"
                                          + "".join(lines)).encode()
    return files, keys, tally.info(cols).sha256


def _written(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "chunks").iterdir())}


CASES = [  # columns, rows, chunk, max_rows, block bytes
    (("item",), 500, 7, None, None),
    (("item",), 300, 1, 50, 64),
    (("url:url", "year:int"), 400, 13, None, 100),
    (MANY, 300, 9, None, None),
    (MANY, 250, 1000, None, 333),
    (MANY, 200, 3, 101, 1),
]


@pytest.mark.parametrize("spec, rows, chunk, max_rows, block", CASES)
@pytest.mark.parametrize("crlf, bom", [(False, False), (True, True)])
def test_rows_files_keys_and_hash_are_those_of_per_row_json(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: tuple[str, ...], rows: int,
        chunk: int, max_rows: int | None, block: int | None, crlf: bool, bom: bool) -> None:
    if block:  # blocks of the manifest reader that end inside lines and inside chunks
        monkeypatch.setattr(manifest, "BLOCK", block)
    rng = random.Random(f"{spec} {rows} {crlf}")
    folder, config = _job(tmp_path / "job", _manifest(rng, spec, rows, crlf, bom), spec, chunk,
                          max_rows)
    files, keys, sha = _reference(folder, config)
    job = prepare(folder, config)
    assert _written(folder) == files
    assert list(job.keys) == keys and job.manifest.sha256 == sha and job.manifest.rows == rows
    assert [(c.start, c.count) for c in job.chunks] == [
        (json.loads(d.split(b"\n")[0])["start"], json.loads(d.split(b"\n")[0])["count"])
        for d in files.values()]
    keyed = prepare(folder, config, write=False)
    assert keyed.keys == job.keys and keyed.manifest == job.manifest
    for name in files:  # what a worker computes from the file it reads
        header, got = ckjob.read_rows(str(folder / "chunks" / name))
        assert ckjob.rows_key(header["options"], got) == header["key"]
    assert not (folder / STATE_DIR / ROWS_STAGING).exists()


def test_non_ascii_is_escaped_as_json_does(tmp_path: Path) -> None:
    folder, config = _job(tmp_path / "job", "😀\t+07\n\"é\\ -0\n".encode(), ("s", "n:int"), 5)
    prepare(folder, config)
    lines = (folder / "chunks" / "rows-1.jsonl").read_text(encoding="ascii").splitlines()[1:]
    assert lines == ['{"line": 1, "n": 7, "row": 1, "s": "\\ud83d\\ude00"}',
                     '{"line": 2, "n": 0, "row": 2, "s": "\\"\\u00e9\\\\"}']


def _stats(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
            for p in (folder / "chunks").iterdir()}


def test_a_bad_line_late_in_the_manifest_changes_nothing(tmp_path: Path) -> None:
    good = "".join(f"item{i}\n" for i in range(1, 1001)).encode()
    folder, config = _job(tmp_path / "job", good, ("item",), 10)
    prepare(folder, config)
    before = _stats(folder)
    # other rows, then a bad line after 90 chunks' worth: every rows file would change
    (folder / "manifest.txt").write_bytes(good.replace(b"item", b"other")[:-2000]
                                          + b"two fields\n" + good[-2000:])
    with pytest.raises(ManifestError, match=r"manifest\.txt:\d+: expected 1 field"):
        prepare(folder, config)
    assert _stats(folder) == before
    assert not (folder / STATE_DIR / ROWS_STAGING).exists()
    fresh, config = _job(tmp_path / "fresh", good + b"two fields\n", ("item",), 10)
    with pytest.raises(ManifestError):
        prepare(fresh, config)
    assert not (fresh / "chunks").exists() and not (fresh / "results").exists()
    assert not (fresh / "logs").exists() and not (fresh / STATE_DIR / ROWS_STAGING).exists()


def test_unchanged_rows_files_are_not_rewritten(tmp_path: Path) -> None:
    good = "".join(f"item{i}\n" for i in range(1, 101)).encode()
    folder, config = _job(tmp_path / "job", good, ("item",), 10)
    prepare(folder, config)
    before = _stats(folder)
    stale = folder / STATE_DIR / ROWS_STAGING
    stale.mkdir()  # left by a killed process
    (stale / rows_name(1)).write_bytes(b"half")
    prepare(folder, config)
    assert _stats(folder) == before and not stale.exists()
    (folder / "manifest.txt").write_bytes(good.replace(b"item55\n", b"changed\n"))
    prepare(folder, config)
    after = _stats(folder)
    assert [n for n in before if after[n] != before[n]] == [rows_name(51)]
    assert oct(os.stat(folder / "chunks" / rows_name(51)).st_mode & 0o777) == "0o644"
