"""Reading local inputs ahead (``ckjob.readahead`` and the photodemo program's use of it): the
kernel reads the next rows' files into the page cache while the program measures this one, and
nothing that is not a regular local file is ever opened for it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from condorkit.wrappers import ckjob
from support.programs import ROOT, load_program, tutorial

from condorkit.demo import write_corpus

L = load_program(ROOT / "examples" / "photodemo" / "luminance.py", "photodemo_readahead")
DEADLINE_S = 20  # the wait for the disk to bring the pages in (a bound, not a speed claim)


def resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache, from mincore(2) via util-linux's fincore (reading the
    file to find out would bring it in)."""
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--raw", "--output", "RES",
                          str(path)], capture_output=True, text=True, timeout=30, check=True)
    return int(out.stdout.strip())


def evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.mark.parametrize("form", ["path", "file-url", "localhost-url"])
def test_readahead_brings_an_evicted_file_into_the_page_cache(tmp_path: Path, form: str
                                                              ) -> None:
    f = tmp_path / "photo one.jpg"
    f.write_bytes(os.urandom(3 << 20))
    evict(f)
    assert resident_bytes(f) == 0, "the test needs a file system whose pages can be dropped"
    url = {"path": str(f), "file-url": f.as_uri(),
           "localhost-url": "file://localhost" + f.as_uri()[len("file://"):]}[form]
    assert ckjob.readahead(url, 64 << 20) is True
    end = time.monotonic() + DEADLINE_S
    while resident_bytes(f) < f.stat().st_size and time.monotonic() < end:
        time.sleep(0.05)
    assert resident_bytes(f) == f.stat().st_size


def test_readahead_asks_for_no_more_than_the_limit(tmp_path: Path) -> None:
    f = tmp_path / "big.jpg"
    f.write_bytes(os.urandom(8 << 20))
    evict(f)
    assert ckjob.readahead(str(f), 1 << 20) is True
    end = time.monotonic() + DEADLINE_S
    while resident_bytes(f) < (1 << 20) and time.monotonic() < end:
        time.sleep(0.05)
    time.sleep(0.2)
    # the limit's pages, plus at most the kernel's own read-ahead window beyond them
    assert 1 << 20 <= resident_bytes(f) <= (1 << 20) + (1 << 20)


@pytest.mark.parametrize("kind", ["http", "https", "ftp", "other-host", "missing", "fifo",
                                  "dev-zero", "folder", "dangling", "nul", "bad-url"])
def test_readahead_opens_nothing_but_a_regular_local_file(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "input.jpg"
    url = str(p)
    if kind in ("http", "https", "ftp"):
        url = f"{kind}://127.0.0.1:9/input.jpg"
    elif kind == "other-host":
        p.write_bytes(b"\xff\xd8data")
        url = f"file://otherhost{p}"
    elif kind == "fifo":
        os.mkfifo(p)  # opening it for reading without a writer would block: never opened
    elif kind == "dev-zero":
        p.symlink_to("/dev/zero")
    elif kind == "folder":
        p.mkdir()
    elif kind == "dangling":
        p.symlink_to(tmp_path / "nowhere")
    elif kind == "nul":
        url = str(p) + "\x00.jpg"
    elif kind == "bad-url":
        url = "file://[::1/input.jpg"  # urlsplit raises ValueError
    assert ckjob.readahead(url, 1 << 20) is False


def _measure_logging(monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, object]],
                     window: int) -> tuple[list[dict[str, object]], list[tuple[str, str]]]:
    """measure_rows with the order of its hints and fetches recorded as (what, url)."""
    events: list[tuple[str, str]] = []
    real_fetch, real_hint = L.fetch, L.ckjob.readahead

    def fetch(url: str, budget: object = None, index: int = 0) -> bytes:
        events.append(("fetch", url))
        return real_fetch(url, budget, index)

    def hint(url: str, max_bytes: int) -> bool:
        events.append(("hint", url))
        assert max_bytes == L.MAX_BYTES
        return real_hint(url, max_bytes)

    monkeypatch.setattr(L, "fetch", fetch)
    monkeypatch.setattr(L.ckjob, "readahead", hint)
    monkeypatch.setattr(L, "WINDOW", window)
    records, _ = L.measure_rows(rows)
    return records, events


def test_local_rows_are_hinted_once_each_and_only_within_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_corpus(tmp_path / "img", 9, sizes=[(160, 120)], seed=3)
    urls = [str(f.path) if i % 2 else f.path.as_uri() for i, f in enumerate(files)]
    urls.insert(4, "http://127.0.0.1:9/never.jpg")  # a remote row: fetched, never hinted
    rows = [{"row": i + 1, "url": u, "year": 1999} for i, u in enumerate(urls)]
    records, events = _measure_logging(monkeypatch, rows, window=3)
    hints = [u for what, u in events if what == "hint"]
    local = [u for u in urls if not u.startswith("http")]
    assert hints == local[1:]  # each local row but the first, once, in row order
    for i, u in enumerate(urls):
        done = events.index(("fetch", u)) if ("fetch", u) in events else len(events)
        before = {v for what, v in events[:done] if what == "hint"}
        assert i == 0 or u.startswith("http") or u in before  # hinted before it was due
        assert not before & set(urls[i + 4:])  # nothing beyond the window of 3 rows
    values = [r for r in records if "luminance" in r]
    assert len(values) == 9 and [r["error"] for r in records if "error" in r] != []
    for rec in values:
        assert abs(rec["luminance"] - tutorial(Path(rec["url"].removeprefix("file://")))) < 1e-9


def test_a_window_of_zero_hints_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    files = write_corpus(tmp_path / "img", 3, sizes=[(160, 120)], seed=4)
    rows = [{"row": i + 1, "url": str(f.path), "year": 2000} for i, f in enumerate(files)]
    records, events = _measure_logging(monkeypatch, rows, window=0)
    assert [what for what, _ in events] == ["fetch"] * 3
    assert not any("error" in r for r in records)
