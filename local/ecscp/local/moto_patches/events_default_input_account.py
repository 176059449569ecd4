"""moto's EventBridge leaves ``account`` out of the event it hands to the targets it delivers to.

moto's default input template (a target without InputTransformer) has no ``account`` field;
AWS's event always has it, and Powertools' ``EventBridgeModel`` (which the control plane's
handlers parse events with) requires it. Patched: the default template includes it. Targets
that :mod:`.events_targets` delivers are rendered there, with ``account``, either way.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

from ._replace import replace

#: moto's default event template with ``account`` added.
DEFAULT_EVENT_INPUT_TEMPLATE = (
    '{"id": "<id>", "time": <time>, "version": "0", "detail-type": "<detail-type>", '
    '"source": "<source>", "account": "<account>", "region": "<region>", '
    '"resources": <resources>, "detail": <detail>}'
)


def apply() -> None:
    from moto.events.utils import EventTemplateParser

    replace(
        EventTemplateParser,
        "DEFAULT_EVENT_INPUT_TEMPLATE",
        __name__,
        lambda original: DEFAULT_EVENT_INPUT_TEMPLATE,
    )
