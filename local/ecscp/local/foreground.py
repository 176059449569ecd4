"""``ecscp local up`` in the foreground: start the stack, say how to use it, run until a signal.

The stack itself (:class:`ecscp.local.stack.LocalStack`) knows nothing of terminals or signals;
this is the one place that turns Ctrl-C and SIGTERM into an orderly stop, prints the Airflow
environment, and writes and removes the user-level discovery file the operator commands read.
"""

from __future__ import annotations

import shlex
import signal
import time
from typing import Any

from rich.console import Console

from .cloudformation import DeployError
from .discovery import remove_if_ours, user_discovery_path
from .errors import LocalStackError
from .stack import LocalStack, LocalStackConfig


def run_forever(config: LocalStackConfig, console: Console | None = None) -> bool:
    """Start the stack, print the Airflow environment to use, and run until Ctrl-C or SIGTERM.

    False (after saying why) when the stack refused to start: parameters that the template's
    rules, the functions' settings or the readiness check refuse.
    """
    out = console or Console()
    stack = LocalStack(config)

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must stop the stack all the same.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            with out.status("Starting the local stack (moto, template, functions, ECS host)..."):
                stack.start()
        except (LocalStackError, DeployError) as exc:
            out.print(f"[bold red]The local stack did not start:[/] {exc}", highlight=False)
            return False
        if stack.readiness is not None and not stack.readiness.ready:
            out.print(f"[bold red]Started anyway; it cannot run tasks:[/] {stack.readiness.summary()}")
        user_file = user_discovery_path()
        stack.discovery.write(user_file)
        out.print(f"[bold green]Local stack up[/] at {stack.endpoint_url} (stack {config.stack_name})")
        out.print(f"Operator commands find it with --local (see {user_file})")
        out.print(f"Logs: {stack.logs_dir}   Task logs: {config.state_dir / 'tasks'}")
        out.print("Use it from an Airflow scheduler with:")
        for name, value in stack.airflow_environment().items():
            out.print(f"export {name}={shlex.quote(value)}", markup=False, highlight=False, soft_wrap=True)
        out.print("Press Ctrl-C to stop.")
        while True:
            stack.check()
            time.sleep(1)
    except KeyboardInterrupt:
        out.print("Stopping the local stack...")
    finally:
        if stack.endpoint_url:
            remove_if_ours(user_discovery_path(), stack.discovery)
        stack.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    return True
