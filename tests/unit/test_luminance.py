"""The photodemo program's luminance: exactly the tutorial's value, by both kernels, on real
photo-like files of every variant; per-row errors; fetch-ahead concurrency and its memory bound.

The program is a standalone job file (examples/photodemo/luminance.py, next to ckjob.py); it is
imported here the way the job runs it, and also run as a real process on a real HTTP server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.httpserver import FaultyServer
from support.programs import load_program, tutorial

from condorkit.demo import DECODABLE_VARIANTS, write_corpus

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "examples" / "photodemo" / "luminance.py"
CKJOB = ROOT / "wrappers" / "ckjob.py"
FAST_DEPS = all(importlib.util.find_spec(m) for m in ("numpy", "simplejpeg", "cv2"))


L = load_program(PROGRAM, "photodemo_luminance")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list:
    folder = tmp_path_factory.mktemp("lum-corpus")
    # odd sizes exercise partial MCUs; 4:2:0 chroma, quality 85-92, grain: photo-like
    sizes = [(331, 217), (160, 240), (512, 384), (97, 61)]
    return write_corpus(folder, 2 * len(DECODABLE_VARIANTS), sizes=sizes, seed=7,
                        variants=DECODABLE_VARIANTS)


def test_both_kernels_equal_the_tutorial_on_every_variant(corpus: list) -> None:
    checked = 0
    for f in corpus:
        if f.variant == "png16":
            continue
        ref = tutorial(f.path)
        assert abs(L.luminance(f.path) - ref) < 1e-9, f.path.name
        assert abs(L.luminance_pillow(f.path) - ref) < 1e-9, f.path.name
        assert abs(L.luminance(f.path.read_bytes()) - ref) < 1e-9, f.path.name
        checked += 1
    assert checked >= 16


@pytest.mark.skipif(not FAST_DEPS, reason="fast kernel needs numpy, simplejpeg, opencv")
def test_fast_kernel_takes_the_jpegs_and_matches(corpus: list) -> None:
    kernel = L.FastKernel()
    taken = 0
    for f in corpus:
        value = kernel.luminance(f.path.read_bytes())
        if f.variant in ("rgb", "gray", "progressive", "exif-rotated"):
            assert value is not None, f"fast kernel refused {f.path.name}"
            assert abs(value - tutorial(f.path)) < 1e-9, f.path.name
            taken += 1
        else:  # CMYK and non-JPEG files go to Pillow
            assert value is None, f.path.name
    assert taken >= 8


@pytest.mark.skipif(not FAST_DEPS, reason="fast kernel needs numpy, simplejpeg, opencv")
def test_fast_kernel_reuses_buffers_across_sizes(corpus: list) -> None:
    """A big image, then a small one, then big again: stale buffer contents must not leak."""
    kernel = L.FastKernel()
    jpegs = [f for f in corpus if f.variant == "rgb"]
    order = sorted(jpegs, key=lambda f: -f.width * f.height) + sorted(
        jpegs, key=lambda f: f.width * f.height)
    for f in order:
        assert abs(kernel.luminance(f.path.read_bytes()) - tutorial(f.path)) < 1e-9


def test_large_photo_exact(tmp_path: Path) -> None:
    """One realistic-size photo (2 MP) of each kind that the fast kernel decodes."""
    files = write_corpus(tmp_path, 3, sizes=[(1600, 1200)], seed=11,
                         variants=["rgb", "progressive", "gray"])
    for f in files:
        assert abs(L.luminance(f.path) - tutorial(f.path)) < 1e-9


def _scratch(tmp_path: Path, urls: list[str]) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir(parents=True)
    shutil.copy(PROGRAM, scratch)
    shutil.copy(CKJOB, scratch)
    header = {"format": "condorkit-rows/1", "start": 1, "count": len(urls), "key": "k",
              "columns": ["url", "year"]}
    rows = [json.dumps(header)] + [json.dumps({"row": i + 1, "line": i + 1, "url": u,
                                               "year": 1900 + i}) for i, u in enumerate(urls)]
    (scratch / "rows-1.jsonl").write_text("\n".join(rows) + "\n")
    return scratch


def _run(scratch: Path, **env: str) -> dict:
    proc = subprocess.run([sys.executable, "luminance.py", "rows-1.jsonl", "results-1.json"],
                          cwd=scratch, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((scratch / "results-1.json").read_text())
    sys.path.insert(0, str(CKJOB.parent))
    import ckjob

    assert ckjob.check_results(doc, 1, doc["count"], "k") == []
    return doc


@pytest.mark.parametrize("kernel", ["auto", "pillow"])
def test_bad_rows_become_errors_and_the_chunk_goes_on(tmp_path: Path, kernel: str) -> None:
    files = write_corpus(tmp_path / "img", 7, sizes=[(120, 90)], seed=3,
                         variants=["rgb", "truncated", "empty", "text", "bomb", "gray", "cmyk"])
    urls = [str(f.path) for f in files] + [str(tmp_path / "missing.jpg"), "ftp://x/y.jpg"]
    doc = _run(_scratch(tmp_path, urls), PHOTODEMO_KERNEL=kernel)
    recs = {r["row"]: r for r in doc["records"]}
    for i, f in enumerate(files, start=1):
        if f.variant in ("rgb", "gray", "cmyk"):
            assert abs(recs[i]["luminance"] - tutorial(f.path)) < 1e-9
        else:
            assert recs[i]["error"].startswith("decode: "), recs[i]
    assert recs[8]["error"].startswith("fetch: no such file")
    assert recs[9]["error"].startswith("fetch: unsupported URL scheme")
    assert doc["errors"] == 6
    assert doc["kernel"] == ("pillow" if kernel == "pillow" or not FAST_DEPS else "fast")


class CountingServer(FaultyServer):
    """FaultyServer that also records the most connections open at once (urllib opens one per
    request, so this is the number of requests in flight) and when each request arrived.

    The connection gauge can overcount by one: the server sees a closed connection's end on its
    own thread, possibly after the client's next connection arrived. Arrival times have no such
    race: a response starts no sooner than ``latency_s`` after its request arrived, so a client
    that waits for each response sends no request sooner than that after the one before
    (:meth:`min_gap`)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.open_now = 0
        self.open_max = 0
        self.arrivals: list[float] = []
        self._gauge = threading.Lock()
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _count(self, path: str) -> int:
        with self._gauge:
            self.arrivals.append(time.monotonic())
        return super()._count(path)

    def min_gap(self) -> float:
        """The shortest time between two requests' arrivals (inf with fewer than two)."""
        t = sorted(self.arrivals)
        return min((b - a for a, b in zip(t, t[1:], strict=False)), default=float("inf"))

    def _opened(self, conn) -> None:  # type: ignore[no-untyped-def]
        with self._gauge:
            self.open_now += 1
            self.open_max = max(self.open_max, self.open_now)
        super()._opened(conn)

    def _closed(self, conn) -> None:  # type: ignore[no-untyped-def]
        with self._gauge:
            self.open_now -= 1
        super()._closed(conn)


def test_fetch_ahead_keeps_several_requests_in_flight(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "img", 6, sizes=[(200, 150)], seed=5)
    with CountingServer(tmp_path / "img", latency_s=0.3) as srv:
        urls = [srv.url(f.path.name) for f in files] * 3
        doc = _run(_scratch(tmp_path, urls), PHOTODEMO_FETCHERS="4", PHOTODEMO_WINDOW="8")
        assert srv.total() == len(urls)
        assert srv.open_max >= 3, srv.open_max  # several requests really overlapped
    assert doc["errors"] == 0
    assert 3 <= doc["fetch"]["peak_inflight"] <= 4  # never more than the fetcher threads
    for rec, f in zip(doc["records"], files * 3, strict=True):
        assert abs(rec["luminance"] - tutorial(f.path)) < 1e-9


def test_local_rows_are_read_when_due_and_remote_ones_are_fetched_ahead(tmp_path: Path
                                                                         ) -> None:
    files = write_corpus(tmp_path / "img", 6, sizes=[(200, 150)], seed=7)
    local = [str(f.path) for f in files] + [f.path.as_uri() for f in files]
    threads: list[str] = []
    real_fetch = L.fetch

    def fetch(url: str, budget: object = None, index: int = 0) -> bytes:
        threads.append(threading.current_thread().name)
        return real_fetch(url, budget, index)

    L.fetch = fetch
    try:
        records, _ = L.measure_rows([{"row": i + 1, "url": u, "year": 1900}
                                     for i, u in enumerate(local)])
    finally:
        L.fetch = real_fetch
    assert not any("error" in r for r in records) and len(records) == 12
    assert set(threads) == {threading.main_thread().name}  # read when due, on the main thread
    with CountingServer(tmp_path / "img", latency_s=0.3) as srv:
        mixed = [x for f in files for x in (srv.url(f.path.name), str(f.path))]
        doc = _run(_scratch(tmp_path / "b", mixed), PHOTODEMO_FETCHERS="4",
                   PHOTODEMO_WINDOW="8")
        assert srv.total() == len(files) and srv.open_max >= 3  # the remote ones overlapped
    assert doc["errors"] == 0
    for rec, f in zip(doc["records"], [f for f in files for _ in (0, 1)], strict=True):
        assert abs(rec["luminance"] - tutorial(f.path)) < 1e-9


def test_sequential_mode_has_one_request_at_a_time(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "img", 3, sizes=[(120, 90)], seed=6)
    with CountingServer(tmp_path / "img", latency_s=0.05) as srv:
        doc = _run(_scratch(tmp_path, [srv.url(f.path.name) for f in files]),
                   PHOTODEMO_WINDOW="0")
        # each request came after the response to the one before began (fetch-ahead sends the
        # next ones at once, well within the latency)
        assert len(srv.arrivals) == 3 and srv.min_gap() >= 0.05 * 0.9, srv.arrivals
    assert doc["errors"] == 0 and doc["fetch"]["peak_inflight"] == 1


def test_fetch_ahead_requests_arrive_within_one_latency(tmp_path: Path) -> None:
    """The counterpart of the sequential check: with fetch-ahead the arrival gap is short."""
    files = write_corpus(tmp_path / "img", 3, sizes=[(120, 90)], seed=6)
    with CountingServer(tmp_path / "img", latency_s=0.3) as srv:
        _run(_scratch(tmp_path, [srv.url(f.path.name) for f in files]),
             PHOTODEMO_WINDOW="4", PHOTODEMO_FETCHERS="4")
        assert len(srv.arrivals) == 3 and srv.min_gap() < 0.3 * 0.9, srv.arrivals


def test_memory_stays_within_budget_plus_one_image(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "img", 8, sizes=[(640, 480)], seed=8)
    biggest = max(f.path.stat().st_size for f in files)
    budget = 2 * biggest
    with FaultyServer(tmp_path / "img", latency_s=0.05) as srv:
        urls = [srv.url(f.path.name) for f in files] * 2
        doc = _run(_scratch(tmp_path, urls), PHOTODEMO_FETCHERS="6", PHOTODEMO_WINDOW="12",
                   PHOTODEMO_BUDGET=str(budget))
    assert doc["errors"] == 0
    # received in 64 KiB blocks: the one image the loop waits for may come on top of the budget
    assert doc["fetch"]["peak_bytes"] <= budget + biggest + 2 * L.BLOCK
    assert doc["fetch"]["peak_bytes"] >= biggest  # it did hold images


def test_budget_blocks_later_rows_but_never_the_awaited_one() -> None:
    b = L.Budget(100)
    b.acquire(80, index=3)  # nothing held: always allowed
    done = threading.Event()

    def later() -> None:
        b.acquire(50, index=4)
        done.set()

    t = threading.Thread(target=later, daemon=True)
    t.start()
    assert not done.wait(0.3)  # row 4 must wait: 80 + 50 > 100
    b.acquire(50, index=0)  # the awaited row (head 0) is never blocked
    assert b.used == 130
    b.release(80)
    b.release(50)
    assert done.wait(10)
    t.join(10)
    assert b.used == 50 and b.peak == 130


@pytest.mark.skipif(not FAST_DEPS, reason="fast kernel needs numpy, simplejpeg, opencv")
def test_a_sum_that_is_not_whole_falls_back_to_pillow(corpus: list,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = L.FastKernel()
    real = kernel.cv2

    class HalfOff:
        """OpenCV, except that norms come back half a unit off (as a precision bug would)."""

        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def norm(self, *args: object) -> float:
            return real.norm(*args) + 0.5

    kernel.cv2 = HalfOff()
    monkeypatch.setattr(L, "_FAST", kernel)
    f = next(f for f in corpus if f.variant == "rgb")
    with pytest.raises(ArithmeticError):
        kernel.luminance(f.path.read_bytes())
    assert abs(L.luminance(f.path) - tutorial(f.path)) < 1e-9  # Pillow answered
