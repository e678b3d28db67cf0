"""The shapes of Kubernetes names that shimshift puts into API paths or looks up in Secrets.

A name that reaches a URL path must be a name, never a path (a `../` in it would reach another
namespace): the CRD carries the same patterns, and the model checks them again so a CRD that lost one
cannot let a path through.
"""

from __future__ import annotations

import re

#: An object name (RFC 1123 DNS subdomain), as Secrets, ConfigMaps, Nodes and NodeMigrations use.
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
OBJECT_NAME_MAX = 253
#: A key in a Secret's (or ConfigMap's) data.
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
SECRET_KEY_MAX = 253


def is_object_name(value: object) -> bool:
    """True for a valid DNS-subdomain object name such as `ssh-key` or `ops.ssh-key`."""
    return isinstance(value, str) and len(value) <= OBJECT_NAME_MAX and bool(OBJECT_NAME.match(value))


def is_secret_key(value: object) -> bool:
    """True for a valid Secret data key such as `ssh-privatekey` or `ca.crt` (never `.` or `..`)."""
    return (
        isinstance(value, str)
        and len(value) <= SECRET_KEY_MAX
        and value not in (".", "..")
        and bool(SECRET_KEY.match(value))
    )
