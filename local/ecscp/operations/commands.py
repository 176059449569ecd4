"""The operator's commands as typer commands: thin, each a call into its module of this package.

Registered on the ``ecscp`` application by :func:`register_operator_commands`. The modules they
call (boto3, the shared package) are imported inside each command, so ``ecscp --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from ecscp.operations.stack import ControlPlaneStack

_Command = TypeVar("_Command", bound=Callable[..., None])
_COMMANDS: list[Callable[..., None]] = []


def operator_command(command: _Command) -> _Command:
    _COMMANDS.append(command)
    return command


def register_operator_commands(app: typer.Typer) -> None:
    """Add ``status``, ``explain``, ``doctor`` and ``redrive`` to ``app``."""
    for command in _COMMANDS:
        app.command()(command)


# -- the operator's commands ----------------------------------------------------------------------

StackOption = Annotated[
    str | None, typer.Option("--stack", help="Name of a deployed control plane stack (CloudFormation).")
]
LocalOption = Annotated[
    bool, typer.Option("--local", help="The running local stack (`ecscp local up`) instead of --stack.")
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="With --local: the state directory of the local stack to use."),
]
RegionOption = Annotated[str | None, typer.Option(help="AWS region (default: as boto3 finds it).")]
ProfileOption = Annotated[str | None, typer.Option(help="AWS profile (default: as boto3 finds it).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _find_stack(
    stack: str | None, local: bool, state_dir: Path | None, region: str | None, profile: str | None
) -> ControlPlaneStack:
    """The stack the options name (exactly one of --stack and --local); exit 2 if it cannot be found."""
    from ecscp.operations.stack import OperationsError, find_local, find_stack  # noqa: PLC0415 (lazy)

    if stack and local:
        raise typer.BadParameter(
            "--stack and --local name two stacks: give one of them", param_hint="--stack"
        )
    if not stack and not local:
        raise typer.BadParameter(
            "name a deployed stack with --stack NAME, or use --local", param_hint="--stack"
        )
    if state_dir is not None and not local:
        raise typer.BadParameter("--state-dir goes with --local", param_hint="--state-dir")
    try:
        return find_local(state_dir) if local else find_stack(str(stack), region=region, profile=profile)
    except OperationsError as exc:
        Console(stderr=True).print(Text(str(exc), style="red"))
        raise typer.Exit(code=2) from None


@contextmanager
def _stops_on_refusal() -> Iterator[None]:
    """Exit 2 with the reason, never a traceback, when the stack or AWS refuses what is asked."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 (lazy)

    from ecscp.operations.stack import OperationsError  # noqa: PLC0415 (lazy)

    try:
        yield
    except (OperationsError, ValueError) as exc:
        Console(stderr=True).print(Text(str(exc), style="red"))
        raise typer.Exit(code=2) from None
    except (ClientError, BotoCoreError) as exc:
        Console(stderr=True).print(Text(f"AWS refused: {exc}", style="red"))
        raise typer.Exit(code=2) from None


def _output_console() -> Console:
    # Wide enough for the tables when stdout is a file or a pipe (rich assumes 80 columns).
    return Console(highlight=False) if sys.stdout.isatty() else Console(width=160, highlight=False)


@operator_command
def status(
    *,
    stack: StackOption = None,
    local: LocalOption = False,
    state_dir: StateDirOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many tries (the oldest).")] = 50,
) -> None:
    """The tries in flight, counted by state, and the oldest of them as a table."""
    from ecscp.operations import status as status_command  # noqa: PLC0415 (lazy: keeps --help fast)

    found = _find_stack(stack, local, state_dir, region, profile)
    with _stops_on_refusal():
        report = status_command.current_status(found, limit)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        status_command.render(report, _output_console())


@operator_command
def explain(
    key_or_task: Annotated[str, typer.Argument(help="A task key, or an ECS task ARN or id.")],
    *,
    stack: StackOption = None,
    local: LocalOption = False,
    state_dir: StateDirOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    as_json: JsonOption = False,
) -> None:
    """One try: its item, its ECS task, its history, and why it is in its state.

    Exit status: 0 explained, 2 the stack or the task cannot be found.
    """
    from ecscp.operations import explain as explain_command  # noqa: PLC0415 (lazy: keeps --help fast)

    found = _find_stack(stack, local, state_dir, region, profile)
    with _stops_on_refusal():
        result = explain_command.explain(found, explain_command.parse_target(key_or_task))
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        explain_command.render(result, _output_console())


@operator_command
def doctor(
    *,
    stack: StackOption = None,
    local: LocalOption = False,
    state_dir: StateDirOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    scheduler_role: Annotated[
        str | None,
        typer.Option(help="Check that the scheduler policy is attached to this role (name or ARN)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a deployed stack end to end; each problem comes with its fix.

    Exit status: 0 nothing failed (warnings allowed), 1 a check failed, 2 the stack cannot be found.
    """
    from ecscp.operations import doctor as doctor_command  # noqa: PLC0415 (lazy: keeps --help fast)
    from ecscp.operations.doctor_facts import gather  # noqa: PLC0415 (lazy: keeps --help fast)

    found = _find_stack(stack, local, state_dir, region, profile)
    facts = gather(found, scheduler_role)
    checks = doctor_command.diagnose(facts)
    if as_json:
        document = {"stack": found.name, "checks": [c.to_json() for c in checks]}
        typer.echo(json.dumps(document | {"failed": doctor_command.failed(checks)}, indent=2))
    else:
        doctor_command.render(facts, checks, _output_console())
    raise typer.Exit(code=1 if doctor_command.failed(checks) else 0)


@operator_command
def redrive(
    *,
    stack: StackOption = None,
    local: LocalOption = False,
    state_dir: StateDirOption = None,
    region: RegionOption = None,
    profile: ProfileOption = None,
    task_events: Annotated[
        bool,
        typer.Option(
            "--task-events",
            help="Redrive the ECS task-event DLQ to the task_state function instead of the run requests.",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would move; move nothing.")] = False,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Move at most this many.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Move dead letters back: run requests to their queue (or task events to task_state).

    Each message is sent before it is deleted (a crash duplicates one, which the control plane
    ignores; it never loses one). Exit status: 0 all moved, 1 some could not be, 2 no stack.
    """
    from rich.progress import Progress  # noqa: PLC0415 (lazy: keeps --help fast)

    from ecscp.operations import redrive as redrive_command  # noqa: PLC0415 (lazy: keeps --help fast)

    found = _find_stack(stack, local, state_dir, region, profile)
    errors = Console(stderr=True, highlight=False)
    with _stops_on_refusal():
        way = redrive_command.route(found, task_events=task_events)
        sqs = found.client("sqs")
        total = redrive_command.queue_depth(sqs, way.source_url)
    if max_messages is not None:
        total = max_messages if total is None else min(total, max_messages)
    verb = "Listing" if dry_run else "Moving"
    with _stops_on_refusal(), Progress(console=errors, transient=as_json) as progress:
        bar = progress.add_task(f"{verb} dead letters to {way.destination.name}", total=total or None)
        result = redrive_command.redrive(
            sqs,
            way.source_url,
            way.destination,
            describe=way.describe,
            max_messages=max_messages,
            dry_run=dry_run,
            on_progress=lambda n: progress.advance(bar, n),
        )
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        out = _output_console()
        for message_id, what in result.messages:
            out.print(f"{message_id}  {what}", markup=False)
        done = "would move" if dry_run else "moved"
        out.print(f"{len(result.messages)} {done} to {way.destination.name}", markup=False)
        for failure in result.failures:
            errors.print(Text(f"not moved: {failure}", style="red"))
    raise typer.Exit(code=1 if result.failures else 0)
