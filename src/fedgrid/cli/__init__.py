"""The `fedgrid` command: admin commands, the local stack and the schema."""

from __future__ import annotations

import click

from fedgrid.cli.admin import COMMANDS
from fedgrid.cli.db import db_group
from fedgrid.cli.output import DEFAULT_URL, GridOptions
from fedgrid.cli.stack import stack
from fedgrid.config import Settings
from fedgrid.errors import FedgridError
from fedgrid.localstack import StackInfo, read_stack_info


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
    """fedgrid: host federated learning jobs and inspect their checkpoints.

    Without --token, a grid started here by `fedgrid stack up` is used with
    its own admin token.
    """
    if token is None:
        local = _local_stack()
        if local is not None and url == DEFAULT_URL:
            url, token = local.gateway_url, local.admin_token()
    ctx.obj = GridOptions(url=url, token=token)


def _local_stack() -> StackInfo | None:
    try:
        return read_stack_info(Settings.from_env().var_dir)
    except (FedgridError, OSError, ValueError):
        return None


for command in (*COMMANDS, stack, db_group):
    main.add_command(command)
