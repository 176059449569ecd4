"""moto's EventBridge delivers PutEvents events to rules without a pattern and to disabled rules.

moto matches every event against a schedule-only rule (its empty pattern matches anything) and
ignores a rule's state. On AWS a schedule rule fires on its schedule only and a disabled rule
receives nothing. The control plane's reconciler runs on a schedule rule: on moto every ECS
event would also invoke it with an event it cannot parse. Patched: neither receives events.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._replace import replace


def apply() -> None:
    from moto.events import models as events_models

    def make(send_to_targets: Callable[..., None]) -> Callable[..., None]:
        def enabled_pattern_rules_only(
            self: Any, original_event: dict[str, Any], transform_input: bool = True
        ) -> None:
            if self.state != "ENABLED" or not self.event_pattern.get_pattern():
                return
            send_to_targets(self, original_event, transform_input)

        return enabled_pattern_rules_only

    replace(events_models.Rule, "send_to_targets", __name__, make)
