"""The ``ecscp`` command line: run the control plane locally, and demonstrate it end to end.

Heavy modules (moto, samtranslator, Airflow clients) are imported inside the commands, so
``ecscp --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="ecscp",
    help="Airflow ECS control plane: a local stack and an end-to-end demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
local_app = typer.Typer(help="Run the control plane on this machine (moto, local Lambda and ECS).")
app.add_typer(local_app, name="local")


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
) -> None:
    """Start the local stack and keep it running until Ctrl-C; prints the settings for Airflow.

    Task containers run as local processes; like an ECS task definition, they need the Airflow
    worker settings (at least AIRFLOW__CORE__EXECUTION_API_SERVER_URL and the DAGs folder).
    """
    from ecscp.demo import PROJECT_ROOT  # noqa: PLC0415 (lazy: keeps --help fast)
    from ecscp.local.stack import LocalStackConfig, run_forever  # noqa: PLC0415 (lazy: keeps --help fast)

    container_env = {k: v for k, v in os.environ.items() if k == "AIRFLOW_HOME" or k.startswith("AIRFLOW__")}
    # The container command starts with a bare "python": it must be this environment's.
    container_env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    for item in task_env or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--task-env")
        container_env[name] = value
    directory = state_dir.resolve() if state_dir else Path(tempfile.mkdtemp(prefix="ecscp-local-"))
    directory.mkdir(parents=True, exist_ok=True)
    config = LocalStackConfig(
        project_root=PROJECT_ROOT, state_dir=directory, port=port, task_env=container_env
    )
    run_forever(config, Console())


@app.command()
def demo(
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
) -> None:
    """Start the local stack and Airflow 3, run every DAG once, show how each task ended.

    Exit status: 0 when every run ended (success or failed), 1 when something crashed or a
    DAG file did not import, 2 when the runs did not end within --timeout, 130 on Ctrl-C.
    """
    from ecscp.demo import EXAMPLE_DAGS, EXIT_INTERRUPTED, render, run_demo  # noqa: PLC0415 (lazy: keeps --help fast)
    from ecscp.local.airflow import AirflowError, send_sigterm_as_interrupt  # noqa: PLC0415 (lazy: keeps --help fast)

    send_sigterm_as_interrupt()
    progress = Console(stderr=True)
    try:
        result = run_demo(
            dags or EXAMPLE_DAGS,
            timeout=timeout,
            state_dir=state_dir,
            keep_state=keep_state,
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
