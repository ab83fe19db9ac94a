"""Tests for the misbehaving test HTTP server (tests/support/httpserver.py), hit with urllib."""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from support.httpserver import FaultyServer

Start = Callable[..., FaultyServer]
BODY = bytes(range(256)) * 40  # 10 KiB


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a.jpg").write_bytes(BODY)
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "b c.txt").write_text("hello\n")
    return tmp_path


def get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data


def status_of(url: str, timeout: float = 10.0) -> int:
    with pytest.raises(urllib.error.HTTPError) as info:
        get(url, timeout)
    return info.value.code


def test_serves_files_and_counts(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    assert srv.base_url == f"http://127.0.0.1:{srv.port}/"
    with urllib.request.urlopen(srv.url("a.jpg"), timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert resp.headers["Content-Length"] == str(len(BODY))
        assert resp.read() == BODY
    assert get(srv.url("sub dir/b c.txt")) == b"hello\n"
    get(srv.url("a.jpg") + "?v=2")
    assert srv.count("/a.jpg") == 2  # the query string is not part of the key
    assert srv.count(srv.url("sub dir/b c.txt")) == 1
    assert srv.total() == 3


def test_head_request(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    req = urllib.request.Request(srv.url("a.jpg"), method="HEAD")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Length"] == str(len(BODY))
        assert resp.read() == b""


def test_missing_files_and_escapes_are_404(http_server: Start, root: Path) -> None:
    (root.parent / "secret.txt").write_text("no")
    srv = http_server(root)
    assert status_of(srv.url("nope.jpg")) == 404
    assert status_of(srv.url("sub dir")) == 404  # folders are not listed
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("GET", "/../secret.txt")  # sent as is, not normalised by the client
    assert conn.getresponse().status == 404
    conn.close()


@pytest.mark.parametrize("code", [404, 500])
def test_error_prefixes(http_server: Start, root: Path, code: int) -> None:
    srv = http_server(root)
    assert status_of(srv.url("a.jpg", str(code))) == code
    assert srv.count(f"/{code}/a.jpg") == 1


def test_flaky_fails_n_times_then_serves(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    url = srv.url("a.jpg", "flaky/2")
    assert status_of(url) == 500
    assert status_of(url) == 500
    assert get(url) == BODY
    assert get(url) == BODY
    assert srv.count("/flaky/2/a.jpg") == 4
    assert status_of(srv.url("a.jpg", "flaky/1")) == 500  # counted per path


def test_stall_times_out(http_server: Start, root: Path) -> None:
    srv = http_server(root, stall_s=30)
    with pytest.raises((TimeoutError, urllib.error.URLError)) as info:
        get(srv.url("a.jpg", "stall"), timeout=0.3)
    err = info.value
    assert isinstance(getattr(err, "reason", err), TimeoutError)
    assert srv.count("/stall/a.jpg") == 1


def test_reset_is_a_connection_error(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    with pytest.raises((ConnectionError, urllib.error.URLError)) as info:
        get(srv.url("a.jpg", "reset"))
    err = info.value
    assert isinstance(getattr(err, "reason", err), ConnectionError)
    assert not isinstance(err, urllib.error.HTTPError)


def test_redirect_loop_is_an_error(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    assert status_of(srv.url("a.jpg", "redirect-loop")) == 302
    assert srv.count("/redirect-loop/a.jpg") >= 2


def test_truncate_sends_half_the_announced_body(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    with pytest.raises(http.client.IncompleteRead) as info:
        get(srv.url("a.jpg", "truncate"))
    assert len(info.value.partial) == len(BODY) // 2


@pytest.mark.parametrize("fault", ["huge", "huge-nolength"])
def test_huge_stops_when_the_client_leaves(http_server: Start, root: Path, fault: str) -> None:
    srv = http_server(root)  # default: 200 MB
    with urllib.request.urlopen(srv.url("a.jpg", fault), timeout=10) as resp:
        if fault == "huge":
            assert resp.headers["Content-Length"] == str(200 * 1024 * 1024)
        else:
            assert resp.headers["Content-Length"] is None
        prefix = resp.read(1 << 20)
    assert len(prefix) == 1 << 20 and prefix.startswith(b"\xff\xd8")
    assert srv.wait_idle(10)
    sent = srv.sent_bytes(f"/{fault}/a.jpg")
    assert (1 << 20) <= sent < srv.huge_bytes // 2


def test_small_huge_body_is_complete(http_server: Start, root: Path) -> None:
    srv = http_server(root, huge_bytes=300_000)
    assert len(get(srv.url("x", "huge"))) == 300_000
    assert len(get(srv.url("x", "huge-nolength"))) == 300_000


def test_slow_and_latency_delay_the_response(http_server: Start, root: Path) -> None:
    slow = http_server(root, slow_s=0.4)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(slow.url("a.jpg", "slow"), timeout=0.05)
    assert get(slow.url("a.jpg")) == BODY  # only /slow/ is slow here
    lagged = http_server(root, latency_s=0.4)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        get(lagged.url("a.jpg"), timeout=0.05)
    assert get(lagged.url("a.jpg")) == BODY


def test_counts_are_thread_safe(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            for _ in range(5):
                assert get(srv.url("a.jpg")) == BODY
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert srv.count("/a.jpg") == 40


def test_binds_loopback_and_closes_cleanly(root: Path) -> None:
    with FaultyServer(root, stall_s=60) as srv:
        assert srv._httpd.socket.getsockname()[0] == "127.0.0.1"
        stuck = socket.create_connection((srv.host, srv.port), timeout=10)
        stuck.sendall(b"GET /stall/a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        while srv.count("/stall/a.jpg") == 0:  # wait until the handler is stalling
            threading.Event().wait(0.01)
    assert srv.wait_idle(0)  # close() ended the 60 s stall and its handler
    assert stuck.recv(100) == b""  # the stalled client sees the connection end, no response
    stuck.close()
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=2)
    srv.close()  # idempotent


def test_refuses_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        FaultyServer(tmp_path / "nope")


def test_interim_sends_100_continue_until_the_client_goes(http_server: Start, root: Path) -> None:
    srv = http_server(root, stall_s=30, trickle_s=0.01)
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"GET /interim/a.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"100 Continue") < 5:
            data += s.recv(4096)
    assert b"200" not in data and data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")


def test_trickle_sends_the_whole_file_one_byte_at_a_time(http_server: Start, root: Path) -> None:
    (root / "small.txt").write_bytes(b"0123456789")
    srv = http_server(root, trickle_s=0.01)
    with urllib.request.urlopen(srv.url("small.txt", "trickle"), timeout=10) as resp:
        parts = [resp.read(1) for _ in range(10)]
    assert b"".join(parts) == b"0123456789"


def test_endless_chunked_body_is_bounded_by_huge_bytes(http_server: Start, root: Path) -> None:
    srv = http_server(root, huge_bytes=5 * 64 * 1024)
    with urllib.request.urlopen(srv.url("a.jpg", "endless-chunked"), timeout=10) as resp:
        assert resp.headers["Transfer-Encoding"] == "chunked"
        with pytest.raises(http.client.IncompleteRead) as info:  # it never ends properly
            resp.read()
    assert len(info.value.partial) == 5 * 64 * 1024


def test_redirect_to_any_url(http_server: Start, root: Path) -> None:
    srv = http_server(root)
    assert get(srv.redirect_url(srv.url("a.jpg"))) == BODY
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("GET", srv.redirect_url("ftp://example.invalid/x").split(str(srv.port), 1)[1])
    resp = conn.getresponse()
    assert resp.status == 302 and resp.getheader("Location") == "ftp://example.invalid/x"
    conn.close()
    assert srv.count("/redirect/r") == 2
