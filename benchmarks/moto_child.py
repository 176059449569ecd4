"""The benchmarks' moto server process: ``python -m benchmarks.moto_child -p PORT [--raw]``.

Two moto artefacts make a call's cost grow with data AWS would not scan; each would be charged
to one side only, so both are removed before serving (``--raw`` keeps moto as it is):

- SQS (charged to the control plane): moto 5.2 rebuilds a queue's full attribute map, with the
  approximate message counts (a scan of every message, two clock reads each), on every
  SendMessage, just to read ``ContentBasedDeduplication``. SendMessageBatch slowed from about
  60 ms to 600 ms per call as 1,000 messages accumulated, on this machine. The send path now gets
  the static attributes (and so does ReceiveMessage's per-message retention check);
  GetQueueAttributes counts as before.
- ECS (charged to the provider): DescribeTasks compares every task in every cluster with every
  requested ARN by substring search, so one call costs tasks x 99 string searches and a sync of
  N tasks grows with N squared. The same matches (full ARN, or task id) are now set look-ups.

Everything else, including DynamoDB's Query (moto walks every item of the table for a GSI
query), is moto as released; the docs say what that does to the figures.
"""

from __future__ import annotations

import sys

# The same two fixes the local stack's moto applies (one definition each, in ecscp.local.moto_patches).
from ecscp.local.moto_patches import ecs_describe_tasks_lookup, sqs_send_attributes


def main() -> None:
    from moto.server import main as serve  # noqa: PLC0415 - moto reads its environment on import

    argv = sys.argv[1:]
    if "--raw" in argv:
        argv.remove("--raw")
    else:
        sqs_send_attributes.apply()
        ecs_describe_tasks_lookup.apply()
    serve(argv)


if __name__ == "__main__":
    main()
