"""The production wheel carries the executor and the shared package only; the local stack, the
demo and the ``ecscp`` CLI are a distribution of their own, installed by the ``[local]`` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(source: Path, out: Path) -> zipfile.ZipFile:
    # No build isolation: the venv's setuptools builds it, with no index needed. setuptools
    # builds in the source tree: leave it as it was.
    leftover = source / "build"
    existed = leftover.exists()
    subprocess.run(
        [
            sys.executable,
            "-m",
            *("pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"),
            "--wheel-dir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    if not existed:
        shutil.rmtree(leftover, ignore_errors=True)
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def _metadata(wheel: zipfile.ZipFile, name: str) -> str:
    (path,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(path).decode()


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _build_wheel(ROOT, tmp_path_factory.mktemp("production"))


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _build_wheel(ROOT / "local", tmp_path_factory.mktemp("local"))


def _top_level(wheel: zipfile.ZipFile) -> set[str]:
    return {
        name.split("/", 1)[0] for name in wheel.namelist() if not name.split("/", 1)[0].endswith(".dist-info")
    }


def test_production_wheel_holds_only_the_executor_and_the_shared_package(production: zipfile.ZipFile) -> None:
    assert _top_level(production) == {"ecs_control_plane", "executor_client"}
    names = production.namelist()
    assert "executor_client/executor.py" in names
    assert "ecs_control_plane/contract.py" in names
    assert not [n for n in names if "moto" in n or n.startswith("ecscp")]


def test_production_wheel_has_no_cli_and_keeps_the_airflow_provider_entry_point(
    production: zipfile.ZipFile,
) -> None:
    entry_points = _metadata(production, "entry_points.txt")
    assert "[console_scripts]" not in entry_points
    assert "provider_info = executor_client.provider:get_provider_info" in entry_points


def test_production_install_needs_no_simulator_and_the_local_extra_brings_it(
    production: zipfile.ZipFile,
) -> None:
    metadata = Parser().parsestr(_metadata(production, "METADATA"))
    requires = metadata.get_all("Requires-Dist") or []
    unconditional = [r for r in requires if "extra ==" not in r]
    assert not [
        r for r in unconditional if r.split()[0].lower().startswith(("moto", "aws-sam-translator", "typer"))
    ]
    local_extra = [r for r in requires if 'extra == "local"' in r]
    assert local_extra, requires
    assert local_extra[0].startswith("airflow-ecs-control-plane-local==")
    assert "local" in (metadata.get_all("Provides-Extra") or [])


def test_local_distribution_carries_the_stack_its_moto_patches_the_demo_dags_and_the_cli(
    local: zipfile.ZipFile,
) -> None:
    names = local.namelist()
    assert _top_level(local) == {"ecscp"}
    assert "ecscp/local/stack.py" in names
    assert "ecscp/operations/doctor.py" in names
    assert "ecscp/local/moto_patches/ecs_stop_task.py" in names
    assert any(n.startswith("ecscp/example_dags/") and n.endswith(".py") for n in names)
    assert "ecscp = ecscp.cli:app" in _metadata(local, "entry_points.txt")
    requires = Parser().parsestr(_metadata(local, "METADATA")).get_all("Requires-Dist") or []
    assert any(r.startswith("moto[server]") for r in requires)
    assert any(r.startswith("airflow-ecs-control-plane[airflow]==") for r in requires)
