"""Finding a deployed stack: clear errors for a missing stack, no region and no credentials."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from ecscp.cli import app
from ecscp.operations.stack import OperationsError, find_stack


def test_a_stack_that_does_not_exist_names_the_region_to_check() -> None:
    with (
        mock_aws(),
        pytest.raises(
            OperationsError, match="no stack 'prod' in region eu-west-1: check the name and --region"
        ),
    ):
        find_stack("prod", region="eu-west-1")


def test_no_region_asks_for_one(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    with pytest.raises(OperationsError, match="no AWS region: pass --region"):
        find_stack("prod")


def test_no_credentials_says_where_they_come_from(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    # No credentials anywhere, and no instance role to ask: botocore gives up before any request.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{tmp_path}/none")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    with pytest.raises(OperationsError, match="no AWS credentials: set AWS_PROFILE"):
        find_stack("prod", region="eu-west-1")


def test_an_unknown_profile_is_named() -> None:
    with pytest.raises(OperationsError, match="AWS profile"):
        find_stack("prod", region="eu-west-1", profile="no-such-profile")


def test_a_read_aws_refuses_is_reported_not_raised() -> None:
    # GIVEN a stack whose state table is gone
    template = {
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {"StateTableName": {"Value": "deleted-table"}, "ControlPlaneId": {"Value": "ecscp-prod"}},
    }
    with mock_aws():
        boto3.client("cloudformation", region_name="eu-west-1").create_stack(
            StackName="prod", TemplateBody=json.dumps(template)
        )

        # WHEN status reads it
        result = CliRunner().invoke(app, ["status", "--stack", "prod", "--region", "eu-west-1"])

    # THEN the command says what AWS refused, with exit status 2 and no traceback
    assert result.exit_code == 2
    assert "AWS refused" in result.output
    assert "ResourceNotFoundException" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
