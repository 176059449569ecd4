"""The local AWS endpoint: moto in server mode, in its own process, patched where it differs from AWS.

Run as ``python -m ecscp.local.moto_server --port N``. It prints one JSON line
``{"port": N}`` on stdout when it serves, and exits when its stdin reaches end of file (the
parent went away) or on SIGTERM/SIGINT, so it can never outlive the stack that started it.
:func:`start_server` starts it that way (the local stack and the benchmarks both do), and
:func:`ecscp.local.processes.stop_child` stops it.

Before it serves, :func:`configure_moto` applies every patch of :mod:`ecscp.local.moto_patches`
(one module per moto behaviour, each saying what moto does and what AWS does instead), and the
server adds the private paths of the local ECS (:func:`ecscp.local.ecs.backend.with_host_endpoints`):
the notices the ECS host long-polls and the task state records it posts, and
:data:`REQUESTS_PATH`, how many requests it has answered by operation (the benchmarks' calls
per task; no AWS service has it).

It is served by waitress, not by werkzeug's development server as moto's own ``moto_server``
serves it: connections are kept alive (botocore and the ECS host reuse theirs; werkzeug's server
closes every one, and cannot keep one open since it discards whatever follows a response), and
requests run on a fixed pool of :data:`THREADS` threads instead of a new thread per connection.
A waiting long-poll holds a thread (SQS ``ReceiveMessage`` up to 20 s, the host's notices up to
5 s), so the pool is sized well above the stack's pollers. waitress answers ``Expect:
100-continue`` (botocore's S3 uploads) with ``100 Continue`` and decodes chunked bodies. Departs
from moto's own server: a request header whose name contains an underscore is dropped
(waitress's rule, and werkzeug's; moto's handler keeps them for S3 metadata keys, which the
stack never sends).
"""

# moto is imported lazily: it reads its environment on import.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any

from .ecs.backend import with_host_endpoints
from .moto_patches import apply_all
from .processes import exit_when_parent_goes, stop_child

#: ``GET`` it: ``{operation: requests answered}`` since the server started. An operation is the
#: request's ``X-Amz-Target`` (``DynamoDB_20120810.UpdateItem``), else its method and path's
#: first segment (``POST /``, for the query protocol's services and S3 and Lambda's REST paths).
REQUESTS_PATH = "/_ecscp/requests"


def build_app() -> Callable[..., Iterable[bytes]]:
    """moto's WSGI application, plus the local ECS's private paths for the host."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return with_request_counts(with_host_endpoints(DomainDispatcherApplication(create_backend_app)))


def with_request_counts(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """``app`` counting the requests it answers by operation, and serving :data:`REQUESTS_PATH`."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == REQUESTS_PATH:
            with lock:
                body = json.dumps(dict(counts)).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", headers)
            return [body]
        method = environ.get("REQUEST_METHOD", "")
        operation = environ.get("HTTP_X_AMZ_TARGET") or _path_operation(method, path)
        with lock:
            counts[operation] += 1
        return app(environ, start_response)

    return counted


def _path_operation(method: str, path: str) -> str:
    if path.startswith("/_ecscp/"):
        return f"{method} {path}"
    return f"{method} /{path.split('/')[1]}"


#: Request threads. A waiting long-poll holds one; the stack has about a dozen pollers.
THREADS = 32


def configure_moto(apply_patches: Callable[[], None] = apply_all) -> None:
    """Everything that must hold before the first request: Docker-less Lambda and the patches."""
    from moto.core.config import default_user_config

    default_user_config["lambda"] = {"use_docker": False}
    apply_patches()


class MotoStartError(RuntimeError):
    """The moto server process did not start serving."""


def start_server(
    stderr: IO[bytes] | int,
    *,
    port: int = 0,
    module: str = "ecscp.local.moto_server",
    args: Sequence[str] = (),
    timeout: float = 120.0,
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m <module> --port <port> <args>`` (this module's :func:`main`, or a module
    that calls it with other patches) and wait until it serves; the process and its endpoint URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--port", str(port), *args],
        stdin=subprocess.PIPE,  # closing it stops the server (exit_when_parent_goes)
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=None if env is None else dict(env),
        start_new_session=True,  # Ctrl-C reaches the parent, which stops its children in order
    )
    assert process.stdout is not None
    line = _read_line(process.stdout, timeout=timeout)
    try:
        port = int(json.loads(line)["port"])
    except (ValueError, KeyError, TypeError) as exc:
        stop_child(process)
        raise MotoStartError(f"moto did not start (exit code {process.poll()})") from exc
    return process, f"http://127.0.0.1:{port}"


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else b""


def main(argv: list[str] | None = None, apply_patches: Callable[[], None] = apply_all) -> None:
    """Serve until stdin closes or a signal comes, with ``apply_patches`` applied first."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth" on every burst
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")  # moto warns about every CloudFormation type it skips
    configure_moto(apply_patches)

    from waitress.server import create_server

    server = create_server(
        build_app(),
        host=args.host,
        port=args.port,
        threads=THREADS,
        connection_limit=1000,  # each worker process keeps a pool of connections open
        channel_timeout=120,  # an idle connection is closed after this; clients open a new one
    )

    def stop(signum: int, frame: Any) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Thread(target=exit_when_parent_goes, args=(sys.stdin.buffer,), daemon=True).start()
    sys.stdout.write(json.dumps({"port": server.effective_port}) + "\n")
    sys.stdout.flush()
    server.run()


if __name__ == "__main__":
    main()
