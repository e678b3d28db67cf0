"""Secrets by name in the operator's namespace (SSH keys, known_hosts, registry CAs and client certs).

Values are returned to the caller and never logged; errors name the Secret and key, never a value.
"""

from __future__ import annotations

import base64
import binascii

from shimshift.kube.api import Kube, NotFound
from shimshift.kube.paths import segment
from shimshift.model.errors import KubeError


def read_secret_key(kube: Kube, namespace: str, name: str, key: str) -> str:
    """The text of `key` in Secret `namespace/name`; a KubeError that says what to create otherwise."""
    try:
        secret = kube.request(
            "GET",
            f"/api/v1/namespaces/{segment(namespace, 'namespace')}/secrets/{segment(name, 'Secret name')}",
        )
    except NotFound as e:
        raise KubeError(f"Secret {namespace}/{name} does not exist; create it with the key {key!r}") from e
    data = secret.get("data") or {}
    if key in data:
        try:
            return base64.b64decode(data[key], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as e:
            raise KubeError(f"Secret {namespace}/{name}: key {key!r} is not base64-encoded UTF-8 text") from e
    string_data = secret.get("stringData") or {}
    if key in string_data:
        return str(string_data[key])
    raise KubeError(
        f"Secret {namespace}/{name} has no key {key!r} (it has: {', '.join(sorted(data)) or 'none'})"
    )
