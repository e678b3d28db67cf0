"""A tiny Kubernetes API client for the fake kubelet: kubeconfig in, JSON over HTTP(S) out.

The fake kubelet restarts often (every ``systemctl restart kubelet`` of a migration); importing
the official client costs seconds of CPU per start on a small machine, so the handful of calls a
kubelet makes are done here with the standard library. Works against any API server the
kubeconfig names (token or client-certificate auth, CA or insecure-skip-tls-verify).
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"API {status}: {body[:300]}")
        self.status = status
        self.body = body


def _material(entry: dict[str, Any], key: str, tmp: Path) -> str | None:
    """A kubeconfig file reference, or its inline ``-data`` twin written to a private temp file."""
    if entry.get(key):
        return str(entry[key])
    data = entry.get(f"{key}-data")
    if not data:
        return None
    path = tmp / key
    path.write_bytes(base64.b64decode(data))
    return str(path)


class KubeHttp:
    def __init__(self, kubeconfig: str | Path, timeout: float = 10.0) -> None:
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        contexts = {c["name"]: c["context"] for c in doc.get("contexts") or []}
        context = contexts.get(doc.get("current-context", ""), next(iter(contexts.values()), {}))
        clusters = {c["name"]: c["cluster"] for c in doc["clusters"]}
        users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
        cluster = clusters.get(context.get("cluster", ""), doc["clusters"][0]["cluster"])
        user = users.get(context.get("user", ""), {})
        self.server = cluster["server"].rstrip("/")
        self.timeout = timeout
        self.headers = {"Accept": "application/json"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self.context: ssl.SSLContext | None = None
        if self.server.startswith("https://"):
            # inline material goes through private files only while the context loads it
            with tempfile.TemporaryDirectory(prefix="fake-kubelet-") as directory:
                tmp = Path(directory)
                ca = _material(cluster, "certificate-authority", tmp)
                self.context = ssl.create_default_context(cafile=ca)
                if cluster.get("insecure-skip-tls-verify"):
                    self.context.check_hostname = False
                    self.context.verify_mode = ssl.CERT_NONE
                cert, key = _material(user, "client-certificate", tmp), _material(user, "client-key", tmp)
                if cert:
                    self.context.load_cert_chain(cert, key)

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers, **({"Content-Type": content_type} if data is not None else {}))
        request = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace")) from e

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/merge-patch+json")

    @staticmethod
    def query(**params: str) -> str:
        return "?" + urllib.parse.urlencode(params)
