"""`fedgrid stack`: run the whole grid on this machine."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from fedgrid.config import Settings
from fedgrid.errors import FedgridError
from fedgrid.localstack import LocalStack, read_stack_info
from fedgrid.localstack.health import service_health
from fedgrid.logs import setup_logging

console = Console(stderr=True)


@click.group()
def stack() -> None:
    """Run the grid locally (embedded Redis/PostgreSQL when none is reachable)."""


@stack.command()
@click.option(
    "--timeout", default=180.0, show_default=True, help="Seconds to wait for health."
)
def up(timeout: float) -> None:
    """Start every service, wait until healthy, print URLs; Ctrl-C stops them all."""
    try:
        settings = Settings.from_env()
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    setup_logging(settings.log_level, settings.log_format)
    local = LocalStack(settings)
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        info = local.start(timeout=timeout)
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    if info.embedded:
        console.print(
            f"[yellow]embedded servers started: {', '.join(info.embedded)}[/]"
        )
    console.print(f"gateway        {info.gateway_url}")
    console.print(f"signaling      {info.signaling_url}")
    console.print(f"model store    {info.model_store_address} (gRPC)")
    console.print(f"cycle manager  {info.cycle_manager_address} (gRPC)")
    console.print(f"admin token    in {info.admin_token_file}")
    console.print("[green]fedgrid stack is up[/]; Ctrl-C stops it")
    exit_code = 0
    while not stopping.wait(0.5):
        exited = local.exited()
        if exited:
            console.print(f"[red]services exited: {exited}; stopping the stack[/]")
            exit_code = 1
            break
    local.stop()
    console.print("fedgrid stack stopped")
    raise SystemExit(exit_code)


@stack.command()
@click.option("--var-dir", type=click.Path(path_type=Path), default=None)
def status(var_dir: Path | None) -> None:
    """Print each service's health for the stack started from this folder."""
    try:
        folder = var_dir or Settings.from_env().var_dir
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    info = read_stack_info(folder)
    if info is None:
        raise click.ClickException(f"no stack is running from {folder.resolve()}")
    report = service_health(info)
    table = Table("service", "health", "pid")
    for name, word in report.items():
        colour = "green" if word in ("SERVING", "ok") else "red"
        table.add_row(name, f"[{colour}]{word}[/]", str(info.pids.get(name, "")))
    Console().print(table)
    if any(word not in ("SERVING", "ok") for word in report.values()):
        raise SystemExit(1)
