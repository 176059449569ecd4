"""The ``AWS::Serverless`` transform, offline: the SAM template as CloudFormation runs it.

samtranslator is what CloudFormation's ``AWS::Serverless`` transform runs, so the resources,
logical ids and policies are the ones AWS would create.

Departs from AWS: managed policy names are resolved from the map bundled with samtranslator,
not fetched from IAM (a managed policy newer than the installed samtranslator is unknown). The
region comes from ``AWS_DEFAULT_REGION``, which the local stack sets around the deploy.
"""

from __future__ import annotations

from typing import Any

from samtranslator.translator.transform import transform


class _OfflinePolicyLoader:
    """samtranslator resolves managed policy names from its bundled map; nothing to fetch."""

    def load(self) -> dict[str, str]:
        return {}


def translate(packaged: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """SAM -> CloudFormation, offline (the managed policy map ships with samtranslator)."""
    translated: dict[str, Any] = transform(packaged, dict(parameters), _OfflinePolicyLoader())
    return translated
