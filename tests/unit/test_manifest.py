"""Manifest parsing: formats accepted, errors that name file and line, stable row numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.shared import shared_file

from condorkit.errors import ConfigError, ManifestError
from condorkit.model.manifest import Columns, iter_rows, scan

# the tutorial's columns (examples/photodemo/condorkit.toml)
PHOTO = Columns.parse(["url:url", "year:int"])


def write(tmp_path: Path, data: bytes, name: str = "manifest.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_rows_are_numbered_from_one_skipping_blank_and_comments(tmp_path: Path) -> None:
    p = write(tmp_path, b"# header\n\nhttp://h/a.jpg 1880\n   \n# c\n/x/b.jpg 2001\n")
    rows = list(iter_rows(p, PHOTO))
    assert [(r.row, r.line, r.values) for r in rows] == [
        (1, 3, ("http://h/a.jpg", 1880)), (2, 6, ("/x/b.jpg", 2001))]


def test_crlf_bom_tabs_and_non_ascii_are_accepted(tmp_path: Path) -> None:
    p = write(tmp_path, "\ufeffhttp://h/ä.jpg\t1919\r\nfile:///tmp/%20x.jpg  2015\r\n"
              .encode("utf-8"))
    rows = list(iter_rows(p, PHOTO))
    assert [r.values for r in rows] == [("http://h/ä.jpg", 1919), ("file:///tmp/%20x.jpg", 2015)]


def test_only_ascii_space_and_tab_separate_fields(tmp_path: Path) -> None:
    # a no-break space is part of a file name, not a separator; years take ASCII digits only
    p = write(tmp_path, "/data/a\u00a0b.jpg\t 1999\n".encode())
    assert [r.values for r in iter_rows(p, PHOTO)] == [("/data/a\u00a0b.jpg", 1999)]


def test_last_line_without_newline(tmp_path: Path) -> None:
    assert scan(write(tmp_path, b"a.jpg 1\nb.jpg 2"), PHOTO).rows == 2


@pytest.mark.parametrize("line, expect", [
    (b"http://h/a.jpg\n", "expected 2 field(s)"),
    (b"/my photos/a.jpg 1999\n", "found 3"),
    (b"http://h/a.jpg 19x9\n", "year must be an integer"),
    (b"ftp://h/a.jpg 1999\n", "unsupported URL scheme 'ftp'"),
    (b"http://h/a\x01.jpg 1999\n", "control character"),
    (b"http://h/\xff.jpg 1999\n", "not valid UTF-8"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: bytes, expect: str) -> None:
    p = write(tmp_path, b"# ok\nhttp://h/ok.jpg 1900\n" + line)
    with pytest.raises(ManifestError) as info:
        scan(p, PHOTO)
    assert info.value.line == 3
    assert str(info.value).startswith(f"{p}:3: ") and expect in str(info.value)
    assert info.value.hint


def test_space_in_path_hint_mentions_file_url(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        scan(write(tmp_path, b"/my photos/a.jpg 1999\n"), PHOTO)
    assert "file://" in info.value.hint and "%20" in info.value.hint


def test_empty_manifest_is_an_error_unless_allowed(tmp_path: Path) -> None:
    p = write(tmp_path, b"# nothing here\n\n")
    with pytest.raises(ManifestError, match=r"manifest\.txt: the manifest has no data rows") as e:
        scan(p, PHOTO)
    assert ":0" not in str(e.value)
    assert scan(p, PHOTO, allow_empty=True).rows == 0


def test_missing_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="cannot read manifest"):
        scan(tmp_path / "nope.txt", PHOTO)


def test_same_url_twice_gives_two_rows(tmp_path: Path) -> None:
    assert scan(write(tmp_path, b"a.jpg 1\na.jpg 1\n"), PHOTO).rows == 2


def test_hash_changes_when_a_row_changes(tmp_path: Path) -> None:
    a = scan(write(tmp_path, b"a.jpg 1\nb.jpg 2\n", "a.txt"), PHOTO).sha256
    b = scan(write(tmp_path, b"a.jpg 1\nb.jpg 3\n", "b.txt"), PHOTO).sha256
    c = scan(write(tmp_path, b"# same rows, other comments\na.jpg 1\r\nb.jpg 2\n", "c.txt"),
             PHOTO).sha256
    assert a != b and a == c


def test_generic_columns(tmp_path: Path) -> None:
    cols = Columns.parse(["item"])
    rows = list(iter_rows(write(tmp_path, b"x\ny\n"), cols))
    assert [(r.row, r.line, r.values) for r in rows] == [(1, 1, ("x",)), (2, 2, ("y",))]
    assert PHOTO.spec() == ["url:url", "year:int"]


@pytest.mark.parametrize("spec", [[], ["row"], ["a:float"], ["a", "a"], ["Bad-Name"]])
def test_bad_column_specs(spec: list[str]) -> None:
    with pytest.raises(ConfigError):
        Columns.parse(spec)


def test_real_photodemo_manifest() -> None:
    real = shared_file("data/photodemo-manifest.txt")
    assert scan(real, PHOTO).rows == 5576
