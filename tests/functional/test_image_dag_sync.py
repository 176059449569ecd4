"""The task image's entrypoint on moto's S3: the DAG folder becomes a copy of the prefix, only inside
itself, and a sync that cannot be done stops the container with the URI and the task role named."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import boto3
import pytest
from botocore.exceptions import ProfileNotFound
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from image import entrypoint
from image.entrypoint import DagSyncError, S3Location, parse_s3_uri, sync_dags
from tests.support.aws import REGION

BUCKET = "airflow-dags"
DAGS = S3Location(BUCKET, "dags/")


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3, key: str, body: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def files_below(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


class Exec:
    """Stands in for os.execv: records what the container would have become."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, path: str, argv: list[str]) -> None:
        self.calls.append((path, argv))


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix"),
    [
        ("s3://airflow-dags", "airflow-dags", ""),
        ("s3://airflow-dags/", "airflow-dags", ""),
        ("s3://airflow-dags/dags", "airflow-dags", "dags/"),
        ("s3://airflow-dags/dags/", "airflow-dags", "dags/"),
        ("s3://airflow-dags/team/a/dags", "airflow-dags", "team/a/dags/"),
    ],
)
def test_an_s3_uri_names_a_bucket_and_a_folder_prefix(uri: str, bucket: str, prefix: str) -> None:
    assert parse_s3_uri(uri) == S3Location(bucket, prefix)


@pytest.mark.parametrize(
    "uri",
    [
        "https://airflow-dags/dags",
        "airflow-dags/dags",
        "s3://",
        "s3:///dags",
        "s3://airflow dags/dags",
        "s3://airflow-dags//x",
    ],
)
def test_what_is_no_s3_folder_uri_is_refused(uri: str) -> None:
    with pytest.raises(DagSyncError, match="DAGS_S3_URI"):
        parse_s3_uri(uri)


def test_the_prefix_is_copied_with_its_relative_paths_and_nothing_beside_it(s3, tmp_path: Path) -> None:
    # GIVEN DAGs under dags/, a folder marker, and keys beside the prefix (dags-old/ shares its start)
    put(s3, "dags/etl.py", "etl")
    put(s3, "dags/team/report.py", "report")
    put(s3, "dags/team/", "")
    put(s3, "dags-old/etl.py", "old")
    put(s3, "notes.txt", "notes")

    # WHEN the URI without a trailing slash is synced
    result = sync_dags(s3, parse_s3_uri(f"s3://{BUCKET}/dags"), tmp_path / "dags")

    # THEN the folder holds exactly the prefix's files, at their paths below it
    assert files_below(tmp_path / "dags") == {"etl.py": "etl", "team/report.py": "report"}
    assert result.downloaded == ["etl.py", "team/report.py"]
    assert result.refused == []
    # group-writable, as the base image makes its files, for any UID of group 0
    assert {(tmp_path / "dags" / p).stat().st_mode & 0o777 for p in result.downloaded} == {0o664}


def test_a_second_sync_downloads_only_what_changed(s3, tmp_path: Path) -> None:
    # GIVEN a synced folder
    put(s3, "dags/etl.py", "etl")
    put(s3, "dags/report.py", "report")
    sync_dags(s3, DAGS, tmp_path)

    # WHEN the container restarts with nothing changed, then once more after one DAG changed
    restarted = sync_dags(s3, DAGS, tmp_path)
    put(s3, "dags/report.py", "report, version 2")
    changed = sync_dags(s3, DAGS, tmp_path)

    # THEN the restart downloads nothing, and the change brings only the changed file
    assert restarted.downloaded == []
    assert restarted.unchanged == ["etl.py", "report.py"]
    assert changed.downloaded == ["report.py"]
    assert files_below(tmp_path) == {"etl.py": "etl", "report.py": "report, version 2"}


def test_what_s3_no_longer_has_is_removed_only_inside_the_folder(s3, tmp_path: Path) -> None:
    # GIVEN a DAG folder with files and folders S3 no longer has, and a file beside the folder
    folder = tmp_path / "dags"
    (folder / "retired" / "deep").mkdir(parents=True)
    (folder / "retired" / "deep" / "old.py").write_text("old")
    (folder / "stale.py").write_text("stale")
    (tmp_path / "beside.py").write_text("not ours")
    put(s3, "dags/etl.py", "etl")

    # WHEN it is synced
    result = sync_dags(s3, DAGS, folder)

    # THEN only the prefix's file is left in it, and nothing outside it changed
    assert files_below(folder) == {"etl.py": "etl"}
    assert not (folder / "retired").exists()
    assert sorted(result.removed) == ["retired/", "stale.py"]
    assert (tmp_path / "beside.py").read_text() == "not ours"


@pytest.mark.parametrize(
    "key", ["dags/../escape.py", "dags/team/../../escape.py", "dags//escape.py", "dags/./escape.py"]
)
def test_a_key_that_would_land_outside_the_folder_is_refused(
    s3, tmp_path: Path, key: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a good DAG and a key naming a path outside the folder (or an ambiguous one)
    put(s3, "dags/etl.py", "etl")
    put(s3, key, "escaped")
    folder = tmp_path / "deploy" / "dags"

    # WHEN the prefix is synced
    with caplog.at_level(logging.WARNING, logger="dag-sync"):
        result = sync_dags(s3, DAGS, folder)

    # THEN that key is skipped with a warning naming it, and nothing is written outside the folder
    assert result.refused == [key]
    assert key in caplog.text
    assert files_below(tmp_path) == {"deploy/dags/etl.py": "etl"}


def test_a_key_with_a_leading_slash_is_refused_under_an_empty_prefix(s3, tmp_path: Path) -> None:
    put(s3, "/etc/escape.py", "escaped")
    put(s3, "etl.py", "etl")

    result = sync_dags(s3, S3Location(BUCKET, ""), tmp_path / "dags")

    assert result.refused == ["/etc/escape.py"]
    assert files_below(tmp_path) == {"dags/etl.py": "etl"}


def test_a_symbolic_link_in_the_folder_is_removed_not_followed(s3, tmp_path: Path) -> None:
    # GIVEN a DAG folder whose team/ and etl.py are links to places outside it, the linked file
    # looking like the object (same size and time)
    put(s3, "dags/etl.py", "etl")
    put(s3, "dags/team/report.py", "report")
    modified = s3.head_object(Bucket=BUCKET, Key="dags/etl.py")["LastModified"].timestamp()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "etl.py").write_text("ETL")
    os.utime(outside / "etl.py", (modified, modified))
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "team").symlink_to(outside, target_is_directory=True)
    (folder / "etl.py").symlink_to(outside / "etl.py")

    # WHEN it is synced
    sync_dags(s3, DAGS, folder)

    # THEN the folder holds real files and folders, and the outside is as it was
    assert not (folder / "team").is_symlink()
    assert not (folder / "etl.py").is_symlink()
    assert files_below(folder) == {"etl.py": "etl", "team/report.py": "report"}
    assert files_below(outside) == {"etl.py": "ETL"}


def test_the_entrypoint_syncs_the_configured_dag_folder_then_runs_the_command_through_the_base_one(
    s3, tmp_path: Path
) -> None:
    # GIVEN a container whose task definition points DAGS_S3_URI and the DAG folder somewhere
    put(s3, "dags/etl.py", "etl")
    env = {"DAGS_S3_URI": f"s3://{BUCKET}/dags/", "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags")}
    become = Exec()
    command = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"]

    # WHEN the container starts with the control plane's command
    main = entrypoint.main(command, env, s3_client=lambda: s3, exec_command=become)

    # THEN the DAGs are there first, and the command goes to the base image's entrypoint as given
    assert main == 0
    assert files_below(tmp_path / "dags") == {"etl.py": "etl"}
    assert become.calls == [("/entrypoint", ["/entrypoint", *command])]


def test_without_an_s3_uri_the_entrypoint_touches_no_aws_and_runs_the_command() -> None:
    become = Exec()

    def no_s3() -> NoReturn:
        raise AssertionError("no S3 client without DAGS_S3_URI")

    main = entrypoint.main(["version"], {"DAGS_S3_URI": ""}, s3_client=no_s3, exec_command=become)

    assert main == 0
    assert become.calls == [("/entrypoint", ["/entrypoint", "version"])]


def test_a_prefix_with_no_file_warns_that_the_dag_folder_is_empty(
    s3, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    become = Exec()
    env = {"DAGS_S3_URI": f"s3://{BUCKET}/typo", "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}

    with caplog.at_level(logging.INFO, logger="dag-sync"):
        main = entrypoint.main(["version"], env, s3_client=lambda: s3, exec_command=become)

    assert main == 0
    assert f"s3://{BUCKET}/typo/ holds no file: the DAG folder {tmp_path} is empty" in caplog.text
    assert f"s3://{BUCKET}/typo/ -> {tmp_path}: 0 downloaded, 0 unchanged" in caplog.text


def test_a_missing_bucket_stops_the_container_before_the_command(
    s3, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    become = Exec()
    env = {"DAGS_S3_URI": "s3://no-such-bucket/dags", "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}

    main = entrypoint.main(["version"], env, s3_client=lambda: s3, exec_command=become)

    assert main == 1
    assert become.calls == []
    assert "s3://no-such-bucket/dags/" in caplog.text
    assert "bucket 'no-such-bucket' does not exist (the task definition's DAGS_S3_URI" in caplog.text


def test_an_unparsable_uri_stops_the_container_with_the_variable_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    become = Exec()

    main = entrypoint.main(["version"], {"DAGS_S3_URI": "airflow-dags/dags"}, exec_command=become)

    assert main == 1
    assert become.calls == []
    assert "DAGS_S3_URI='airflow-dags/dags' is not an S3 URI" in caplog.text


def client_of_a_new_identity(policy: Mapping[str, object] | None = None) -> Any:
    """An S3 client whose credentials have only ``policy``: what a task role would be given."""
    iam = boto3.client("iam", region_name=REGION)
    iam.create_user(UserName="airflow-task")
    if policy is not None:
        iam.put_user_policy(UserName="airflow-task", PolicyName="dags", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="airflow-task")["AccessKey"]
    return boto3.client(
        "s3",
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )


# moto checks IAM only after the set-up calls: bucket, user, key (and the user's policy, if any).
@set_initial_no_auth_action_count(3)
@mock_aws
def test_a_task_role_that_may_not_read_the_bucket_is_named_in_the_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a bucket and credentials with no S3 permission (a task role without its policy)
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    denied = client_of_a_new_identity()
    become = Exec()
    env = {"DAGS_S3_URI": f"s3://{BUCKET}/dags", "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path)}

    # WHEN the container starts
    main = entrypoint.main(["version"], env, s3_client=lambda: denied, exec_command=become)

    # THEN it stops before the command, naming the URI, the task role and the permissions it lacks
    assert main == 1
    assert become.calls == []
    assert f"s3://{BUCKET}/dags/: access denied listing the prefix" in caplog.text
    assert "task role (taskRoleArn) needs s3:ListBucket" in caplog.text


@set_initial_no_auth_action_count(5)
@mock_aws
def test_a_role_that_may_list_but_not_read_leaves_no_partial_file(tmp_path: Path) -> None:
    # GIVEN a DAG and credentials that may list the bucket but not read its objects
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    put(s3, "dags/etl.py", "etl")
    list_only = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}],
    }
    client = client_of_a_new_identity(list_only)

    # WHEN the prefix is synced
    with pytest.raises(DagSyncError, match=r"access denied reading 'dags/etl.py': .*s3:GetObject"):
        sync_dags(client, DAGS, tmp_path)

    # THEN the folder holds no half-written file
    assert list(tmp_path.iterdir()) == []


def test_no_credentials_at_all_name_the_task_role(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # GIVEN a container with no credentials anywhere (no task role), and no metadata service to ask
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    client = boto3.session.Session().client("s3", region_name=REGION)

    # WHEN the sync lists the prefix (botocore refuses to sign before sending anything)
    with pytest.raises(DagSyncError, match=r"s3://airflow-dags/dags/: no AWS credentials: .*task role"):
        sync_dags(client, DAGS, tmp_path / "dags")


@pytest.mark.parametrize("dag_folder", ["home", "."])
def test_a_dag_folder_that_holds_airflow_home_is_refused_before_anything_is_deleted(
    s3, tmp_path: Path, caplog: pytest.LogCaptureFixture, dag_folder: str
) -> None:
    # GIVEN a task definition whose DAG folder is Airflow's home (or above it), which holds more
    home = tmp_path / "home"
    (home / "logs").mkdir(parents=True)
    (home / "airflow.cfg").write_text("[core]\n")
    put(s3, "dags/etl.py", "etl")
    env = {
        "DAGS_S3_URI": f"s3://{BUCKET}/dags/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / dag_folder),
        "AIRFLOW_HOME": str(home),
    }
    become = Exec()

    # WHEN the container starts
    status = entrypoint.main(["version"], env, s3_client=lambda: s3, exec_command=become)

    # THEN it stops before the command, naming the variable, and deleted nothing
    assert status == 1
    assert become.calls == []
    assert "AIRFLOW__CORE__DAGS_FOLDER" in caplog.text
    assert "a folder of their own" in caplog.text
    assert (home / "airflow.cfg").read_text() == "[core]\n"
    assert (home / "logs").is_dir()


def test_an_s3_client_that_cannot_be_made_stops_the_container_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a task definition that names an AWS profile the container does not have
    def no_client() -> NoReturn:
        raise ProfileNotFound(profile="dags")

    env = {"DAGS_S3_URI": f"s3://{BUCKET}/dags/", "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags")}
    become = Exec()

    # WHEN the container starts
    status = entrypoint.main(["version"], env, s3_client=no_client, exec_command=become)

    # THEN it stops before the command with a line naming the URI and the reason, not a traceback
    assert status == 1
    assert become.calls == []
    assert f"cannot sync DAGs from s3://{BUCKET}/dags/: no S3 client" in caplog.text
    assert "profile (dags) could not be found" in caplog.text
