"""The operator's commands (``ecscp status``, ``explain``, ``doctor``, ``redrive``).

One module per command's logic, each keeping its decisions pure (a report from facts) apart from
the adapter that gathers the facts with the boto3 clients of :class:`ControlPlaneStack`
(``stack.py``), which finds a deployed stack through CloudFormation, or the local stack through
its discovery file.
"""
