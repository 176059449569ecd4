"""The template as `sam package` would leave it: code locations in S3 (the translator wants URIs)."""

from __future__ import annotations

import copy
from typing import Any

from ecscp.local.cloudformation.package import URI_PROPERTIES


def packaged_for_s3(template: dict[str, Any]) -> dict[str, Any]:
    packaged = copy.deepcopy(template)
    for logical_id, resource in packaged["Resources"].items():
        prop = URI_PROPERTIES.get(resource["Type"])
        if prop:
            resource["Properties"][prop] = f"s3://artifacts/{logical_id}.zip"
    return packaged
