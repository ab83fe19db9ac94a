"""Reading manifests: one input per line, parsed into numbered rows.

Owns the manifest format. A manifest is UTF-8 text (a BOM and CRLF line ends are accepted); blank
lines and lines starting with ``#`` are skipped; every other line is a data row of
whitespace-separated fields described by :class:`Columns` (default: the photodemo tutorial's
``URL-or-path year``). The n-th data row is row n (1-based) wherever it goes. A malformed line is a
:class:`~condorkit.errors.ManifestError` naming the file, the line and what was expected; nothing is
silently dropped. Reading streams: memory does not grow with the manifest. :func:`iter_rows` reads
line by line (the reference); :func:`iter_blocks` gives the same rows and errors many lines at a
time (what job preparation and :func:`scan` use: a million rows in well under a second).

Decisions for edge cases (see README "Failure modes"):
- a line with the wrong number of fields, a non-integer year, a URL with an unsupported scheme, a
  line that is not UTF-8, or a control character in a field: error naming file and line;
- a path containing spaces cannot be told apart from extra fields: write it as a ``file://`` URL
  with ``%20`` (the error says so);
- the same URL twice: two rows, both processed (they are separate inputs);
- an empty manifest (no data rows): error, since a job over nothing is almost always a mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, BinaryIO

from condorkit.errors import ConfigError, ManifestError
from condorkit.model.fileio import open_regular

_TYPES = ("str", "int", "url")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_URL_SCHEMES = ("http", "https", "file")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0085\u2028\u2029]")
_FIELD_SEP = re.compile(r"[ \t]+")
_INT = re.compile(r"[+-]?[0-9]{1,18}")
MAX_LINE = 1 << 20  # bytes in one manifest line (without its line end)
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Column:
    """One field of a manifest line: its name and type (``str``, ``int`` or ``url``)."""

    name: str
    type: str = "str"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or self.name in ("row", "line", "error"):
            raise ConfigError(
                f"invalid column name {self.name!r}",
                "use lower-case letters, digits and _ (not row, line or error)",
            )
        if self.type not in _TYPES:
            raise ConfigError(f"invalid column type {self.type!r}", f"use one of {_TYPES}")


@dataclass(frozen=True)
class Columns:
    """The fields of every data line, in order."""

    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        if not self.columns:
            raise ConfigError("a manifest needs at least one column", "e.g. columns = ['item']")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate column names in {names}", "give each column a name")

    @classmethod
    def parse(cls, spec: list[str] | tuple[str, ...] | str) -> Columns:
        """Build from ``["url:url", "year:int"]`` or ``"url:url year:int"``."""
        items = spec.split() if isinstance(spec, str) else list(spec)
        cols = []
        for item in items:
            name, _, typ = str(item).partition(":")
            cols.append(Column(name, typ or "str"))
        return cls(tuple(cols))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def spec(self) -> list[str]:
        return [f"{c.name}:{c.type}" for c in self.columns]

    def usage(self) -> str:
        return " ".join(c.name if c.type != "url" else "URL-or-path" for c in self.columns)



@dataclass(frozen=True)
class Row:
    """One data row: its 1-based row number, its line in the file, and its typed values."""

    row: int
    line: int
    values: tuple[str | int, ...]


def _convert(path: str, lineno: int, col: Column, text: str) -> str | int:
    if col.type == "int":
        if not _INT.fullmatch(text):
            raise ManifestError(path, lineno, f"{col.name} must be an integer, got {text!r}",
                                f"write a whole number such as 1919 in the {col.name} field")
        return int(text)
    if col.type == "url":
        m = _SCHEME.match(text)
        if m and len(m.group(1)) > 1 and m.group(1).lower() not in _URL_SCHEMES:
            raise ManifestError(path, lineno, f"unsupported URL scheme {m.group(1)!r} in {text!r}",
                                "use http://, https://, file:// or a plain file path")
    return text


def parse_line(path: str, lineno: int, text: str, columns: Columns) -> tuple[str | int, ...] | None:
    """Parse one line (without its line end). Returns None for blank lines and comments."""
    stripped = text.strip(" \t")
    if not stripped or stripped.startswith("#"):
        return None
    bad = _CONTROL.search(stripped)
    if bad:
        raise ManifestError(path, lineno, f"control character {bad.group()!r} in the line",
                            "remove it; manifest fields are plain text")
    fields = _FIELD_SEP.split(stripped)
    n = len(columns.columns)
    if len(fields) != n:
        hint = f"each line must be `{columns.usage()}`"
        if len(fields) > n and columns.columns[0].type == "url":
            hint += ("; fields are separated by spaces or tabs, so write a path with spaces as "
                     "a file:// URL with %20 for each space")
        raise ManifestError(path, lineno, f"expected {n} field(s) ({columns.usage()}), "
                            f"found {len(fields)}", hint)
    return tuple(_convert(path, lineno, c, f) for c, f in zip(columns.columns, fields, strict=True))


def _open(path: str | Path) -> BinaryIO:
    try:  # only a regular file: a FIFO, a folder or /dev/zero is an error, never a hang
        return open_regular(path)
    except OSError as exc:
        raise ManifestError(str(path), 0, f"cannot read manifest: {exc.strerror or exc}",
                            "check the path (manifest = ... in condorkit.toml, or --manifest)"
                            ) from None


def _line_text(path: str, lineno: int, raw: bytes) -> str:
    """The text of one line from its bytes (without its line end): length, BOM, UTF-8, CRs."""
    if len(raw) > MAX_LINE:
        raise ManifestError(path, lineno, f"line longer than {MAX_LINE:,} bytes",
                            "one input per line; is this really a manifest?")
    if lineno == 1 and raw.startswith(_BOM):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(path, lineno, f"not valid UTF-8 (byte {exc.start})",
                            "save the manifest as UTF-8") from None
    return text.rstrip("\r")


def iter_rows(path: str | Path, columns: Columns) -> Iterator[Row]:
    """Stream the data rows of a manifest, validating each line as it is read.

    The reference reader, one line at a time; :func:`iter_blocks` gives the same rows faster.
    """
    name = str(path)
    row = 0
    with _open(path) as fh:
        lineno = 0
        while True:
            raw = fh.readline(MAX_LINE + 1)  # never more than MAX_LINE bytes of one line held
            if not raw:
                break
            lineno += 1
            text = _line_text(name, lineno, raw[:-1] if raw.endswith(b"\n") else raw)
            values = parse_line(name, lineno, text, columns)
            if values is not None:
                row += 1
                yield Row(row, lineno, values)


@dataclass(frozen=True)
class RowBlock:
    """Consecutive data rows, column by column: rows ``first ..``, their lines in the file, and
    ``values[j]`` the values of column j (``str``, or ``int`` for an int column)."""

    first: int
    lines: Sequence[int]
    values: tuple[list[Any], ...]

    def __len__(self) -> int:
        return len(self.lines)


BLOCK = 1 << 18  # bytes read at once by iter_blocks (plus the rest of the last line)
# what the fast path of iter_blocks leaves to the line-by-line rules: control characters but
# \t, \n and \r (CRs are checked apart: only a line's trailing CRs are not part of its text)
_SUSPECT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u0085\u2028\u2029]")
_TRAILING_CR = re.compile(r"\r+(?=\n)|\r+\Z")
_INTS = re.compile(r"[+-]?[0-9]{1,18}(?:\n[+-]?[0-9]{1,18})*")  # _INT, one per line
# a line (after a \n) starting with a _SCHEME of 2 or more characters not in _URL_SCHEMES
_BAD_SCHEME = re.compile(r"\n(?![Hh][Tt][Tt][Pp][Ss]?:|[Ff][Ii][Ll][Ee]:)[A-Za-z][A-Za-z0-9+.-]+:")


def iter_blocks(path: str | Path, columns: Columns, block: int | None = None
                ) -> Iterator[RowBlock]:
    """The rows of :func:`iter_rows`, many lines at a time, with exactly its errors.

    Each block of lines is checked with whole-block string operations; a block in which
    anything looks unusual (a control character even in a comment, a CR inside a line, a wrong
    field count, a bad int or URL scheme, bad UTF-8, a long line) goes through the line-by-line
    rules instead, which raise the same error for the same line, or accept it.
    Memory: one block of ``block`` (default :data:`BLOCK`) bytes plus at most one line.
    """
    name = str(path)
    block = block or BLOCK
    row = lineno = 0
    with _open(path) as fh:
        while True:
            data = fh.read(block)
            if not data:
                break
            if not data.endswith(b"\n"):  # finish the last line (at most MAX_LINE + 1 bytes)
                data += fh.readline(MAX_LINE + 1)
            got = _fast_block(data, lineno, row, columns)
            if got is None:
                got = _slow_block(name, data, lineno, row, columns)
            lineno += data.count(b"\n") + (not data.endswith(b"\n"))
            if len(got):
                row += len(got)
                yield got


def _slow_block(name: str, data: bytes, lineno: int, row: int, columns: Columns) -> RowBlock:
    raws = data.split(b"\n")
    if data.endswith(b"\n"):
        raws.pop()
    lines: list[int] = []
    rows: list[tuple[str | int, ...]] = []
    for i, raw in enumerate(raws, lineno + 1):
        values = parse_line(name, i, _line_text(name, i, raw), columns)
        if values is not None:
            lines.append(i)
            rows.append(values)
    cols = tuple(list(c) for c in zip(*rows, strict=True)) if rows else tuple(
        [] for _ in columns.columns)
    return RowBlock(row + 1, lines, cols)


def _fast_block(data: bytes, lineno: int, row: int, columns: Columns) -> RowBlock | None:
    """The block's rows, or None when a line needs the line-by-line rules."""
    if len(data) > MAX_LINE:  # a long line maybe: the line-by-line rules measure each line
        return None
    try:
        text = (data[3:] if lineno == 0 and data.startswith(_BOM) else data).decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text:
        text = _TRAILING_CR.sub("", text)
        if "\r" in text:
            return None
    if _SUSPECT.search(text):
        return None
    lines = text.split("\n")
    if data.endswith(b"\n"):
        lines.pop()
    spaced = " " in text or "\t" in text
    if spaced:
        lines = list(map(str.strip, lines, repeat(" \t")))
        text = "\n".join(lines)
    first = lineno + 1
    numbers: Sequence[int] = range(first, first + len(lines))
    if "" in lines or text.startswith("#") or "\n#" in text:  # blank lines or comments
        numbers = [i for i, s in enumerate(lines, first) if s and s[0] != "#"]
        lines = [s for s in lines if s and s[0] != "#"]
        text = "\n".join(lines)
    n = len(columns.columns)
    if not lines:
        return RowBlock(row + 1, numbers, tuple([] for _ in range(n)))
    if n == 1:
        if spaced and (" " in text or "\t" in text):
            return None
        fields = [lines]
    else:
        if "\t" in text or "  " in text:
            text = _FIELD_SEP.sub(" ", text)
            lines = text.split("\n")
        if list(map(str.count, lines, repeat(" "))).count(n - 1) != len(lines):
            return None
        flat = text.replace("\n", " ").split(" ")
        fields = [flat[j::n] for j in range(n)]
    values: list[list[Any]] = []
    for col, texts in zip(columns.columns, fields, strict=True):
        if col.type == "int":
            if not _INTS.fullmatch("\n".join(texts)):
                return None
            values.append(list(map(int, texts)))
            continue
        if col.type == "url" and _BAD_SCHEME.search("\n" + "\n".join(texts)):
            return None
        values.append(texts)
    return RowBlock(row + 1, numbers, tuple(values))


@dataclass(frozen=True)
class ManifestInfo:
    """What a full pass over a manifest learned: its row count and content hash."""

    path: str
    rows: int
    sha256: str


class Tally:
    """Counts rows and hashes their values as they stream past (one pass, constant memory)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.rows = 0
        import hashlib  # here: loading OpenSSL (~3 ms) waits until a manifest is read

        self._h = hashlib.sha256()

    def add(self, r: Row) -> Row:
        self.rows = r.row
        self._h.update(repr(r.values).encode("utf-8"))
        self._h.update(b"\n")
        return r

    def add_block(self, b: RowBlock) -> RowBlock:
        """:meth:`add` for every row of ``b``, hashing the same bytes in one update."""
        if not len(b):
            return b
        self.rows = b.first + len(b) - 1
        reprs = [list(map(repr, col)) for col in b.values]
        if len(reprs) == 1:  # repr((v,)) is "(" + repr(v) + ",)"
            text = "(" + ",)\n(".join(reprs[0]) + ",)\n"
        else:
            text = "(" + ")\n(".join(map(", ".join, zip(*reprs, strict=True))) + ")\n"
        self._h.update(text.encode("utf-8"))
        return b

    def info(self, columns: Columns, allow_empty: bool = False) -> ManifestInfo:
        if self.rows == 0 and not allow_empty:
            raise ManifestError(self.path, 0, "the manifest has no data rows",
                                f"add lines of the form `{columns.usage()}`")
        return ManifestInfo(self.path, self.rows, self._h.hexdigest())


def scan(path: str | Path, columns: Columns,
         allow_empty: bool = False) -> ManifestInfo:
    """Validate a whole manifest in one streaming pass; count rows and hash their values."""
    tally = Tally(path)
    for b in iter_blocks(path, columns):
        tally.add_block(b)
    return tally.info(columns, allow_empty)
