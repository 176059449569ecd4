"""The benchmarks' moto server process: ``python -m benchmarks.moto_child -p PORT [--raw]``.

Two moto artefacts make a call's cost grow with data AWS would not scan; each would be charged
to one side only, so both are removed before serving (``--raw`` keeps moto as it is):

- SQS (charged to the control plane): moto 5.2 rebuilds a queue's full attribute map, with the
  approximate message counts (a scan of every message, two clock reads each), on every
  SendMessage, just to read ``ContentBasedDeduplication``. SendMessageBatch slowed from about
  60 ms to 600 ms per call as 1,000 messages accumulated, on this machine. The send path now gets
  the static attributes; GetQueueAttributes counts as before.
- ECS (charged to the provider): DescribeTasks compares every task in every cluster with every
  requested ARN by substring search, so one call costs tasks x 99 string searches and a sync of
  N tasks grows with N squared. The same matches (full ARN, or task id) are now set look-ups.

Everything else, including DynamoDB's Query (moto walks every item of the table for a GSI
query), is moto as released; the docs say what that does to the figures.
"""

# Airflow, moto and the handlers are imported where used: the environment (AIRFLOW_HOME,
# fake credentials, endpoints) must be set before they read it.
# ruff: noqa: PLC0415

from __future__ import annotations

import sys
import threading
from typing import Any

_state = threading.local()


def _patch_sqs_send_path() -> None:
    from moto.core.utils import camelcase_to_underscores
    from moto.sqs.models import Queue, SQSBackend

    full_attributes = Queue.attributes

    def attributes(self: Queue) -> dict[str, Any]:
        if not getattr(_state, "sending", 0):
            return full_attributes.fget(self)  # type: ignore[no-any-return,attr-defined]
        result: dict[str, Any] = {}
        for name in self.BASE_ATTRIBUTES + (self.FIFO_ATTRIBUTES if self.fifo_queue else []):
            if not name.startswith("Approximate"):
                value = getattr(self, camelcase_to_underscores(name))
                result[name] = str(value).lower() if isinstance(value, bool) else value
        return result

    def sending(method: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _state.sending = getattr(_state, "sending", 0) + 1
            try:
                return method(*args, **kwargs)
            finally:
                _state.sending -= 1

        return wrapper

    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]
    SQSBackend.send_message = sending(SQSBackend.send_message)  # type: ignore[method-assign]
    SQSBackend.send_message_batch = sending(SQSBackend.send_message_batch)  # type: ignore[method-assign]


def _patch_ecs_describe_tasks() -> None:
    from moto.ecs.models import EC2ContainerServiceBackend, Task

    def describe_tasks(self: EC2ContainerServiceBackend, cluster_str: str, tasks: list[str]) -> list[Task]:
        self._get_cluster(cluster_str)
        if not tasks:
            from moto.ecs.exceptions import InvalidParameterException

            raise InvalidParameterException("Tasks cannot be empty.")
        wanted = set(tasks)
        wanted_ids = {t.split("/")[-1] for t in tasks}
        response = []
        for cluster_tasks in self.tasks.values():
            for task_arn, task in cluster_tasks.items():
                if task_arn in wanted or task.task_arn in wanted or task_arn.split("/")[-1] in wanted_ids:
                    task.advance()
                    response.append(task)
        return response

    EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign]


def main() -> None:
    from moto.server import main as serve

    argv = sys.argv[1:]
    if "--raw" in argv:
        argv.remove("--raw")
    else:
        _patch_sqs_send_path()
        _patch_ecs_describe_tasks()
    serve(argv)


if __name__ == "__main__":
    main()
