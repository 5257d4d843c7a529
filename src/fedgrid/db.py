"""PostgreSQL connections and the schema migrations every service shares."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from urllib.parse import urlparse, urlunparse

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from fedgrid.errors import SchemaError, StorageError

logger = logging.getLogger(__name__)

# Any constant works as long as every fedgrid process agrees on it.
_MIGRATION_LOCK = 0x66656467  # "fedg"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

Connection = psycopg2.extensions.connection


@dataclass(frozen=True)
class Migration:
    """One plain SQL file, applied once, in order of its number."""

    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migrations shipped in `fedgrid/migrations`, ordered by version."""
    found: list[Migration] = []
    for entry in resources.files("fedgrid.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise SchemaError(f"two migrations share a version number: {versions}")
    return found


def latest_version() -> int:
    """The schema version this code expects."""
    shipped = migrations()
    return shipped[-1].version if shipped else 0


def connect(database_url: str) -> Connection:
    """Open a connection, translating failures into StorageError."""
    try:
        return psycopg2.connect(database_url, connect_timeout=5)
    except psycopg2.Error as exc:
        raise StorageError(
            f"cannot connect to PostgreSQL at {redact(database_url)}: {exc}".strip()
        ) from exc


def redact(database_url: str) -> str:
    """The URL without its password, for messages and logs."""
    parsed = urlparse(database_url)
    if parsed.password is None:
        return database_url
    netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
    return urlunparse(parsed._replace(netloc=netloc))


def ensure_database(database_url: str) -> None:
    """Create the database named in the URL when it does not exist yet."""
    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    if not name:
        raise StorageError(f"{redact(database_url)} names no database")
    admin_url = urlunparse(parsed._replace(path="/postgres"))
    conn = connect(admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                try:
                    cur.execute(
                        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                    )
                    logger.info("[db.ensure_database] created database=%s", name)
                except psycopg2.errors.DuplicateDatabase:
                    pass  # created by a replica starting at the same moment
    finally:
        conn.close()


def migrate(database_url: str) -> list[str]:
    """Apply pending migrations under an advisory lock; return what was applied."""
    ensure_database(database_url)
    applied: list[str] = []
    conn = connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.commit()
            cur.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cur.fetchall()}
            for migration in migrations():
                if migration.version in done:
                    continue
                cur.execute(migration.sql)
                cur.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                conn.commit()
                applied.append(migration.name)
                logger.info("[db.migrate] applied migration=%s", migration.name)
            cur.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
            conn.commit()
    except psycopg2.Error as exc:
        conn.rollback()
        raise StorageError(f"migration failed: {exc}".strip()) from exc
    finally:
        conn.close()
    return applied


def schema_version(conn: Connection) -> int:
    """The highest applied migration, 0 on an empty database."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('schema_migrations')")
        row = cur.fetchone()
        if row is None or row[0] is None:
            return 0
        cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
        result = cur.fetchone()
    conn.rollback()
    return int(result[0]) if result else 0


def check_schema(database_url: str) -> None:
    """Refuse to run on a schema older or newer than this code."""
    conn = connect(database_url)
    try:
        found = schema_version(conn)
    finally:
        conn.close()
    expected = latest_version()
    if found < expected:
        raise SchemaError(
            f"database schema is at version {found}, this code needs {expected}: "
            "run `fedgrid db migrate`"
        )
    if found > expected:
        raise SchemaError(
            f"database schema is at version {found}, newer than this code "
            f"({expected}): upgrade fedgrid"
        )


@contextmanager
def transaction(conn: Connection) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor whose work commits on success and rolls back on any error."""
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


class Pool:
    """A small thread-safe connection pool for one service process."""

    def __init__(self, database_url: str, maxconn: int = 8) -> None:
        from psycopg2.pool import ThreadedConnectionPool

        try:
            self._pool = ThreadedConnectionPool(
                1, maxconn, database_url, connect_timeout=5
            )
        except psycopg2.Error as exc:
            raise StorageError(
                f"cannot connect to PostgreSQL at {redact(database_url)}: {exc}".strip()
            ) from exc

    @contextmanager
    def cursor(self) -> Iterator[psycopg2.extensions.cursor]:
        """A cursor in its own transaction: commit on success, roll back on error."""
        conn = self._pool.getconn()
        broken = False
        try:
            with transaction(conn) as cur:
                yield cur
        except psycopg2.OperationalError:
            broken = True
            raise
        finally:
            self._pool.putconn(conn, close=broken or bool(conn.closed))

    def close(self) -> None:
        """Close every connection."""
        self._pool.closeall()
