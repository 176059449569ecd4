"""The ``context`` a Lambda handler gets: one for the local runtime, the tests and the benchmarks."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

#: Region and account of the ARNs a context made without one names.
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"


@dataclass
class LambdaContext:
    """What Lambda passes as the handler's ``context`` (and what Powertools reads from it).

    Only ``function_name`` is needed; the ARN and log group follow from it, and the remaining
    time counts down from ``timeout_seconds`` after it was made unless ``deadline`` is given.
    """

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    timeout_seconds: float = 30.0
    #: Epoch seconds when the invocation runs out of time.
    deadline: float = 0.0
    identity: Any = None
    client_context: Any = None

    def __post_init__(self) -> None:
        if not self.invoked_function_arn:
            self.invoked_function_arn = (
                f"arn:aws:lambda:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:function:{self.function_name}"
            )
        if not self.log_group_name:
            self.log_group_name = f"/aws/lambda/{self.function_name}"
        if not self.deadline:
            self.deadline = time.time() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))
