"""Cutting off body reads on a server socket once they run past their due time."""

from __future__ import annotations

import socket
import threading
import time

CHECK_SECONDS = 0.1


class Watchdog:
    """One thread per process that cuts off every overdue guarded read."""

    def __init__(self, interval: float = CHECK_SECONDS) -> None:
        self._interval = interval
        self._watched: dict[SocketGuard, float] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, guard: SocketGuard, due: float) -> None:
        """Cut guard's read off unless it is forgotten before due."""
        with self._lock:
            self._watched[guard] = due
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fedgrid-read-watchdog", daemon=True
                )
                self._thread.start()

    def forget(self, guard: SocketGuard) -> None:
        """The read finished (or failed) in time."""
        with self._lock:
            self._watched.pop(guard, None)

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            now = time.monotonic()
            with self._lock:
                overdue = [g for g, due in self._watched.items() if due <= now]
                for guard in overdue:
                    del self._watched[guard]
            for guard in overdue:
                guard.cut()


WATCHDOG = Watchdog()


class SocketGuard:
    """A ReadGuard over the server's socket of one request.

    Each read waits at most until its due time on the socket (so a silent
    client times out by itself); a trickling client, whose every recv returns
    a little, is cut off by the watchdog shutting the socket's read side.
    """

    def __init__(self, sock: socket.socket, watchdog: Watchdog = WATCHDOG) -> None:
        self._sock = sock
        self._watchdog = watchdog
        self._cut = threading.Event()

    def arm(self, due: float) -> None:
        self._sock.settimeout(max(0.001, due - time.monotonic()))
        self._watchdog.watch(self, due)

    def disarm(self) -> bool:
        self._watchdog.forget(self)
        return self._cut.is_set()

    def release(self) -> None:
        try:
            self._sock.settimeout(None)
        except OSError:  # the connection is gone; nothing to release
            return

    def cut(self) -> None:
        """Make the blocked read return at once, with what it has."""
        self._cut.set()
        try:
            self._sock.shutdown(socket.SHUT_RD)
        except OSError:  # already closed by the client
            return
