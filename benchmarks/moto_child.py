"""The benchmarks' moto server process: ``python -m benchmarks.moto_child --port PORT [--raw]``.

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
# The others stay off: they change what either executor sees (task states, StopTask, EventBridge
# targets), not only what a call costs, and the comparison is with moto as the provider meets it.
from ecscp.local.moto_patches import ecs_describe_tasks_lookup, sqs_send_attributes
from ecscp.local.moto_server import main as serve


def _apply_cost_fixes() -> None:
    sqs_send_attributes.apply()
    ecs_describe_tasks_lookup.apply()


def main() -> None:
    """The local stack's moto server (ecscp.local.moto_server), with the benchmarks' patches."""
    argv = sys.argv[1:]
    raw = "--raw" in argv
    if raw:
        argv.remove("--raw")
    serve(argv, apply_patches=(lambda: None) if raw else _apply_cost_fixes)


if __name__ == "__main__":
    main()
