"""The ``ecscp`` command line: run the control plane locally, and demonstrate it end to end.

Heavy modules (moto, samtranslator, Airflow clients) are imported inside the commands, so
``ecscp --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from ecscp.operations.commands import register_operator_commands

app = typer.Typer(
    name="ecscp",
    help="Airflow ECS control plane: operate a stack, run one locally, demonstrate it end to end.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
local_app = typer.Typer(help="Run the control plane on this machine (moto, local Lambda and ECS).")
app.add_typer(local_app, name="local")
register_operator_commands(app)


def _name_values(items: list[str] | None, option: str) -> dict[str, str]:
    """NAME=VALUE options as a dict; a malformed one is refused naming the option."""
    values: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        values[name] = value
    return values


@local_app.command("up")
def local_up(
    port: Annotated[int, typer.Option(help="Port of the local AWS endpoint (0: any free port).")] = 0,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where the stack keeps its files (default: a new temporary directory)."),
    ] = None,
    task_env: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE for every container the local ECS host runs (repeatable); "
            "AIRFLOW_HOME and AIRFLOW__* variables of this shell are passed on as well."
        ),
    ] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE for a template parameter, as sam deploy --parameter-overrides (repeatable)."
        ),
    ] = None,
    allow_unready: Annotated[
        bool,
        typer.Option(
            help="Start even when the stack's parameters cannot run tasks (schedulers' health checks "
            "will refuse to start instead)."
        ),
    ] = False,
) -> None:
    """Start the local stack and keep it running until Ctrl-C; prints the settings for Airflow.

    Task containers run as local processes; like an ECS task definition, they need the Airflow
    worker settings (at least AIRFLOW__CORE__EXECUTION_API_SERVER_URL and the DAGs folder).
    """
    from ecscp.local.foreground import run_forever  # noqa: PLC0415 (lazy: keeps --help fast)
    from ecscp.local.stack import LocalStackConfig  # noqa: PLC0415 (lazy: keeps --help fast)
    from ecscp.project import PROJECT_ROOT  # noqa: PLC0415 (lazy: keeps --help fast)

    container_env = {k: v for k, v in os.environ.items() if k == "AIRFLOW_HOME" or k.startswith("AIRFLOW__")}
    # The container command starts with a bare "python": it must be this environment's.
    container_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    container_env.update(_name_values(task_env, "--task-env"))
    directory = state_dir.resolve() if state_dir else Path(tempfile.mkdtemp(prefix="ecscp-local-"))
    directory.mkdir(parents=True, exist_ok=True)
    parameters = _name_values(parameter, "--parameter")
    config = LocalStackConfig(
        project_root=PROJECT_ROOT,
        state_dir=directory,
        port=port,
        task_env=container_env,
        parameters=parameters,
        require_ready=not allow_unready,
    )
    if not run_forever(config, Console()):
        raise typer.Exit(code=2)


@app.command()
def demo(
    *,
    dags: Annotated[
        Path | None,
        typer.Option(
            help="Folder of DAG files to run once each (default: the bundled example DAGs).",
            exists=True,
            file_okay=False,
            dir_okay=True,
            readable=True,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout; progress goes to stderr.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Give up (exit 2) when the runs have not all ended after this many seconds.")
    ] = 600.0,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="New or empty directory for Airflow's home, the stack's files and all logs."),
    ] = None,
    keep_state: Annotated[
        bool, typer.Option(help="Keep the temporary state directory (always kept when the demo fails).")
    ] = False,
    create_infrastructure: Annotated[
        bool,
        typer.Option(help="Let the stack create the ECS cluster and task definition (CreateCluster, Image)."),
    ] = False,
) -> None:
    """Start the local stack and Airflow 3, run every DAG once, show how each task ended.

    Exit status: 0 when every run ended (success or failed), 1 when something crashed or a
    DAG file did not import, 2 when the runs did not end within --timeout, 130 on Ctrl-C.
    """
    from ecscp.demo import EXAMPLE_DAGS, EXIT_INTERRUPTED, render, run_demo  # noqa: PLC0415 (lazy: keeps --help fast)
    from ecscp.local.airflow_api import AirflowError  # noqa: PLC0415 (lazy: keeps --help fast)
    from ecscp.local.processes import send_sigterm_as_interrupt  # noqa: PLC0415 (lazy: keeps --help fast)

    send_sigterm_as_interrupt()
    progress = Console(stderr=True)
    try:
        result = run_demo(
            dags or EXAMPLE_DAGS,
            timeout=timeout,
            state_dir=state_dir,
            keep_state=keep_state,
            create_infrastructure=create_infrastructure,
            console=progress,
        )
    except KeyboardInterrupt:
        progress.print("[red]interrupted; every process was stopped[/red]")
        raise typer.Exit(code=EXIT_INTERRUPTED) from None
    except AirflowError as exc:
        progress.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        progress.print(f"Total wall time: {result.wall_seconds:.1f} s")
    else:
        # Wide enough for the table when stdout is a file or a pipe (rich assumes 80 columns).
        render(result, Console() if sys.stdout.isatty() else Console(width=120))
    raise typer.Exit(code=result.exit_code)


class MigrateFormat(str, Enum):
    """How ``ecscp migrate`` prints the stack's parameters."""

    SAM_DEPLOY = "sam-deploy"
    SAMCONFIG = "samconfig"


@app.command()
def migrate(
    airflow_cfg: Annotated[
        Path | None,
        typer.Option(
            "--airflow-cfg",
            help="The scheduler's airflow.cfg, whose aws_ecs_executor section is read.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    env_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--env-file",
            help="NAME=VALUE lines of the scheduler's environment (repeatable), read instead of this "
            "shell's environment.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(
            help="This project's template.yaml (default: ./template.yaml, else the one of this checkout).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ] = None,
    output_format: Annotated[
        MigrateFormat, typer.Option("--format", help="sam deploy command line, or samconfig.toml block.")
    ] = MigrateFormat.SAM_DEPLOY,
) -> None:
    """Print the stack parameters and scheduler settings for an AwsEcsExecutor configuration.

    Reads the aws_ecs_executor section of --airflow-cfg and the
    AIRFLOW__AWS_ECS_EXECUTOR__ variables, which win as in Airflow.
    Warnings go to stderr.

    Exit status: 0 migrated, 1 the template is not this project's,
    2 an option cannot be migrated (each is named, with the reason).
    """
    from ecscp import migrate as migration  # noqa: PLC0415 (lazy: keeps --help fast)

    errors = Console(stderr=True, soft_wrap=True, highlight=False)
    env: dict[str, str] = {}
    for path in env_file or []:
        try:
            env.update(migration.parse_env_file(path.read_text()))
        except ValueError as exc:
            raise typer.BadParameter(f"{path}: {exc}", param_hint="--env-file") from None
    if not env_file:
        env = dict(os.environ)
    template_path = template or next(
        (p for p in (Path("template.yaml"), migration.DEFAULT_TEMPLATE) if p.is_file()), None
    )
    try:
        if template_path is None:
            raise migration.TemplateMismatchError("no template.yaml here: pass --template")
        spec = migration.TemplateSpec.from_text(template_path.read_text())
    except migration.TemplateMismatchError as exc:
        errors.print(Text(f"{template_path}: {exc}", style="red"))
        raise typer.Exit(code=1) from None
    try:
        config = migration.read_provider_config(
            env,
            airflow_cfg.read_text() if airflow_cfg else None,
            str(airflow_cfg) if airflow_cfg else "airflow.cfg",
        )
        result = migration.migrate(config, spec)
    except migration.MigrationRefusedError as exc:
        for refusal in exc.refusals:
            errors.print(Text(f"refused: {refusal}", style="red"))
        raise typer.Exit(code=2) from None
    for warning in result.warnings:
        errors.print(Text(f"warning: {warning}", style="yellow"))
    # Plain text, never wrapped or highlighted, so that it can be piped or pasted.
    out = Console(soft_wrap=True, highlight=False, markup=False, emoji=False)
    out.print(migration.render(result, output_format.value), end="")
