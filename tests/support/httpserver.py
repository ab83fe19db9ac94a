"""A real, deliberately misbehaving HTTP server for tests (standard library only).

:class:`FaultyServer` serves one folder on 127.0.0.1 (an ephemeral port, never another address)
from a ``ThreadingHTTPServer`` in a background thread. A path prefix picks a fault; the rest of
the path names the file:

==========================  ==================================================================
``/NAME``                   the file (200, Content-Length, a guessed Content-Type); 404 if absent
``/404/NAME``               404 Not Found
``/500/NAME``               500 Internal Server Error
``/flaky/N/NAME``           500 for the first N requests of this exact path, then the file
``/slow/NAME``              the file after ``slow_s`` seconds
``/stall/NAME``             reads the request, then sends nothing for ``stall_s`` seconds
                            (or until the client hangs up)
``/reset/NAME``             reads the request, then resets the TCP connection (SO_LINGER 0)
``/truncate/NAME``          announces the file's full Content-Length, sends half, closes
``/redirect-loop/NAME``     302 to itself, forever
``/huge/NAME``              200 with Content-Length ``huge_bytes``; streams until the client goes
``/huge-nolength/NAME``     the same without Content-Length (the body ends when the server closes)
``/endless-chunked/NAME``   200 with ``Transfer-Encoding: chunked``; chunks of zeros until the
                            client goes (at most ``huge_bytes``)
``/interim/NAME``           an interim ``100 Continue`` response every ``trickle_s`` seconds,
                            never a final one (until ``stall_s``, the client goes or the server
                            closes); ``/interim-102/NAME`` the same with ``102 Processing``
``/early-hints/NAME``       ``103 Early Hints`` (with a Link header), then the file: a value
``/trickle/NAME``           200 with the file's Content-Length, then one byte of it every
                            ``trickle_s`` seconds (bounded by ``stall_s``)
``/redirect/NAME?to=URL``   302 to ``URL`` (any scheme: ``ftp://``, ``file://``, ...)
==========================  ==================================================================

Every endless fault stops after ``stall_s`` seconds or when the server closes, so a client
that never gives up cannot keep a test running. ``latency_s`` delays every response. Requests
are counted per path (without the query string) in a thread-safe way: :meth:`FaultyServer.count`.
Waits (latency, slow, stall) end early when the server closes, and :meth:`FaultyServer.close`
shuts down open connections, so closing is quick.
"""

from __future__ import annotations

import collections
import mimetypes
import socket
import struct
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK = 64 * 1024
FAULTS = ("404", "500", "flaky", "slow", "stall", "reset", "truncate", "redirect-loop", "huge",
          "huge-nolength", "endless-chunked", "interim", "interim-102", "early-hints", "trickle",
          "redirect")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs under a burst: 1 s client retransmits
    owner: FaultyServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Log a handler's exception (a client hanging up mid-response) instead of printing."""
        import traceback

        self.owner._log.append("handler error: " + traceback.format_exc(limit=2))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 60  # a client that connects and never sends a request frees its thread eventually
    disable_nagle_algorithm = True

    # ----------------------------------------------------------------- plumbing
    def log_message(self, format: str, *args: object) -> None:
        self.server.owner._log.append(format % args)

    def setup(self) -> None:
        super().setup()
        self.server.owner._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._closed(self.connection)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    # ----------------------------------------------------------------- routing
    def _dispatch(self, head: bool) -> None:
        owner = self.server.owner
        split = urlsplit(self.path)
        path = split.path
        seen = owner._count(path)
        if owner.latency_s and owner._closing.wait(owner.latency_s):
            return self._reset()
        parts = path.lstrip("/").split("/")
        fault = parts[0] if len(parts) > 1 and parts[0] in FAULTS else ""
        rest = parts[1:] if fault else parts
        if fault == "404":
            return self._error(HTTPStatus.NOT_FOUND, head)
        if fault == "500":
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, head)
        if fault == "flaky":
            if not rest or not rest[0].isdigit():
                return self._error(HTTPStatus.BAD_REQUEST, head, "use /flaky/N/NAME")
            if seen <= int(rest[0]):
                return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, head)
            rest = rest[1:]
        if fault == "slow" and owner._closing.wait(owner.slow_s):
            return self._reset()
        if fault == "stall":
            return self._stall()
        if fault == "reset":
            return self._reset()
        if fault == "redirect-loop":
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if fault == "redirect":
            target = parse_qs(split.query).get("to", [""])[0]
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if fault in ("huge", "huge-nolength"):
            return self._huge(path, head, with_length=fault == "huge")
        if fault == "endless-chunked":
            return self._endless_chunked(path, head)
        if fault in ("interim", "interim-102"):
            return self._interim(b"102 Processing" if fault == "interim-102" else b"100 Continue")
        if fault == "early-hints":
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            self.wfile.flush()
        if fault == "trickle":
            return self._trickle("/".join(rest), head)
        return self._file("/".join(rest), head, truncate=fault == "truncate")

    # ----------------------------------------------------------------- responses
    def _error(self, status: HTTPStatus, head: bool, detail: str = "") -> None:
        body = f"{status.value} {status.phrase} {detail}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _file(self, name: str, head: bool, truncate: bool) -> None:
        root = self.server.owner.root
        target = (root / unquote(name)).resolve()
        if not name or root not in target.parents or not target.is_file():
            return self._error(HTTPStatus.NOT_FOUND, head)
        data = target.read_bytes()
        self.send_response(HTTPStatus.OK)
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        if truncate:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head:
            self.wfile.write(data[: len(data) // 2] if truncate else data)
        return None

    def _huge(self, path: str, head: bool, with_length: bool) -> None:
        owner = self.server.owner
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "image/jpeg")
        if with_length:
            self.send_header("Content-Length", str(owner.huge_bytes))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if head:
            return
        block = b"\xff\xd8\xff\xe0" + bytes(CHUNK - 4)  # starts like a JPEG, then zeros
        sent = 0
        try:
            while sent < owner.huge_bytes and not owner._closing.is_set():
                piece = block[: min(CHUNK, owner.huge_bytes - sent)]
                self.wfile.write(piece)
                sent += len(piece)
                block = bytes(CHUNK)
        except OSError:  # the client hung up: that is the point
            pass
        finally:
            owner._add_sent(path, sent)

    def _endless_chunked(self, path: str, head: bool) -> None:
        owner = self.server.owner
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        if head:
            return
        block = b"\xff\xd8\xff\xe0" + bytes(CHUNK - 4)
        sent = 0
        deadline = time.monotonic() + owner.stall_s
        try:
            while (sent < owner.huge_bytes and not owner._closing.is_set()
                   and time.monotonic() < deadline):
                self.wfile.write(b"%x\r\n" % len(block) + block + b"\r\n")
                sent += len(block)
                block = bytes(CHUNK)
        except OSError:  # the client hung up: that is the point
            pass
        finally:
            owner._add_sent(path, sent)

    def _interim(self, line: bytes) -> None:
        """``100 Continue`` again and again: a client that skips interim responses waits for
        ever unless it has a total deadline."""
        owner = self.server.owner
        self.close_connection = True
        deadline = time.monotonic() + owner.stall_s
        try:
            while not owner._closing.is_set() and time.monotonic() < deadline:
                self.wfile.write(b"HTTP/1.1 " + line + b"\r\n\r\n")
                self.wfile.flush()
                if owner._closing.wait(owner.trickle_s):
                    return
        except OSError:
            return

    def _trickle(self, name: str, head: bool) -> None:
        """The file, announced in full, one byte every ``trickle_s`` seconds."""
        owner = self.server.owner
        root = owner.root
        target = (root / unquote(name)).resolve()
        if not name or root not in target.parents or not target.is_file():
            return self._error(HTTPStatus.NOT_FOUND, head)
        data = target.read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.close_connection = True
        if head:
            return
        deadline = time.monotonic() + owner.stall_s
        try:
            for i in range(len(data)):
                if owner._closing.is_set() or time.monotonic() >= deadline:
                    return
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                if owner._closing.wait(owner.trickle_s):
                    return
        except OSError:
            return

    def _stall(self) -> None:
        """Send nothing until ``stall_s`` passes, the client hangs up, or the server closes."""
        owner = self.server.owner
        self.close_connection = True
        deadline = time.monotonic() + owner.stall_s
        self.connection.settimeout(0.05)
        while not owner._closing.is_set() and time.monotonic() < deadline:
            try:
                if not self.connection.recv(4096):  # EOF: the client gave up
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send RST instead of FIN."""
        self.close_connection = True
        conn = self.connection
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # rfile (a makefile) holds a reference to the socket: close it first so that conn.close()
        # really closes the descriptor now. wfile stays open: it only wraps the socket, and the
        # request loop flushes it after this handler returns.
        try:
            self.rfile.close()
        except OSError:
            pass
        conn.close()


class FaultyServer:
    """A threaded HTTP server on 127.0.0.1 serving ``root`` with the faults in the module doc.

    Use as a context manager or call :meth:`close`. ``base_url`` ends with ``/``.
    """

    def __init__(self, root: str | Path, *, latency_s: float = 0.0, slow_s: float = 1.0,
                 stall_s: float = 30.0, huge_bytes: int = 200 * 1024 * 1024,
                 trickle_s: float = 0.05) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"cannot serve {self.root}: not a folder")
        self.latency_s, self.slow_s, self.stall_s = latency_s, slow_s, stall_s
        self.huge_bytes = huge_bytes
        self.trickle_s = trickle_s
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._sent: collections.Counter[str] = collections.Counter()
        self._conns: set[socket.socket] = set()
        self._idle = threading.Condition(self._lock)
        self._closing = threading.Event()
        self._log: collections.deque[str] = collections.deque(maxlen=1000)
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self.host, self.port = "127.0.0.1", int(self._httpd.server_address[1])
        self.base_url = f"http://{self.host}:{self.port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"faulty-http-{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------- URLs and counters
    def url(self, name: str, fault: str = "") -> str:
        """URL of ``name`` (a path under root), optionally behind ``fault`` (e.g. "flaky/2")."""
        prefix = fault.strip("/") + "/" if fault else ""
        return self.base_url + prefix + quote(name.lstrip("/"))

    def redirect_url(self, target: str, name: str = "r") -> str:
        """A URL whose response is ``302 Location: target``."""
        return self.url(name, "redirect") + "?to=" + quote(target, safe="")

    def count(self, path: str) -> int:
        """How many requests reached ``path`` (e.g. "/flaky/2/a.jpg"; a full URL also works)."""
        key = "/" + urlsplit(path).path.lstrip("/")
        with self._lock:
            return self._counts[key]

    def counts(self) -> dict[str, int]:
        """A snapshot of all request counts, by path."""
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def sent_bytes(self, path: str) -> int:
        """Body bytes a finished ``/huge`` response wrote to ``path`` before it stopped."""
        with self._lock:
            return self._sent["/" + urlsplit(path).path.lstrip("/")]

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._sent.clear()

    @property
    def log(self) -> list[str]:
        """The server's access log lines (the last 1000)."""
        return list(self._log)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no connection is open; returns False if some still are after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._conns:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    # ------------------------------------------------------------- handler callbacks
    def _count(self, path: str) -> int:
        with self._lock:
            self._counts[path] += 1
            return self._counts[path]

    def _add_sent(self, path: str, n: int) -> None:
        with self._lock:
            self._sent[path] += n

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._idle:
            self._conns.discard(conn)
            self._idle.notify_all()

    # ------------------------------------------------------------- shutdown
    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, end waits, shut open connections, and wait (bounded) for handlers."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.wait_idle(timeout)
        self._thread.join(timeout)

    def __enter__(self) -> FaultyServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
