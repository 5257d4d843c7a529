"""Shared CLI plumbing: the grid connection, JSON or table output, one-line errors."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from fedgrid.cli.admin_client import AdminClient
from fedgrid.errors import FedgridError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_URL = "http://127.0.0.1:8080"

console = Console()
errors = Console(stderr=True)


@dataclass(frozen=True)
class GridOptions:
    """The grid URL and admin token given on the command line or in the env."""

    url: str
    token: str | None

    def admin(self) -> AdminClient:
        if not self.token:
            raise click.UsageError(
                "an admin token is needed: pass --token or set FEDGRID_ADMIN_TOKEN"
            )
        return AdminClient(self.url, self.token)


@contextmanager
def admin_client(ctx: click.Context) -> Iterator[AdminClient]:
    """An admin client for one command; grid errors become one-line messages."""
    options: GridOptions = ctx.ensure_object(GridOptions)
    try:
        client = options.admin()
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        yield client
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # a local file that cannot be written or read
        raise click.ClickException(str(exc)) from exc
    finally:
        client.close()


def json_option(command: F) -> F:
    """Add `--json` to a command: machine-readable output for scripts."""
    option = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
    )
    return functools.wraps(command)(option(command))  # type: ignore[return-value]


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a rich table; empty cells for missing values."""
    view = Table(title=title)
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(view)


def when(value: Any) -> str:
    """A unix time (seconds) or ISO string as a short UTC time."""
    if value in (None, "", 0):
        return ""
    if isinstance(value, int | float):
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def metrics_text(metrics: Any) -> str:
    if not isinstance(metrics, dict):
        return ""
    return ", ".join(f"{key}={value:.4g}" for key, value in sorted(metrics.items()))


def epsilons(checkpoints: Sequence[Any]) -> dict[int, float]:
    """Checkpoint number -> the cumulative epsilon recorded with it (DP jobs)."""
    found: dict[int, float] = {}
    for item in checkpoints:
        metrics = item.get("metrics") if isinstance(item, dict) else None
        value = metrics.get("epsilon") if isinstance(metrics, dict) else None
        if isinstance(value, int | float) and isinstance(item.get("number"), int):
            found[item["number"]] = float(value)
    return found


def epsilon_text(spent: dict[int, float], number: Any) -> str:
    """One checkpoint's epsilon for a table cell; empty when it has none."""
    value = spent.get(number) if isinstance(number, int) else None
    return "" if value is None else f"{value:.4g}"
