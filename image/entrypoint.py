"""The task image's entrypoint: the DAGs from S3 first, then the task's command.

The control plane gives each container its command in the RunTask override, as the provider's
executor does; the image runs ``python /opt/ecscp/entrypoint.py <command...>`` (image/Dockerfile).
With ``DAGS_S3_URI`` set, the DAG folder (``AIRFLOW__CORE__DAGS_FOLDER``) is first made a copy of
that S3 prefix; then the command goes to the base image's own ``/entrypoint``, which does what it
does in any apache/airflow container (user and umask set-up, ``airflow ...``, ``python ...``).

It runs on the image's Python alone (3.10 or newer): boto3 comes with the image's Amazon provider,
nothing of this project is installed there.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3_URI_ENV = "DAGS_S3_URI"
DAGS_FOLDER_ENV = "AIRFLOW__CORE__DAGS_FOLDER"
DEFAULT_DAGS_FOLDER = "/opt/airflow/dags"
AIRFLOW_HOME_ENV = "AIRFLOW_HOME"
DEFAULT_AIRFLOW_HOME = "/opt/airflow"
BASE_ENTRYPOINT = "/entrypoint"
#: A download is written under this name first and renamed when complete: a file is whole or absent.
PARTIAL_PREFIX = ".dag-sync-"
#: Read and write for owner and group, as under the base image's umask 0002 (any UID of group 0).
FILE_MODE = 0o664

logger = logging.getLogger("dag-sync")


class DagSyncError(Exception):
    """The DAGs cannot be synced; the message names the URI and what to change."""


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix that is empty or ends with ``/`` (a folder, as ``aws s3 sync``)."""

    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class RemoteFile:
    key: str
    size: int
    modified: float  # epoch seconds (S3 keeps whole seconds)


@dataclass
class SyncResult:
    """What one sync did, by path relative to the DAG folder (refused: by S3 key)."""

    downloaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def parse_s3_uri(uri: str) -> S3Location:
    """``s3://bucket``, ``s3://bucket/prefix`` or ``s3://bucket/prefix/``: the prefix as a folder."""
    scheme, _, rest = uri.strip().partition("://")
    bucket, _, prefix = rest.partition("/")
    if scheme != "s3" or not bucket or any(c.isspace() for c in bucket):
        raise DagSyncError(f"{S3_URI_ENV}={uri!r} is not an S3 URI: expected s3://<bucket>[/<prefix>]")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    if "//" in f"/{prefix}":
        raise DagSyncError(f"{S3_URI_ENV}={uri!r} has an empty folder name in its prefix")
    return S3Location(bucket=bucket, prefix=prefix)


def relative_path(key: str, prefix: str) -> PurePosixPath | None:
    """Where a key lands below the DAG folder; None when it would not land inside it.

    Every part must be a plain name: no ``..``, no ``.``, no empty part (which is what a key
    with a leading ``/`` or ``//`` has), so no key can name a path outside the folder.
    """
    parts = key[len(prefix) :].split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return PurePosixPath(*parts)


def check_dag_folder(folder: Path, airflow_home: Path) -> None:
    """Refuse a DAG folder that holds more than DAGs: the sync deletes what the prefix lacks.

    The root, Airflow's home (its config, its logs) or a folder above it would lose everything
    the S3 prefix does not have.
    """
    resolved, home = folder.resolve(), airflow_home.resolve()
    if resolved == Path(resolved.anchor) or resolved == home or resolved in home.parents:
        raise DagSyncError(
            f"{DAGS_FOLDER_ENV}={str(folder)!r} holds {AIRFLOW_HOME_ENV} ({airflow_home}), or is the root: "
            f"syncing {S3_URI_ENV} there would delete everything in it that the S3 prefix lacks; "
            f"give the DAGs a folder of their own (the image's is {DEFAULT_DAGS_FOLDER})"
        )


def sync_dags(s3: S3Client, location: S3Location, folder: Path) -> SyncResult:
    """Make ``folder`` a copy of the S3 prefix: download what changed, remove what S3 no longer has.

    A file whose size and modification time match its object is kept (as ``aws s3 sync`` does),
    so a restarted container downloads nothing new. Symbolic links in the folder are removed,
    never followed. Keys that would land outside the folder are skipped with a warning.
    """
    result = SyncResult()
    wanted: dict[PurePosixPath, RemoteFile] = {}
    for remote in _list(s3, location):
        path = relative_path(remote.key, location.prefix)
        if path is None:
            logger.warning("skipped %s: key %r would land outside %s", location.uri, remote.key, folder)
            result.refused.append(remote.key)
        else:
            wanted[path] = remote
    try:
        folder.mkdir(parents=True, exist_ok=True)
        result.removed = _prune(folder, set(wanted))
        for path, remote in sorted(wanted.items()):
            target = folder.joinpath(*path.parts)
            if _is_current(target, remote):
                result.unchanged.append(str(path))
            else:
                _download(s3, location, remote, target)
                result.downloaded.append(str(path))
    except OSError as error:
        raise DagSyncError(f"cannot sync DAGs from {location.uri} into {folder}: {error}") from error
    return result


def _list(s3: S3Client, location: S3Location) -> Iterator[RemoteFile]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.prefix)
    try:
        for page in pages:
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):  # a console "folder" marker, not a file
                    yield RemoteFile(item["Key"], item["Size"], item["LastModified"].timestamp())
    except (BotoCoreError, ClientError) as error:
        raise _failure(error, location, "listing the prefix") from error


def _prune(folder: Path, wanted: set[PurePosixPath]) -> list[str]:
    """Remove what is not wanted below ``folder`` (and every symbolic link); never above it."""
    wanted_dirs = {parent for path in wanted for parent in path.parents}
    removed: list[str] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = PurePosixPath(Path(dirpath).relative_to(folder).as_posix())
        for name in list(dirnames):
            path, relative = Path(dirpath, name), here / name
            if path.is_symlink() or relative not in wanted_dirs:
                if path.is_symlink():
                    path.unlink()
                else:
                    shutil.rmtree(path)
                dirnames.remove(name)  # os.walk must not go into what is gone
                removed.append(f"{relative}/")
        for name in filenames:
            path, relative = Path(dirpath, name), here / name
            if path.is_symlink() or relative not in wanted:
                path.unlink()
                removed.append(str(relative))
    return removed


def _is_current(target: Path, remote: RemoteFile) -> bool:
    if not target.is_file():
        return False
    stat = target.stat()
    return stat.st_size == remote.size and int(stat.st_mtime) == int(remote.modified)


def _download(s3: S3Client, location: S3Location, remote: RemoteFile, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                body = s3.get_object(Bucket=location.bucket, Key=remote.key)["Body"]
                shutil.copyfileobj(body, out)
            except (BotoCoreError, ClientError) as error:
                raise _failure(error, location, f"reading {remote.key!r}") from error
        os.chmod(partial, FILE_MODE)
        os.utime(partial, (remote.modified, remote.modified))
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _failure(error: Exception, location: S3Location, action: str) -> DagSyncError:
    """The message a task's log shows: the URI, what failed, and what to change."""
    role = "the ECS task definition's task role (taskRoleArn)"
    if isinstance(error, NoCredentialsError):
        return DagSyncError(
            f"cannot sync DAGs from {location.uri}: no AWS credentials: {role} gives them to the container"
        )
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket":
            return DagSyncError(
                f"cannot sync DAGs from {location.uri}: bucket {location.bucket!r} does not exist "
                f"(the task definition's {S3_URI_ENV} names it)"
            )
        if code == "AccessDenied":  # the task role lacks a permission (or has none)
            return DagSyncError(
                f"cannot sync DAGs from {location.uri}: access denied {action}: {role} needs "
                f"s3:ListBucket on arn:aws:s3:::{location.bucket} and s3:GetObject on "
                f"arn:aws:s3:::{location.bucket}/{location.prefix}*"
            )
    return DagSyncError(f"cannot sync DAGs from {location.uri}: {action} failed: {error}")


def _client(s3_client: Callable[[], S3Client], location: S3Location) -> S3Client:
    try:
        return s3_client()
    except BotoCoreError as error:  # a profile or endpoint of the environment that does not resolve
        raise DagSyncError(f"cannot sync DAGs from {location.uri}: no S3 client: {error}") from error


def _s3_client() -> S3Client:
    # Imported here: a container without DAGS_S3_URI never pays for importing boto3.
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    return boto3.client("s3", config=Config(retries={"mode": "standard"}))


def main(
    argv: Sequence[str],
    environ: Mapping[str, str],
    s3_client: Callable[[], S3Client] = _s3_client,
    exec_command: Callable[[str, list[str]], object] = os.execv,
) -> int:
    """Sync the DAGs when a URI is set, then become the base image's entrypoint with ``argv``.

    Returns only when the sync failed (1), or when ``exec_command`` returns (in tests).
    """
    uri = environ.get(S3_URI_ENV, "").strip()
    if uri:
        folder = Path(environ.get(DAGS_FOLDER_ENV) or DEFAULT_DAGS_FOLDER)
        try:
            location = parse_s3_uri(uri)
            check_dag_folder(folder, Path(environ.get(AIRFLOW_HOME_ENV) or DEFAULT_AIRFLOW_HOME))
            result = sync_dags(_client(s3_client, location), location, folder)
        except DagSyncError as error:
            logger.error("%s", error)  # the message says it all: no traceback
            return 1
        logger.info(
            "%s -> %s: %d downloaded, %d unchanged, %d removed, %d refused",
            location.uri,
            folder,
            len(result.downloaded),
            len(result.unchanged),
            len(result.removed),
            len(result.refused),
        )
        if not (result.downloaded or result.unchanged):
            logger.warning("%s holds no file: the DAG folder %s is empty", location.uri, folder)
    exec_command(BASE_ENTRYPOINT, [BASE_ENTRYPOINT, *argv])
    return 0


if __name__ == "__main__":
    # As the base image's entrypoint does: what the sync writes stays writable for the group 0
    # that any UID the task definition picks runs with.
    os.umask(0o002)
    logging.basicConfig(level=logging.INFO, format="dag-sync: %(levelname)s: %(message)s")
    sys.exit(main(sys.argv[1:], os.environ))
