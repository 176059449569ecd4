"""``python -m ecscp.local``: run the local stack until Ctrl-C and print how to use it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .foreground import run_forever
from .stack import LocalStackConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ecscp.local", description=__doc__)
    parser.add_argument("--project-root", type=Path, default=Path.cwd(), help="where template.yaml is")
    parser.add_argument("--state-dir", type=Path, default=Path(".ecscp-local"), help="logs and task scratch")
    parser.add_argument("--port", type=int, default=0, help="moto port (0: any free port)")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stack-name", default="ecscp-local")
    parser.add_argument("--max-run-task-attempts", type=int, default=3)
    parser.add_argument("--max-concurrent-tasks", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ok = run_forever(
        LocalStackConfig(
            project_root=args.project_root.resolve(),
            state_dir=args.state_dir.resolve(),
            port=args.port,
            region=args.region,
            stack_name=args.stack_name,
            max_run_task_attempts=args.max_run_task_attempts,
            max_concurrent_tasks=args.max_concurrent_tasks,
        )
    )
    if not ok:
        raise SystemExit(2)


if __name__ == "__main__":
    main()
