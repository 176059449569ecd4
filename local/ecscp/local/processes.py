"""The local stack's child processes: stopping them as ECS stops a container, and their exit
when the parent goes away.

One home for every process helper of the local stack, the ECS host, local Airflow and the
benchmarks: SIGTERM, a grace period, SIGKILL; whole trees, since a container or an Airflow
service starts children of its own. Around them: the environment a child starts from (and a
temporary change to this process's own), waiting for what a child does while checking it still
runs, the tail of its log for an error message. The parent's side too: SIGTERM and Ctrl-C
unwind it like ``KeyboardInterrupt``, and are held back while it stops its children.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

import psutil

T = TypeVar("T")

#: Host variables a child keeps (a Lambda or ECS container does not inherit the rest).
HOST_ENV = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER")


def host_environment() -> dict[str, str]:
    """The ``HOST_ENV`` variables this process has, to start a child's environment from."""
    return {name: os.environ[name] for name in HOST_ENV if name in os.environ}


@contextlib.contextmanager
def temporary_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment; put back what was there before on exit."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def is_alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie, exited and not yet reaped, does not)."""
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    return False


def terminate_tree(pid: int, grace_seconds: float) -> None:
    """SIGTERM a process and its descendants; SIGKILL what is left after the grace."""
    members = process_tree(pid)
    if members:
        terminate(members, grace_seconds, reap_seconds=5)


def signal_group(pid: int, signum: int = signal.SIGTERM) -> None:
    """Send ``signum`` to a child's process group (as ``docker stop`` signals a container's PID 1)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signum)


def kill_tree(pid: int, timeout: float) -> None:
    """SIGKILL a process and its descendants at once (no clean shutdown) and reap them."""
    tree = process_tree(pid)
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(tree, timeout=timeout)


def stop_child(process: subprocess.Popen[bytes] | None, grace_seconds: float = 5) -> None:
    """Stop a child that watches its stdin (:func:`exit_when_parent_goes`): close the pipe, then
    end its tree if it is still running."""
    if process is None:
        return
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    if process.poll() is None:
        terminate_tree(process.pid, grace_seconds=grace_seconds)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_seconds)


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.5,
    check: Callable[[], None] | None = None,
) -> T:
    """Poll ``condition`` every ``interval`` seconds until it returns something truthy; return that.

    ``check`` runs before each poll, to raise at once when a process the wait depends on has
    stopped (every later poll would only time out). After ``timeout``: TimeoutError naming ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a child's log file, to say why it stopped ("" when unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def exit_when_parent_goes(stream: IO[bytes]) -> None:
    """Block until ``stream`` (the child's stdin, a pipe from the parent) reaches end of file,
    then exit at once: the parent went away, so must the child. Run it in a daemon thread."""
    while stream.read(1024):
        pass
    os._exit(0)


_INTERRUPTS = (signal.SIGINT, signal.SIGTERM)


def send_sigterm_as_interrupt() -> None:
    """Make SIGTERM (and SIGINT, even when a shell started us with it ignored) unwind like
    Ctrl-C, so ``finally`` blocks stop the processes."""

    def _raise(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in _INTERRUPTS:
        signal.signal(signum, _raise)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM while cleaning up, so a second interrupt cannot leave processes
    behind; an interrupt that came in meanwhile is raised once the cleanup is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in _INTERRUPTS}
    for signum in _INTERRUPTS:
        signal.signal(signum, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise KeyboardInterrupt(f"signal {received[0]}")


def marked_processes(variable: str, marker: str) -> list[psutil.Process]:
    """Processes of this user (but this one) whose environment carries ``variable=marker``."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(variable) == marker:
                found.append(proc)
    return found
