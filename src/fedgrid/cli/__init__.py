"""The `fedgrid` command: admin commands, plus `stack` and `db` when installed."""

from __future__ import annotations

import importlib

import click

from fedgrid.cli.admin import COMMANDS
from fedgrid.cli.output import DEFAULT_URL, GridOptions

# Command groups living in their own modules: (module, group name); a module
# that is not installed is skipped.
EXTRA_GROUPS = [("fedgrid.cli.stack", "stack"), ("fedgrid.cli.db", "db")]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    envvar="FEDGRID_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The grid's gateway URL (env FEDGRID_URL).",
)
@click.option(
    "--token",
    envvar="FEDGRID_ADMIN_TOKEN",
    default=None,
    help="Admin token (env FEDGRID_ADMIN_TOKEN).",
)
@click.pass_context
def main(ctx: click.Context, url: str, token: str | None) -> None:
    """fedgrid: host federated learning jobs and inspect their checkpoints."""
    ctx.obj = GridOptions(url=url, token=token)


def _register() -> None:
    for command in COMMANDS:
        main.add_command(command)
    for module_name, group_name in EXTRA_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        for value in vars(module).values():
            if isinstance(value, click.Group) and value.name == group_name:
                main.add_command(value)
                break


_register()
