"""``sam package``, locally: each function's and layer's code directory zipped into moto's S3.

The template's local ``CodeUri``/``ContentUri`` paths are replaced by the S3 locations, as
``sam package`` (``aws cloudformation package``) leaves them for the deploy.

Departs from AWS: nothing is built (no ``sam build``, no dependency install): the zip holds the
sources as they are, without ``__pycache__``. The local Lambda runtime runs the code from its
directories, not from the zip: :func:`local_dirs` and :func:`layer_dirs` keep the way back.
"""

from __future__ import annotations

import copy
import io
import zipfile
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from . import DeployError

ARTIFACT_BUCKET = "ecscp-local-artifacts"
URI_PROPERTIES = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


def zip_directory(path: Path) -> bytes:
    """The directory as a deployment package (no build: the local runtime runs the sources)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()


def load_sam_template(path: Path) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def local_dirs(template: dict[str, Any], base: Path) -> dict[str, Path]:
    """Logical id -> local directory of every function's CodeUri and layer's ContentUri."""
    dirs: dict[str, Path] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        prop = URI_PROPERTIES.get(resource.get("Type", ""))
        uri = (resource.get("Properties") or {}).get(prop) if prop else None
        if isinstance(uri, str) and not uri.startswith("s3://"):
            dirs[logical_id] = (base / uri).resolve()
    return dirs


def package(
    template: dict[str, Any], dirs: dict[str, Path], s3: Any, bucket: str = ARTIFACT_BUCKET
) -> dict[str, Any]:
    """Zip every local CodeUri/ContentUri into S3 and point the template at it."""
    packaged = copy.deepcopy(template)
    s3.create_bucket(Bucket=bucket)
    for logical_id, path in dirs.items():
        if not path.is_dir():
            raise DeployError(f"{logical_id}: {path} is not a directory")
        resource = packaged["Resources"][logical_id]
        key = f"{logical_id}.zip"
        s3.put_object(Bucket=bucket, Key=key, Body=zip_directory(path))
        resource["Properties"][URI_PROPERTIES[resource["Type"]]] = f"s3://{bucket}/{key}"
    return packaged


def layer_dirs(translated: dict[str, Any], dirs: dict[str, Path]) -> dict[str, Path]:
    """Translated layer logical id (SAM adds a hash) -> its local ContentUri directory."""
    found: dict[str, Path] = {}
    for lid, resource in translated["Resources"].items():
        if resource.get("Type") != "AWS::Lambda::LayerVersion":
            continue
        content = (resource.get("Properties") or {}).get("Content") or {}
        key = str(content.get("S3Key", ""))
        sam_id = key[: -len(".zip")] if key.endswith(".zip") else ""
        if sam_id in dirs:
            found[lid] = dirs[sam_id]
    return found
