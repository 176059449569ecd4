"""Where a running local stack can be found: a small file that ``ecscp --local`` commands read.

The stack writes it into its state directory as it starts (``local-stack.json``) and removes it
as it stops; ``ecscp local up`` also writes it at a user-level path (:func:`user_discovery_path`),
so ``ecscp status --local`` finds the stack without ``--state-dir``. The file names the endpoint,
the stack, the region and the process that serves it, so a reader can tell a stack that is gone
(its process ended, or it no longer answers) from one that is up.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

DISCOVERY_FILE = "local-stack.json"


class LocalStackDiscovery(BaseModel):
    """How to reach one running local stack."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint_url: str
    stack_name: str
    region: str
    state_dir: Path
    #: The process that runs the stack (it dies with it).
    pid: int

    def write(self, path: Path) -> None:
        """Write the file whole (a reader never sees half of it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(self.model_dump_json(indent=1))
        partial.replace(path)

    @classmethod
    def read(cls, path: Path) -> LocalStackDiscovery | None:
        """The file's content; None when there is none."""
        try:
            return cls.model_validate_json(path.read_text())
        except FileNotFoundError:
            return None


def user_discovery_path() -> Path:
    """The user-level file of the last ``ecscp local up`` (``$XDG_STATE_HOME/ecscp/``)."""
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "ecscp" / DISCOVERY_FILE


def remove_if_ours(path: Path, discovery: LocalStackDiscovery) -> None:
    """Remove the file unless another stack has replaced it since (a second ``local up``)."""
    if LocalStackDiscovery.read(path) == discovery:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
