"""The operator commands' stack options: exactly one of --stack and --local, refused before any AWS call."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ecscp.cli import app


@pytest.mark.parametrize("command", ["status", "doctor", "redrive", "explain"])
@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--stack", "prod", "--local"], "--stack and --local name two stacks"),
        ([], "name a deployed stack with --stack NAME, or use --local"),
        (["--stack", "prod", "--state-dir", "/tmp/x"], "--state-dir goes with --local"),
    ],
)
def test_a_command_needs_exactly_one_stack(command: str, options: list[str], message: str) -> None:
    arguments = [command, *(["ti|d|t|r|-1|1"] if command == "explain" else []), *options]
    result = CliRunner().invoke(app, arguments, env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
