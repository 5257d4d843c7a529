"""Migrations: applied in order, once, under a lock; old schemas are refused."""

from __future__ import annotations

import threading

import pytest

from fedgrid import db
from fedgrid.errors import SchemaError, StorageError


def test_migrate_creates_the_database_and_is_safe_to_rerun(
    fresh_database_url: str,
) -> None:
    first = db.migrate(fresh_database_url)
    second = db.migrate(fresh_database_url)

    assert first == [m.name for m in db.migrations()]
    assert second == []
    db.check_schema(fresh_database_url)


def test_replicas_migrating_together_apply_each_migration_once(
    fresh_database_url: str,
) -> None:
    db.ensure_database(fresh_database_url)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(db.migrate(fresh_database_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    applied = sorted(name for result in results for name in result)
    assert applied == sorted(m.name for m in db.migrations())


def test_services_refuse_an_old_schema(fresh_database_url: str) -> None:
    db.ensure_database(fresh_database_url)

    with pytest.raises(SchemaError, match="run `fedgrid db migrate`"):
        db.check_schema(fresh_database_url)


def test_unreachable_database_is_a_storage_error_without_password() -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/fedgrid"

    with pytest.raises(StorageError) as info:
        db.connect(url)

    assert "hunter2" not in str(info.value)
    assert "***" in str(info.value)


def test_migration_files_are_numbered_without_gaps_or_duplicates() -> None:
    versions = [m.version for m in db.migrations()]

    assert versions == list(range(1, len(versions) + 1))
