"""The control plane's use cases over one set of adapters, as the handlers call them.

Each use case has its own module: ``run_requests`` (one run request), ``task_changes`` (one ECS
task state change), ``reconciliation`` (the scheduled repair), over ``plane_base`` (the adapters
and the decisions they share). ``ControlPlane`` is all of them; the handlers parse events and
call it.
"""

from __future__ import annotations

from .reconciliation import Reconciliation
from .results import ReconcileReport
from .run_requests import RunRequests, _Plan, plan_run

__all__ = ["ControlPlane", "ReconcileReport", "_Plan", "plan_run"]


class ControlPlane(RunRequests, Reconciliation):
    """Run requests, ECS task changes and reconciliation, over one set of adapters."""
