"""X-Ray tracing of the Lambda handlers, loaded only when it is on.

Powertools' ``Tracer()`` imports the X-Ray SDK (about 130 ms of CPU, a third of a cold start)
even when tracing is disabled. The handlers ask for it only when it would record something.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

# Cheap: this module loads the X-Ray SDK lazily; only ``Tracer()`` pulls it in.
from aws_lambda_powertools.tracing import Tracer

Handler = TypeVar("Handler", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    """Powertools' own rule, so the two never disagree.

    Off with ``POWERTOOLS_TRACE_DISABLED``, outside Lambda (no ``LAMBDA_TASK_ROOT``), and under
    SAM local or Chalice; on in a function deployed with ``Tracing: Active`` (template.yaml).
    """
    return not Tracer._is_tracer_disabled()


def capture_lambda_handler(handler: Handler) -> Handler:
    """``Tracer().capture_lambda_handler`` when tracing is on; the handler unchanged when it is off.

    Decided once, when the function's module loads: a container's environment never changes.
    """
    if not tracing_enabled():
        return handler
    # Tracer() patches botocore as it always has, so AWS calls show as subsegments.
    return cast("Handler", Tracer().capture_lambda_handler(handler))
