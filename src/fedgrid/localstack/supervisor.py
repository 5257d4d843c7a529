"""Start, watch and stop the five services as child processes of one command."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import urlparse

from fedgrid import db
from fedgrid.config import Settings
from fedgrid.errors import Unavailable
from fedgrid.localstack.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    pick_port,
    postgres_reachable,
    redis_reachable,
)
from fedgrid.localstack.health import service_health

logger = logging.getLogger(__name__)

SERVICES = ("model-store", "cycle-manager", "aggregator", "gateway", "signaling")
_MODULES = {
    "model-store": "fedgrid_model_store",
    "cycle-manager": "fedgrid_cycle_manager",
    "aggregator": "fedgrid_aggregator",
    "gateway": "fedgrid_gateway",
    "signaling": "fedgrid_signaling",
}
STATE_FILE = "stack.json"


@dataclass
class StackInfo:
    """Where the running stack can be reached; written to var/stack.json."""

    gateway_url: str
    signaling_url: str
    model_store_address: str
    cycle_manager_address: str
    redis_url: str
    database_url: str
    admin_token_file: str
    embedded: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    settings_env: dict[str, str] = field(default_factory=dict)

    def admin_token(self) -> str:
        return Path(self.admin_token_file).read_text().strip()


def read_stack_info(var_dir: Path) -> StackInfo | None:
    """The info of the stack last started in var_dir, if any."""
    path = var_dir / STATE_FILE
    if not path.exists():
        return None
    return StackInfo(**json.loads(path.read_text()))


class LocalStack:
    """The grid on this machine: backends found or embedded, then five services."""

    def __init__(
        self, settings: Settings, environ: dict[str, str] | None = None
    ) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.var_dir = settings.var_dir.resolve()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.embedded: list[EmbeddedRedis | EmbeddedPostgres] = []
        self.info: StackInfo | None = None

    # -- start ------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> StackInfo:
        """Find or start the backends, migrate, start services, wait until healthy."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        running = read_stack_info(self.var_dir)
        if running is not None and any(_alive(pid) for pid in running.pids.values()):
            raise Unavailable(
                f"a stack is already running from {self.var_dir} (gateway "
                f"{running.gateway_url}); stop it first or set another FEDGRID_VAR_DIR"
            )
        try:
            settings = self._backends()
            db.migrate(settings.database_url)
            env = self._child_env(settings)
            for name in SERVICES:
                self._spawn(name, env)
            self.info = self._describe(settings, env)
            self._write_state()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self.info

    def _backends(self) -> Settings:
        settings = self.settings
        names: list[str] = []
        if not redis_reachable(settings.redis_url):
            port = pick_port(urlparse(settings.redis_url).port or 6379)
            server = EmbeddedRedis(self.var_dir / "redis", port)
            self.embedded.append(server)
            url = server.start()
            logger.warning(
                "[stack] no Redis at %s; started an embedded one at %s",
                settings.redis_url,
                url,
            )
            broker = url if settings.broker_url == settings.redis_url else None
            settings = replace(
                settings, redis_url=url, broker_url=broker or settings.broker_url
            )
            names.append("redis")
        if not postgres_reachable(settings.database_url):
            port = pick_port(urlparse(settings.database_url).port or 5432)
            pg = EmbeddedPostgres(self.var_dir / "postgres", port)
            self.embedded.append(pg)
            url = pg.start()
            logger.warning(
                "[stack] no PostgreSQL at %s; started an embedded one at %s",
                db.redact(settings.database_url),
                url,
            )
            settings = replace(settings, database_url=url)
            names.append("postgres")
        self._embedded_names = names
        return settings

    def _child_env(self, settings: Settings) -> dict[str, str]:
        env = {k: v for k, v in self.environ.items() if not k.startswith("FEDGRID_")}
        token_file = self.var_dir / "admin-token"
        admin_token = settings.admin_token
        if not admin_token:
            if not token_file.exists():
                token_file.write_text(secrets.token_urlsafe(32) + "\n")
                token_file.chmod(0o600)
            admin_token = token_file.read_text().strip()
        else:
            token_file.write_text(admin_token + "\n")
            token_file.chmod(0o600)
        values = asdict(settings)
        values["admin_token"] = admin_token
        values["session_secret"] = settings.session_secret or secrets.token_urlsafe(32)
        objects = settings.object_store_path or settings.var_dir / "objects"
        values["object_store_path"] = str(objects.resolve())
        values["var_dir"] = str(self.var_dir)
        for key, value in values.items():
            if value is None or value == "":
                continue
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[f"FEDGRID_{key.upper()}"] = text
        return env

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        logs = self.var_dir / "logs"
        logs.mkdir(exist_ok=True)
        log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        proc = subprocess.Popen(
            [sys.executable, "-m", _MODULES[name]],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.children[name] = proc
        logger.info("[stack] started service=%s pid=%s", name, proc.pid)

    def _describe(self, settings: Settings, env: dict[str, str]) -> StackInfo:
        host = settings.host
        return StackInfo(
            gateway_url=f"http://{host}:{settings.gateway_port}",
            signaling_url=f"ws://{host}:{settings.signaling_port}",
            model_store_address=settings.model_store_address,
            cycle_manager_address=settings.cycle_manager_address,
            redis_url=settings.redis_url,
            database_url=settings.database_url,
            admin_token_file=str(self.var_dir / "admin-token"),
            embedded=list(self._embedded_names),
            pids={name: proc.pid for name, proc in self.children.items()},
            settings_env={
                k: v
                for k, v in env.items()
                if k.startswith("FEDGRID_") and k not in _SECRET_VARIABLES
            },
        )

    def _write_state(self) -> None:
        assert self.info is not None
        path = self.var_dir / STATE_FILE
        path.write_text(json.dumps(asdict(self.info), indent=2))
        path.chmod(0o600)

    # -- watch ------------------------------------------------------------

    def health(self) -> dict[str, str]:
        """Each service's health word (SERVING, ok, or why not)."""
        assert self.info is not None
        report = service_health(self.info)
        for name, proc in self.children.items():
            if proc.poll() is not None:
                report[name] = f"EXITED({proc.returncode})"
        return report

    def wait_healthy(self, timeout: float) -> None:
        """Block until every service is healthy; fail fast when one exits."""
        deadline = time.monotonic() + timeout
        report: dict[str, str] = {}
        while time.monotonic() < deadline:
            report = self.health()
            exited = {k: v for k, v in report.items() if v.startswith("EXITED")}
            if exited:
                raise Unavailable(
                    f"services exited while starting: {exited}; see "
                    f"{self.var_dir / 'logs'}"
                )
            if all(v in ("SERVING", "ok") for v in report.values()):
                return
            time.sleep(0.2)
        raise Unavailable(f"services not healthy after {timeout}s: {report}")

    def exited(self) -> dict[str, int]:
        """Services that have stopped, with their exit codes."""
        return {
            name: proc.returncode
            for name, proc in self.children.items()
            if proc.poll() is not None
        }

    # -- stop -------------------------------------------------------------

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every service, then the embedded backends; SIGKILL stragglers."""
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for name, proc in self.children.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("[stack] killing service=%s pid=%s", name, proc.pid)
                proc.kill()
                proc.wait(timeout=5)
        self.children.clear()
        for server in reversed(self.embedded):
            server.stop()
        self.embedded.clear()
        if self.info is not None:
            (self.var_dir / STATE_FILE).unlink(missing_ok=True)
            self.info = None


def _alive(pid: int) -> bool:
    """Whether a process with this id runs (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


_SECRET_VARIABLES = {
    "FEDGRID_ADMIN_TOKEN",
    "FEDGRID_SESSION_SECRET",
    "FEDGRID_S3_SECRET_KEY",
}
