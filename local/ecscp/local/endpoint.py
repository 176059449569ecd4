"""The local AWS endpoint as its clients see it: fake credentials, boto3 clients, local ports."""

from __future__ import annotations

import http.client
import socket
from typing import Any
from urllib.parse import urlsplit

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


class PrivatePath:
    """A kept-alive HTTP connection to one of the local endpoint's private (non-AWS) paths."""

    def __init__(self, endpoint_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(endpoint_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        """The response body; one retry on a new connection (moto closes idle ones)."""
        for retry in (False, True):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            try:
                headers = {"Content-Type": "application/json"}
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if retry:
                    raise
                continue
            if response.status != 200:
                text = data.decode(errors="replace")
                raise RuntimeError(f"{method} {path} refused ({response.status}): {text}")
            return data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
