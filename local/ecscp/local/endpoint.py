"""The local AWS endpoint as its clients see it: fake credentials, boto3 clients, local ports."""

from __future__ import annotations

import socket
from typing import Any

import boto3
from botocore.config import Config

#: moto accepts any credentials; these are the ones every local client and child uses.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: The same credentials as a process environment.
FAKE_CREDENTIALS_ENV = {
    "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
    "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
}


def aws_client(
    service: str, endpoint_url: str, region: str, *, retries: int = 3, config: Config | None = None
) -> Any:
    """A boto3 client for the local endpoint, with fake credentials (``config`` replaces the
    default retry and timeout settings)."""
    return boto3.client(  # type: ignore[call-overload]
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        config=config
        or Config(
            retries={"mode": "standard", "total_max_attempts": retries}, connect_timeout=5, read_timeout=60
        ),
        **FAKE_CREDENTIALS,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
