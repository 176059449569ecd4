"""Items of a DynamoDB read taken straight from the response body, not through botocore's parser.

The executor reads the state table on every heartbeat (the change feed's page, a safety-net
page), and botocore's shape-driven parser walks every attribute of every item in Python: about
20 µs an item, most of a heartbeat's reading at N = 10,000. In DynamoDB's JSON protocol an item
on the wire already *is* the parsed item (``{"S": ...}``, ``{"N": "12"}``, ``BOOL``, ``NULL``,
``L``, ``M``, ``SS``, ``NS``), with one exception: binary (``B``, ``BS``), which is base64 on the
wire and ``bytes`` after botocore. So for Query and BatchGetItem, a ``before-parse`` handler
(botocore's documented hook for customising a response) takes the items out of the body with
``json.loads`` and hands them back through ``customized_response_dict``; botocore parses the
rest (counts, cursors, unprocessed keys, errors) as usual. A body that holds a binary type tag
or is not a JSON object (another protocol) is left to botocore entirely, so the result is the
same either way. An error's body holds no items, so it is parsed as before.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: A binary attribute value's type tag, as a JSON object key. It also matches an attribute
#: *named* B or BS, which only sends that page through botocore's parser; a string value that
#: holds ``"B":`` is escaped on the wire (``\\"B\\":``) and does not match.
_BINARY_TAG = re.compile(rb'"BS?"\s*:')
_ITEMS_OF = {"Query": ("Items",), "Scan": ("Items",), "BatchGetItem": ("Responses",)}


def read_items_off_the_wire(client: Any) -> None:
    """Make ``client``'s Query, Scan and BatchGetItem return their items without botocore's parse.

    Only this client changes (botocore gives each client its own copy of the event hooks), and
    registering again is a no-op (``unique_id``). A client that is not botocore's (a test's
    stand-in) has no parser to leave out, and is left as it is.
    """
    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:
        return
    for operation in _ITEMS_OF:
        events.register(
            f"before-parse.dynamodb.{operation}", _take_items, unique_id=f"ecscp-wire-items-{operation}"
        )


def _take_items(
    operation_model: Any, response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    body = response_dict.get("body")
    if not isinstance(body, bytes) or _BINARY_TAG.search(body):
        return
    try:
        document = json.loads(body)
    except ValueError:
        return
    if not isinstance(document, dict):
        return
    for field in _ITEMS_OF[operation_model.name]:
        if field in document:
            customized_response_dict[field] = document.pop(field)
    if customized_response_dict:
        response_dict["body"] = json.dumps(document).encode()
