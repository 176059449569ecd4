"""The local AWS endpoint: moto in server mode, in its own process, patched where it differs from AWS.

Run as ``python -m ecscp.local.moto_server --port N``. It prints one JSON line
``{"port": N}`` on stdout when it serves, and exits when its stdin reaches end of file (the
parent went away) or on SIGTERM/SIGINT, so it can never outlive the stack that started it.

Before it serves, :func:`configure_moto` applies every patch of :mod:`ecscp.local.moto_patches`
(one module per moto behaviour, each saying what moto does and what AWS does instead), and the
server adds the local ECS host's task-update endpoint
(:func:`ecscp.local.moto_patches.ecs_task_lifecycle.with_task_update_endpoint`).
"""

# moto is imported lazily: it reads its environment on import.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from .moto_patches import apply_all
from .moto_patches.ecs_task_lifecycle import with_task_update_endpoint
from .processes import exit_when_parent_goes


def build_app() -> Callable[..., Iterable[bytes]]:
    """moto's WSGI application, plus the local ECS host's private task-update endpoint."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return with_task_update_endpoint(DomainDispatcherApplication(create_backend_app))


def configure_moto() -> None:
    """Everything that must hold before the first request: Docker-less Lambda and the patches."""
    from moto.core.config import default_user_config

    default_user_config["lambda"] = {"use_docker": False}
    apply_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")  # moto warns about every CloudFormation type it skips
    configure_moto()

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    server = make_server(args.host, args.port, build_app(), threaded=True, request_handler=MotoRequestHandler)

    def stop(signum: int, frame: Any) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=exit_when_parent_goes, args=(sys.stdin.buffer,), daemon=True).start()
    sys.stdout.write(json.dumps({"port": server.server_port}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
