"""Admin commands: push a job, list jobs, inspect cycles, pull checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from fedgrid.cli.output import (
    admin_client,
    console,
    epsilon_text,
    epsilons,
    json_option,
    metrics_text,
    print_json,
    table,
    when,
)
from fedgrid.errors import FedgridError

version_option = click.option(
    "--version", "version", default=None, help="Job version (default: the newest)."
)


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    )


@click.command()
@click.argument("jobfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--variable", default="job", show_default=True, help="JobSpec name.")
@json_option
@click.pass_context
def push(ctx: click.Context, jobfile: Path, variable: str, as_json: bool) -> None:
    """Trace, validate and upload the job defined in JOBFILE."""
    from fedgrid.job import load_job

    try:
        traced = load_job(jobfile, variable).trace()
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    frames = traced.host_body()
    total = sum(map(len, frames))
    with admin_client(ctx) as client:
        if as_json:
            job = client.push(frames)
        else:
            with _progress() as progress:
                task = progress.add_task(f"push {traced.spec.name}", total=total)
                job = client.push(
                    frames, lambda sent: progress.update(task, completed=sent)
                )
    if as_json:
        print_json(job)
        return
    console.print(
        f"pushed [bold]{job.get('name', traced.spec.name)}[/] version "
        f"{job.get('version', traced.spec.version)} ({total} bytes), "
        f"plans: {', '.join(traced.plans)}"
    )


@click.command()
@json_option
@click.pass_context
def jobs(ctx: click.Context, as_json: bool) -> None:
    """List the jobs hosted on the grid."""
    with admin_client(ctx) as client:
        found = client.jobs()
    if as_json:
        print_json({"jobs": found})
        return
    rows = [
        (
            job.get("name"),
            job.get("version"),
            job.get("latest_checkpoint"),
            ", ".join(_plan_names(job.get("plans"))),
            when(job.get("created_at")),
        )
        for job in found
    ]
    table("jobs", ["name", "version", "checkpoint", "plans", "created"], rows)


def _plan_names(plans: Any) -> list[str]:
    if isinstance(plans, dict):
        return sorted(plans)
    if isinstance(plans, list):
        return [str(p.get("name", p)) if isinstance(p, dict) else str(p) for p in plans]
    return []


@click.command()
@click.argument("job")
@version_option
@json_option
@click.pass_context
def status(ctx: click.Context, job: str, version: str | None, as_json: bool) -> None:
    """Show a job's cycles: number, state, workers admitted, reports, deadline.

    Under differential privacy each cycle's checkpoint shows its epsilon.
    """
    with admin_client(ctx) as client:
        answer = client.job(job, version)
        spent = epsilons(client.checkpoints(job, version))
    if as_json:
        if spent:
            answer["epsilon"] = {str(number): value for number, value in spent.items()}
        print_json(answer)
        return
    info = answer.get("status") or {}
    cycles = info.get("cycles", []) if isinstance(info, dict) else []
    rows: list[tuple[Any, ...]] = [
        (
            cycle.get("number"),
            cycle.get("state"),
            cycle.get("admitted"),
            cycle.get("reports"),
            when(cycle.get("deadline")),
            cycle.get("checkpoint") or "",
        )
        for cycle in cycles
    ]
    columns = ["cycle", "state", "admitted", "reports", "deadline", "checkpoint"]
    if spent:
        columns.append("epsilon")
        rows = [(*row, epsilon_text(spent, row[-1])) for row in rows]
    state = info.get("state", "") if isinstance(info, dict) else ""
    finish = info.get("finish_reason", "") if isinstance(info, dict) else ""
    title = f"{answer.get('name', job)} {answer.get('version', '')} {state}".strip()
    table(title, columns, rows)
    if finish:
        console.print(f"finished: {finish}")


@click.command()
@click.argument("job")
@version_option
@json_option
@click.pass_context
def checkpoints(
    ctx: click.Context, job: str, version: str | None, as_json: bool
) -> None:
    """List a job's checkpoints with their metrics and aliases."""
    with admin_client(ctx) as client:
        found = client.checkpoints(job, version)
    if as_json:
        print_json({"checkpoints": found})
        return
    rows: list[tuple[Any, ...]] = [
        (
            item.get("number"),
            when(item.get("created_at")),
            item.get("size"),
            str(item.get("digest", ""))[:12],
            ", ".join(item.get("aliases") or []),
            metrics_text(item.get("metrics")),
        )
        for item in found
    ]
    columns = ["number", "created", "bytes", "digest", "aliases", "metrics"]
    spent = epsilons(found)
    if spent:
        columns.insert(5, "epsilon")
        rows = [(*row[:5], epsilon_text(spent, row[0]), row[5]) for row in rows]
    table(f"checkpoints of {job}", columns, rows)


@click.command()
@click.argument("job")
@version_option
@click.option(
    "--checkpoint",
    default="latest",
    show_default=True,
    help="Checkpoint number or alias.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write the model state stream to.",
)
@json_option
@click.pass_context
def pull(
    ctx: click.Context,
    job: str,
    version: str | None,
    checkpoint: str,
    output: Path,
    as_json: bool,
) -> None:
    """Download a checkpoint as a framed state stream (fedgrid.tensors format)."""
    with admin_client(ctx) as client:
        if as_json:
            result = client.pull(job, version, checkpoint, output)
        else:
            with _progress() as progress:
                task = progress.add_task(f"pull {job}:{checkpoint}", total=None)
                result = client.pull(
                    job,
                    version,
                    checkpoint,
                    output,
                    on_start=lambda size: progress.update(task, total=size),
                    on_progress=lambda got: progress.update(task, completed=got),
                )
    if as_json:
        print_json(result)
        return
    console.print(
        f"saved checkpoint {result['checkpoint']} of {job} to {output} "
        f"({result['size']} bytes, sha256 {result['digest'][:12]})"
    )


@click.command()
@click.argument("job")
@click.argument("checkpoint", type=click.IntRange(min=1))
@click.argument("name")
@version_option
@json_option
@click.pass_context
def alias(
    ctx: click.Context,
    job: str,
    checkpoint: int,
    name: str,
    version: str | None,
    as_json: bool,
) -> None:
    """Give checkpoint number CHECKPOINT of JOB the alias NAME."""
    with admin_client(ctx) as client:
        result = client.alias(job, version, checkpoint, name)
    if as_json:
        print_json(result)
        return
    console.print(f"checkpoint {checkpoint} of {job} is now also {name!r}")


@click.command()
@click.argument("job")
@version_option
@click.option(
    "-o",
    "--output",
    default="metrics.png",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Image file to write.",
)
@click.pass_context
def plot(ctx: click.Context, job: str, version: str | None, output: Path) -> None:
    """Draw the checkpoints' metrics (loss, accuracy...) as a PNG picture."""
    from fedgrid.cli.plotting import plot_metrics

    with admin_client(ctx) as client:
        found = client.checkpoints(job, version)
    try:
        names = plot_metrics(found, output, title=job)
    except FedgridError as exc:
        raise click.ClickException(str(exc)) from exc
    console.print(
        f"plotted {', '.join(names)} over {len(found)} checkpoints to {output}"
    )


COMMANDS = [push, jobs, status, checkpoints, pull, alias, plot]
