"""`fedgrid db`: the PostgreSQL schema."""

from __future__ import annotations

import click

from fedgrid import db
from fedgrid.config import Settings
from fedgrid.errors import FedgridError
from fedgrid.logs import setup_logging


@click.group(name="db")
def db_group() -> None:
    """Manage the database schema."""


@db_group.command()
def migrate() -> None:
    """Create the database if missing and apply pending migrations (safe to rerun)."""
    try:
        settings = Settings.from_env()
        setup_logging(settings.log_level, settings.log_format)
        applied = db.migrate(settings.database_url)
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    if applied:
        click.echo(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    click.echo(f"schema at version {db.latest_version()}")
