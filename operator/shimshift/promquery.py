"""One instant query to Prometheus's HTTP API (`GET <url>/api/v1/query?query=...`), for the health gates.

The answer is returned decoded, as Prometheus sent it; `shimshift.planning.healthgates` judges it.
Every failure (no answer, a TLS error, an HTTP error, a body that is not JSON) is a `PrometheusError`,
which the gate reader turns into an error reading: neither yes nor no. The bearer token goes in the
Authorization header only: never into a message, a log line or the URL. Environment proxies are not
used (Prometheus is reached directly, as the chart's NetworkPolicy-free install does); one request,
bounded by `timeout`.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from shimshift.model.errors import ShimshiftError

#: The longest answer read (a gate's query returns a handful of series, not a dashboard).
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class PrometheusError(ShimshiftError):
    """Prometheus could not be asked, or did not answer a query; read again later."""

    transient = True


def _safe_url(url: str) -> str:
    """`url` without any userinfo or query, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def query_prometheus(
    url: str, expression: str, *, token: str | None = None, ca: str | None = None, timeout: float = 10.0
) -> Any:
    """The decoded JSON of `/api/v1/query` for `expression` at Prometheus `url` (http or https)."""
    base = url.rstrip("/")
    target = f"{base}/api/v1/query?{urlencode({'query': expression})}"
    request = urllib.request.Request(target, headers={"Accept": "application/json"})  # noqa: S310 - http(s) only, checked
    if token:
        request.add_unredirected_header("Authorization", f"Bearer {token.strip()}")
    context = None
    if urlsplit(base).scheme == "https":
        try:
            context = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
        except (ssl.SSLError, ValueError) as e:
            raise PrometheusError(f"the CA of the Prometheus gate is not a PEM certificate: {e}") from e
    elif urlsplit(base).scheme != "http":
        raise PrometheusError(f"{_safe_url(url)} is not an http:// or https:// URL")
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    where = _safe_url(url)
    try:
        with opener.open(request, timeout=timeout) as answer:
            body = answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as e:
        # Prometheus answers a bad query with 400 and a JSON error body: that body is the answer
        try:
            detail = json.loads(e.read(64 * 1024) or b"{}")
        except ValueError:
            detail = None
        if isinstance(detail, dict) and detail.get("status") == "error":
            return detail
        raise PrometheusError(f"Prometheus at {where} answered HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError, ssl.SSLError) as e:
        reason = getattr(e, "reason", e)
        raise PrometheusError(f"Prometheus at {where} is unreachable: {reason}") from e
    if len(body) > MAX_ANSWER_BYTES:
        raise PrometheusError(
            f"Prometheus at {where} sent more than {MAX_ANSWER_BYTES} bytes; narrow the query"
        )
    try:
        return json.loads(body)
    except ValueError as e:
        raise PrometheusError(
            f"Prometheus at {where} did not answer with JSON (is the URL Prometheus?)"
        ) from e
