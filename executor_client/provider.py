"""Airflow provider metadata: makes ``[ecs_control_plane]`` a known configuration section.

Registered through the ``apache_airflow_provider`` entry point; must stay import-light because
Airflow's providers manager imports it while loading its configuration.
"""

from __future__ import annotations

from typing import Any

from .config import OPTIONS, SECTION, SECTION_DESCRIPTION

PACKAGE_NAME = "airflow-ecs-control-plane"
VERSION = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Airflow ECS control plane",
        "description": "Executor that runs Airflow tasks on Amazon ECS through an event-driven, "
        "serverless control plane.",
        "versions": [VERSION],
        "config": {
            SECTION: {
                "description": SECTION_DESCRIPTION,
                "options": {key: {**option, "version_added": None} for key, option in OPTIONS.items()},
            }
        },
    }
