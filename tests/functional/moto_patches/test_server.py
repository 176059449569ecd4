"""The server's dispatcher, and every patch applied together."""

from __future__ import annotations

import os
from typing import Any

import pytest
from moto.events.models import Rule
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from ecscp.local.moto_patches import (
    PATCHES,
    _replace,
    apply_all,
    dispatch_services_cached,
)

from .conftest import Apply

# --- The server's dispatcher -------------------------------------------------------------------


def test_dispatch_services_cached(patched: Apply, monkeypatch: pytest.MonkeyPatch) -> None:
    listings: list[str] = []
    listdir = os.listdir

    def counting(path: Any) -> list[str]:
        listings.append(str(path))
        return listdir(path)

    monkeypatch.setattr(os, "listdir", counting)
    dispatcher = DomainDispatcherApplication(create_backend_app)
    # GIVEN moto as released THEN each request's backend look-up lists moto's package
    assert dispatcher.get_backend_for_host("sqs") == "sqs"
    assert dispatcher.get_backend_for_host("sqs") == "sqs"
    assert len(listings) == 2

    # GIVEN the patch THEN it is listed once, when the patch is applied
    patched(dispatch_services_cached)
    listings.clear()
    for _ in range(3):
        assert dispatcher.get_backend_for_host("dynamodb") == "dynamodb"
    assert listings == []


# --- All of them -------------------------------------------------------------------------------


def test_apply_all_applies_every_patch_once(patched: Apply) -> None:
    # GIVEN every patch applied, in order
    apply_all()
    replaced = list(_replace._replaced)
    send_to_targets = Rule.send_to_targets
    assert {entry.patch for entry in replaced} == {patch.__name__ for patch in PATCHES}

    # WHEN applied again THEN nothing changes
    apply_all()
    assert _replace._replaced == replaced
    assert Rule.send_to_targets is send_to_targets
