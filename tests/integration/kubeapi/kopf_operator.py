"""A minimal kopf operator used by test_kopf.py: it must behave against the emulator as on a cluster.

Every invocation leaves an Event (reason "Invoked"), so tests can count invocations from outside.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.INFO
    settings.watching.connect_timeout = 5
    settings.watching.server_timeout = 20
    settings.peering.priority = 10
    settings.peering.lifetime = 30


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    return kopf.ConnectionInfo(server=os.environ["KUBEAPI_URL"], insecure=True)


@kopf.on.create("example.io", "v1", "widgets")
def created(body: kopf.Body, spec: kopf.Spec, patch: kopf.Patch, retry: int, **_: Any) -> dict[str, Any]:
    kopf.info(body, reason="Invoked", message=f"create handler, retry {retry}")
    if spec.get("size") == 5 and retry < 2:
        raise kopf.TemporaryError("size 5 needs two retries", delay=1)
    patch.status["phase"] = "Ready"
    return {"size": spec.get("size"), "retries": retry}


@kopf.on.update("example.io", "v1", "widgets", field="spec.mode")
def mode_changed(body: kopf.Body, old: Any, new: Any, **_: Any) -> None:
    kopf.info(body, reason="Invoked", message=f"mode {old} -> {new}")


@kopf.on.delete("example.io", "v1", "widgets")
def deleted(body: kopf.Body, **_: Any) -> None:
    kopf.info(body, reason="Invoked", message="delete handler")
