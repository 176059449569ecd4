"""The CloudWatch metrics a handler published, read back from its output.

Powertools prints each metric set as one line of CloudWatch Embedded Metric Format (JSON with
an ``_aws`` key) on stdout, which Lambda sends to CloudWatch Logs; Powertools' own tests read
it back with ``capsys``, and so do these. One entry per value, with the record's dimensions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Published:
    namespace: str
    name: str
    unit: str
    value: float
    dimensions: dict[str, str]


def published(output: str) -> list[Published]:
    """Every metric value in ``output`` (a captured stdout); other lines (logs) are skipped."""
    found: list[Published] = []
    for line in output.splitlines():
        try:
            record: Any = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "_aws" not in record:
            continue
        for directive in record["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: str(record[name]) for names in directive["Dimensions"] for name in names}
            for metric in directive["Metrics"]:
                values = record[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    found.append(
                        Published(directive["Namespace"], metric["Name"], metric["Unit"], value, dimensions)
                    )
    return found


def named(output: str, name: str) -> list[Published]:
    return [m for m in published(output) if m.name == name]
