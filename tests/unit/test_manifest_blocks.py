"""The manifest's block reader (``iter_blocks``, used by ``scan`` and job preparation) against its
line-by-line reference (``iter_rows``/``parse_line``): for many generated manifests, valid and
not, the same rows, line numbers and values, or the same error (file, line, message, hint); and
``Tally.add_block`` hashes exactly what ``Tally.add`` hashes row by row."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from condorkit.errors import ManifestError
from condorkit.model import manifest
from condorkit.model.manifest import Columns, Tally, iter_blocks, iter_rows, scan

SPECS = [Columns.parse(s) for s in (["item"], ["url:url", "year:int"], ["a:int", "b", "c:url"])]

# pieces of a field: plain, non-ASCII (2, 3 and 4 bytes in UTF-8), JSON- and repr-special
GOOD = ["a", "Z", "0", "é", "中", "😀", "\u00a0", "\ufeff", "\u3000", '"', "\\", "'", "/", "%20",
        "{", "}", "<", "#", "+", "-", "\u200b", "\ud7ff", "\ue000"]
# pieces that make a line bad or unusual (control characters, CRs, separators, schemes)
ODD = ["\x00", "\x01", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x7f", "\x85", "\u2028", "\u2029",
       " ", "\t", ":", "ftp:", "x:", "Mailto:", "HTTP:", "File:", "https:", "1" * 19, "+", "-"]
INTS = ["0", "-0", "+5", "007", "123456789012345678", "-999999999999999999", "1" * 19, "1e3",
        "+-1", "", "٣", "1_0", "0x1"]
URLS = ["http://h/x", "https://h/y", "file:///t/a", "C:\\p", "a.jpg", "HTTPS://H", "-x:y",
        "ftp://h", "mailto:x", "svn+ssh://h", "a:b", "httpx://h", "Files:/", "http+s:", "hTtPs1:",
        "fil:e"]


def _field(rng: random.Random, typ: str, odd: float) -> str:
    if typ == "int" and rng.random() > odd:
        return rng.choice(INTS[:6])
    if typ == "int":
        return rng.choice(INTS)
    head = rng.choice(URLS if rng.random() < odd else URLS[:7]) if typ == "url" else ""
    pieces = [rng.choice(ODD if rng.random() < odd else GOOD) for _ in range(rng.randint(1, 5))]
    return head + "".join(pieces)


def _line(rng: random.Random, cols: Columns, odd: float) -> str:
    r = rng.random()
    if r < 0.05:
        return rng.choice(["", "  ", "\t", " \t "])
    if r < 0.1:
        return rng.choice(["#", "# c", "  # c\x01\r x", "#\x00"])
    sep = [rng.choice([" ", "\t", "  ", " \t"]) for _ in cols.columns]
    pad = rng.choice(["", " ", "\t"]), rng.choice(["", " ", "\t", "\r", "\r\r"])
    fields = [_field(rng, c.type, odd) for c in cols.columns]
    if rng.random() < odd:  # a field too many or too few
        fields = fields + ["x"] if rng.random() < 0.5 else fields[:-1]
    return pad[0] + "".join(f + s for f, s in zip(fields, sep, strict=False)).rstrip(" \t") + pad[1]


def _manifest(rng: random.Random, cols: Columns, odd: float) -> bytes:
    lines = [_line(rng, cols, odd) for _ in range(rng.randint(0, 40))]
    end = rng.choice(["\n", "\r\n"])
    data = end.join(lines) + (end if rng.random() < 0.7 else "")
    raw = data.encode("utf-8", "surrogatepass")
    if rng.random() < 0.2:
        raw = b"\xef\xbb\xbf" + raw
    if rng.random() < odd:  # bad UTF-8 somewhere: a stray byte, a cut sequence, a surrogate
        at = rng.randint(0, len(raw))
        raw = raw[:at] + rng.choice([b"\xff", b"\xe2\x82", b"\xc3", b"\xed\xa0\x80"]) + raw[at:]
    return raw


def _reference(path: Path, cols: Columns) -> tuple[object, str | None]:
    try:
        rows = [(r.row, r.line, r.values) for r in iter_rows(path, cols)]
    except ManifestError as exc:
        return ("error", str(exc), exc.hint, exc.line), None
    tally = Tally(path)
    for r in iter_rows(path, cols):
        tally.add(r)
    return rows, tally.info(cols, allow_empty=True).sha256


def _blocks(path: Path, cols: Columns, block: int) -> tuple[object, str | None]:
    tally = Tally(path)
    rows: list[tuple[int, int, tuple[str | int, ...]]] = []
    try:
        for b in iter_blocks(path, cols, block):
            assert len(b) and all(len(v) == len(b) for v in b.values)
            assert b.first == len(rows) + 1
            tally.add_block(b)
            rows += [(b.first + i, line, tuple(v[i] for v in b.values))
                     for i, line in enumerate(b.lines)]
    except ManifestError as exc:
        return ("error", str(exc), exc.hint, exc.line), None
    return rows, tally.info(cols, allow_empty=True).sha256


@pytest.mark.parametrize("odd", [0.0, 0.01, 0.05, 0.3])
@pytest.mark.parametrize("cols", SPECS, ids=lambda c: " ".join(c.spec()))
def test_blocks_give_the_rows_and_errors_of_the_line_reader(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cols: Columns, odd: float) -> None:
    fast = {True: 0, False: 0}  # blocks the fast path took / left to the line-by-line rules
    real = manifest._fast_block

    def counted(*args: object) -> object:
        got = real(*args)  # type: ignore[arg-type]
        fast[got is not None] += 1
        return got

    monkeypatch.setattr(manifest, "_fast_block", counted)
    rng = random.Random(f"{cols.spec()} {odd}")
    path = tmp_path / "m.txt"
    outcomes = {"rows": 0, "error": 0}
    for _ in range(150):
        path.write_bytes(_manifest(rng, cols, odd))
        want = _reference(path, cols)
        for block in (1, 7, 64, 1 << 18):  # lines within a block, and across its end
            assert _blocks(path, cols, block) == want, (path.read_bytes(), block)
        outcomes["error" if isinstance(want[0], tuple) else "rows"] += 1
    assert (outcomes["error"] == 0) == (odd == 0.0), outcomes  # both kinds were compared
    assert outcomes["rows"] > 50 or odd > 0.01, outcomes
    assert fast[True] > fast[False] or odd > 0.05, fast  # the fast path was compared too


@pytest.mark.parametrize("data, line", [
    (b"a\n" + b"b" * 41 + b"\nc\n", 2),             # one byte over (the \n is not counted)
    (b"a\n" + b"b" * 40 + b"\r\nc\n", 2),           # ... a CR is
    (b"a\n" + b"b" * 41, 2),                        # the last line, without \n
    (b"\xef\xbb\xbf" + b"b" * 38 + b"\n", 1),       # a BOM is
    (b"a\n" + b"b" * 500 + b"\nc\n", 2),            # far over: never all read at once
    (b"a\n" + b"b" * 40 + b"\n" + b"c" * 40, 0),    # exactly the limit: fine
])
def test_long_lines_are_refused_at_the_same_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 data: bytes, line: int) -> None:
    monkeypatch.setattr(manifest, "MAX_LINE", 40)
    path = tmp_path / "m.txt"
    path.write_bytes(data)
    cols = Columns.parse(["item"])
    want = _reference(path, cols)
    for block in (1, 16, 39, 40, 41, 100, 1 << 18):
        assert _blocks(path, cols, block) == want
    if line:
        got = want[0]
        assert isinstance(got, tuple) and (got[0], got[3]) == ("error", line)
        assert str(got[1]).startswith(f"{path}:{line}: line longer than 40 bytes\n")
    else:
        assert isinstance(want[0], list) and len(want[0]) == 3


def test_scan_counts_and_hashes_as_row_by_row(tmp_path: Path) -> None:
    path = tmp_path / "m.txt"
    path.write_bytes("\ufeff# head\r\nhttp://h/ä 1\r\n\r\n  'q\"\\ \t+07 \r\n/😀 -0\n".encode())
    cols = SPECS[1]
    tally = Tally(path)
    for r in iter_rows(path, cols):
        tally.add(r)
    assert scan(path, cols) == tally.info(cols)
    assert scan(path, cols).rows == 3
