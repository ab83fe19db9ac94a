"""HTTP faults through a real local server that misbehaves on purpose (tests/support/httpserver.py),
end to end through `condorkit run` with the photodemo program: each row ends as a value or a
recorded error, and retries are bounded (checked with the server's own request counts)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from support.httpserver import FaultyServer
from support.robust import (
    aggregate_job,
    assert_nothing_lost,
    assert_report_complete,
    make_job,
    run_job,
    tally,
)

from condorkit.demo import write_corpus

RETRIES = 2  # PHOTODEMO_RETRIES: extra attempts after a transient failure
ATTEMPTS = RETRIES + 1
MAX_BYTES = 1_000_000


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTODEMO_TIMEOUT", "0.5")
    monkeypatch.setenv("PHOTODEMO_RETRIES", str(RETRIES))
    monkeypatch.setenv("PHOTODEMO_MAX_BYTES", str(MAX_BYTES))


def test_every_http_fault_ends_as_a_value_or_a_bounded_error(
        tmp_path: Path, env: None, http_server: Callable[..., FaultyServer],
        capsys: pytest.CaptureFixture[str]) -> None:
    files = write_corpus(tmp_path / "www", 17, sizes=((64, 48),), seed=11, variants=("rgb",))
    (tmp_path / "www" / "error-page.jpg").write_text("<html>Service unavailable</html>\n")
    srv = http_server(tmp_path / "www", slow_s=0.2, stall_s=30, huge_bytes=200 * 1024 * 1024)
    name = [f.path.name for f in files]
    port = closed_port()
    # (url, expected outcome, requests the server must see for that path, error text)
    cases: list[tuple[str, str, int | None, str]] = [
        (srv.url(name[0]), "value", 2, ""),  # requested once for this row, once for row 17
        (srv.url(name[1], "404"), "error", 1, "fetch: HTTP 404"),
        (srv.url(name[2], "500"), "error", ATTEMPTS, f"HTTP 500 Internal Server Error after "
                                                     f"{ATTEMPTS} attempt(s)"),
        (srv.url(name[3], "flaky/1"), "value", 2, ""),
        (srv.url(name[4], f"flaky/{RETRIES}"), "value", ATTEMPTS, ""),  # the last retry works
        (srv.url(name[5], f"flaky/{ATTEMPTS}"), "error", ATTEMPTS, "after 3 attempt(s)"),
        (srv.url(name[6], "stall"), "error", ATTEMPTS, "timed out after 3 attempt(s)"),
        (srv.url(name[7], "reset"), "error", ATTEMPTS, "reset"),
        (srv.url(name[8], "redirect-loop"), "error", None, "fetch: HTTP 302"),
        (srv.url(name[9], "huge"), "error", 1, f"larger than the {MAX_BYTES}-byte limit"),
        (srv.url(name[10], "huge-nolength"), "error", 1, f"larger than the {MAX_BYTES}-byte"),
        (srv.url(name[11], "truncate"), "error", ATTEMPTS, f"after {ATTEMPTS} attempt(s)"),
        (srv.url(name[12], "slow"), "value", 1, ""),
        (srv.url("error-page.jpg"), "error", 1, "decode: UnidentifiedImageError"),
        (f"http://127.0.0.1:{port}/{name[13]}", "error", None, "refused"),
        (srv.url(name[14]) + "?size=large&x=1#frag", "value", 1, ""),
        (srv.url(name[0]), "value", None, ""),  # same URL again: its own row, own result
        (srv.url(name[15]).replace("http://", "https://"), "error", None, f"after {ATTEMPTS}"),
        (srv.url("no-such-file.jpg"), "error", 1, "fetch: HTTP 404"),
    ]
    tally("input", len(cases), "HTTP rows")
    tally("fault", len(cases) - 3, "HTTP faults (all rows but the plain, query and repeat ones)")
    expected = [(u, 1900 + i) for i, (u, *_) in enumerate(cases)]
    job = make_job(tmp_path / "job", [f"{u} {y}" for u, y in expected], chunk=5)
    res = run_job(capsys, job, "--no-speculate")
    assert res.code == 0, res.err
    recs = assert_nothing_lost(job, expected)
    for n, (url, want, requests, text) in enumerate(cases, start=1):
        rec = recs[n]
        assert ("luminance" if want == "value" else "error") in rec, (url, rec)
        assert text in rec.get("error", ""), (url, rec)
        if requests is not None:
            assert srv.count(url) == requests, (url, srv.count(url))
    # a redirect loop is cut short, and a huge body is not downloaded
    assert 1 < srv.count(srv.url(name[8], "redirect-loop")) <= 11
    assert srv.wait_idle(10)
    for fault in ("huge", "huge-nolength"):
        assert srv.sent_bytes(srv.url(name[9 if fault == "huge" else 10], fault)) < 20 * MAX_BYTES
    assert recs[1]["luminance"] == recs[17]["luminance"]
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 0, agg.err
    errors = sum(1 for c in cases if c[1] == "error")
    assert_report_complete(report, len(cases), errors=errors)


def test_latency_on_every_response_still_gives_every_value(
        tmp_path: Path, env: None, http_server: Callable[..., FaultyServer],
        capsys: pytest.CaptureFixture[str]) -> None:
    files = write_corpus(tmp_path / "www", 6, sizes=((48, 32),), seed=12, variants=("rgb", "gray"))
    srv = http_server(tmp_path / "www", latency_s=0.2)
    expected = [(srv.url(f.path.name), f.year) for f in files]
    tally("input", len(expected), "HTTP rows with latency")
    tally("fault", 1, "latency on every response")
    job = make_job(tmp_path / "job", [f"{u} {y}" for u, y in expected], chunk=3)
    assert run_job(capsys, job, "--no-speculate").code == 0
    recs = assert_nothing_lost(job, expected)
    assert all("luminance" in r for r in recs.values())
    assert all(srv.count(u) == 1 for u, _ in expected)


def test_server_that_dies_mid_run_gives_errors_not_gaps(
        tmp_path: Path, env: None, http_server: Callable[..., FaultyServer],
        capsys: pytest.CaptureFixture[str]) -> None:
    """The server is gone before the job starts (e.g. the archive went down): every row gets
    the connection error as its reason and the run still completes."""
    files = write_corpus(tmp_path / "www", 4, sizes=((48, 32),), seed=13, variants=("rgb",))
    srv = http_server(tmp_path / "www")
    expected = [(srv.url(f.path.name), f.year) for f in files]
    srv.close()
    tally("input", len(expected), "rows for a dead server")
    tally("fault", 1, "server down")
    job = make_job(tmp_path / "job", [f"{u} {y}" for u, y in expected], chunk=2)
    assert run_job(capsys, job, "--no-speculate").code == 0
    recs = assert_nothing_lost(job, expected)
    assert all("refused" in r["error"] and f"after {ATTEMPTS}" in r["error"]
               for r in recs.values())
    agg, report = aggregate_job(capsys, job)
    assert agg.code == 0
    assert_report_complete(report, 4, errors=4)
