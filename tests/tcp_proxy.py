"""A TCP proxy the test controls, to cut a real server off and bring it back.

``cut()`` closes every connection through the proxy and closes each new one at once (the client
sees its connection reset or closed, as when a server or the network goes away); ``restore()``
forwards again. The server behind it never knows. ``received`` counts the bytes the server sent
back through it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class TCPProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` (host, port) until told otherwise."""

    upstream: tuple[str, int]
    port: int = 0
    accepted: int = 0
    received: int = 0
    """Bytes forwarded from the server to clients."""
    _cut: bool = False
    _listener: socket.socket = field(init=False)
    _live: set[socket.socket] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _closed: bool = False

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Drop every connection now, and every new one as it comes."""
        with self._lock:
            self._cut = True
            live, self._live = self._live, set()
        for sock in live:
            _close(sock)

    def restore(self) -> None:
        """Forward again."""
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        _close(self._listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            with self._lock:
                cut = self._cut
            if cut:
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._live.update((client, server))
            for a, b, back in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, back), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, back: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                if back:
                    with self._lock:
                        self.received += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._live.discard(sock)
                _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
