"""A minimal Docker Engine API client over a unix socket (no docker CLI, no extra dependency).

Used from the host to seed a node's dockerd through the node's ``/run/docker.sock`` and by the
fake kubelet inside a node. Only the calls the testbed needs; errors carry Docker's own message.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

API = "/v1.41"


class DockerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"docker API {status}: {message}")
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerClient:
    def __init__(self, socket_path: str | Path, timeout: float = 60.0) -> None:
        self.socket_path = str(socket_path).removeprefix("unix://")
        self.timeout = timeout

    def _request(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        url = API + path + ("?" + urllib.parse.urlencode(query) if query else "")
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            conn.request(
                method,
                url,
                body=body,
                headers=headers or {},
                encode_chunked=body is not None and not isinstance(body, bytes),
            )
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            try:
                message = json.loads(data).get("message", data.decode())
            except ValueError:
                message = data.decode(errors="replace")
            raise DockerError(response.status, message)
        return data

    def _json(self, method: str, path: str, query: dict[str, str] | None = None, payload: Any = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = self._request(method, path, query, body, headers)
        return json.loads(data) if data.strip() else None

    def ping(self) -> bool:
        try:
            return self._request("GET", "/_ping") == b"OK"
        except (OSError, DockerError):
            return False

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/version")
        return result

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/info")
        return result

    def images(self, all_images: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/images/json", {"all": "1" if all_images else "0"})
        return result

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._json("GET", f"/images/{urllib.parse.quote(ref, safe='')}/json")
        except DockerError as e:
            if e.status == 404:
                return None
            raise
        return result

    def load(self, archive: Path) -> str:
        def chunks() -> Iterable[bytes]:
            with archive.open("rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        headers = {"Content-Type": "application/x-tar"}
        out = self._request("POST", "/images/load", {"quiet": "1"}, chunks(), headers)
        return out.decode(errors="replace")

    def pull(self, ref: str) -> None:
        """Pull through the daemon's own registry configuration; raise with Docker's error text."""
        name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        out = self._request("POST", "/images/create", {"fromImage": name, "tag": tag})
        for line in out.decode(errors="replace").splitlines():
            if line.strip() and "error" in (event := json.loads(line)):
                raise DockerError(500, str(event["error"]))

    def tag(self, ref: str, repo: str, tag: str) -> None:
        self._request("POST", f"/images/{urllib.parse.quote(ref, safe='')}/tag", {"repo": repo, "tag": tag})

    def push(self, repo: str, tag: str) -> None:
        out = self._request(
            "POST",
            f"/images/{urllib.parse.quote(repo, safe='')}/push",
            {"tag": tag},
            headers={"X-Registry-Auth": "e30="},
        )
        for line in out.decode(errors="replace").splitlines():
            if line.strip() and "error" in (event := json.loads(line)):
                raise DockerError(500, str(event["error"]))

    def create_container(self, name: str, config: dict[str, Any]) -> str:
        result = self._json("POST", "/containers/create", {"name": name}, config)
        return str(result["Id"])

    def start_container(self, ident: str) -> None:
        self._request("POST", f"/containers/{ident}/start")

    def containers(self, all_containers: bool = True) -> list[dict[str, Any]]:
        query = {"all": "1" if all_containers else "0"}
        result: list[dict[str, Any]] = self._json("GET", "/containers/json", query)
        return result
