"""Values into API paths: each one is exactly one path segment, checked and percent-quoted.

A name taken from a NodeMigration (a Secret reference) or from the cluster must never become more than
one segment: `../../kube-system/secrets/victim` as a Secret name would otherwise be normalised by the
HTTP client into another namespace's Secret. The model already refuses such names;
this module does not depend on that, nor on RBAC answering 403.
"""

from __future__ import annotations

from urllib.parse import quote

from shimshift.model.errors import KubeError


def segment(value: str, what: str = "name") -> str:
    """`value` as one quoted path segment; a KubeError when no Kubernetes object can have that name.

    Refused, as the API server's own path-segment rule refuses them: empty, `.`, `..`, and anything
    containing `/` or `%`. Everything else is percent-quoted (`?`, `#`, spaces), so it stays one segment.
    """
    if not isinstance(value, str) or value in ("", ".", "..") or "/" in value or "%" in value:
        raise KubeError(
            f"{what} {value!r} is not a Kubernetes object name; refusing to build an API path from it "
            "(use the object's name, such as ssh-key)"
        )
    return quote(value, safe="")


def check_path(path: str) -> None:
    """A KubeError for a path with an empty, `.` or `..` segment: the last guard before a request."""
    parts = path.split("?", 1)[0].split("/")
    if not path.startswith("/") or any(p in (".", "..") for p in parts) or "" in parts[1:-1]:
        raise KubeError(f"refusing to request {path!r}: a dot segment or an empty segment in an API path")
