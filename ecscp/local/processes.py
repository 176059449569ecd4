"""Stopping local processes the way ECS stops a container: SIGTERM, a grace period, SIGKILL."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import psutil


def terminate(
    processes: Sequence[psutil.Process], grace_seconds: float, reap_seconds: float | None = None
) -> None:
    """SIGTERM, wait up to ``grace_seconds``, then SIGKILL whatever is left and reap it."""
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace_seconds)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace_seconds if reap_seconds is None else reap_seconds)
