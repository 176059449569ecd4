"""How ``--local`` finds the running local stack, and tells one that is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecscp.local.discovery import DISCOVERY_FILE, LocalStackDiscovery, remove_if_ours, user_discovery_path
from ecscp.operations.stack import OperationsError, find_local


def discovery(tmp_path: Path, pid: int | None = None) -> LocalStackDiscovery:
    return LocalStackDiscovery(
        endpoint_url="http://127.0.0.1:1",
        stack_name="ecscp-local",
        region="us-east-1",
        state_dir=tmp_path,
        pid=os.getpid() if pid is None else pid,
    )


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_file_reads_back_as_written(tmp_path: Path) -> None:
    written = discovery(tmp_path)
    written.write(tmp_path / DISCOVERY_FILE)
    assert LocalStackDiscovery.read(tmp_path / DISCOVERY_FILE) == written


def test_a_stack_removes_only_its_own_file(tmp_path: Path) -> None:
    # GIVEN a second stack that replaced the first one's file
    path = tmp_path / DISCOVERY_FILE
    first, second = discovery(tmp_path), discovery(tmp_path / "other")
    second.write(path)

    # WHEN the first stops, then the second
    remove_if_ours(path, first)
    assert path.exists()
    remove_if_ours(path, second)

    # THEN the file went with the stack that wrote it
    assert not path.exists()


def test_the_user_level_file_follows_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert user_discovery_path() == tmp_path / "ecscp" / DISCOVERY_FILE


def test_no_file_means_no_local_stack_is_running(tmp_path: Path) -> None:
    with pytest.raises(OperationsError, match=r"no local stack is running .*`ecscp local up`"):
        find_local(tmp_path)


def test_a_file_whose_process_ended_is_a_stack_that_is_gone(tmp_path: Path) -> None:
    discovery(tmp_path, pid=dead_pid()).write(tmp_path / DISCOVERY_FILE)
    with pytest.raises(OperationsError, match="is gone"):
        find_local(tmp_path)


def test_a_file_that_is_not_one_says_so(tmp_path: Path) -> None:
    (tmp_path / DISCOVERY_FILE).write_text("{}")
    with pytest.raises(OperationsError, match="not a local stack's discovery file"):
        find_local(tmp_path)
