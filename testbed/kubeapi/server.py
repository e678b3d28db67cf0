"""The HTTP face of the emulator: URL parsing, content negotiation, LIST/WATCH streaming.

One catch-all aiohttp route parses Kubernetes API paths (``/api/v1/namespaces/NS/pods/NAME/eviction``,
``/apis/G/V/PLURAL``, the legacy ``/watch/`` prefix, trailing slashes: ``testbed.apirequests``, shared
with the fault-injecting proxy), records the request, applies injected faults, and hands the call to
``Cluster``. Answers are JSON (never protobuf); errors are ``kind: Status``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from typing import Any

import yaml
from aiohttp import web

from testbed.apirequests.faults import Faults, RequestLog, RequestRecord
from testbed.apirequests.paths import Target, parse_path, request_verb

from . import limits, openapi, protobuf
from .cluster import APPLY, Cluster
from .controllers import Controllers
from .errors import ApiError, bad_request, method_not_allowed, not_found, status_body
from .eviction import decide_eviction, eviction_success
from .registry import SERVER_VERSION, ResourceType
from .selectors import FieldSelector, LabelSelector, check_field_labels
from .store import Stored, Watcher, dumps
from .tables import table

JSON = "application/json"
OPENAPI_V2_PB = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
logger = logging.getLogger(__name__)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    raw = body if isinstance(body, bytes) else dumps(body)
    return web.Response(body=raw, status=status, content_type=JSON, headers=headers)


def _error(e: ApiError) -> web.Response:
    return _json(e.body(), e.code, headers=e.headers or None)


def partial(obj: dict[str, Any]) -> dict[str, Any]:
    """``Accept: ...;as=PartialObjectMetadata`` (client-go's metadata client): metadata only."""
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def _encode_continue(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        ns, name = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError) as e:
        raise bad_request("continue key is not valid") from e
    return (str(ns), str(name))


class ApiServer:
    def __init__(
        self,
        cluster: Cluster,
        controllers: Controllers | None,
        log: RequestLog,
        faults: Faults,
        bookmark_interval: float = 1.0,
    ) -> None:
        self.cluster = cluster
        self.controllers = controllers
        self.log = log
        self.faults = faults
        self.bookmark_interval = bookmark_interval

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = parse_path(request.path)
        query = dict(request.query)
        raw = await request.read() if request.can_read_body else b""
        ctype = request.headers.get("Content-Type", "")
        body: Any = None
        parse_error: ApiError | None = None
        if raw:
            try:
                if ctype.startswith(protobuf.PROTOBUF):
                    body = protobuf.decode(raw)
                else:
                    body = yaml.safe_load(raw) if ctype.startswith(APPLY) else json.loads(raw)
            except ApiError as e:
                parse_error = e
            except (ValueError, yaml.YAMLError, IndexError) as e:
                parse_error = bad_request(f"the body of the request could not be decoded: {e}")
        rec = self.log.record(
            method=request.method,
            path=request.path,
            query=query,
            verb=request_verb(request.method, target, query),
            group=target.group,
            version=target.version,
            resource=target.plural,
            subresource=target.subresource,
            namespace=target.namespace,
            name=target.name,
            content_type=ctype,
            body=body,
            user_agent=request.headers.get("User-Agent", ""),
        )
        status = 500
        try:
            rule = self.faults.take(rec)
            if rule is not None:
                if rule.latency:
                    await asyncio.sleep(rule.latency)
                if rule.status is not None:
                    status = rule.status
                    return _json(rule.response(), rule.status)
            if self.faults.arriving(rec):
                status = 503
                return _json(status_body(503, "ServiceUnavailable", "a test trigger took this request"), 503)
            limits.check_body(request.method, raw)
            if parse_error is not None:
                raise parse_error
            response = await self.dispatch(request, target, query, rec, body, ctype)
            status = response.status
            self.faults.served(rec, status)
            return response
        except ApiError as e:
            status = e.code
            return _error(e)
        except Exception as e:  # an emulator bug: answer like a real server's panic handler, and log it
            logger.exception("kubeapi: %s %s failed", request.method, request.path)
            return _error(ApiError(500, "InternalError", f"Internal error occurred: {e!r}"))
        finally:
            self.log.finish(rec, status)

    async def dispatch(
        self,
        request: web.Request,
        target: Target,
        query: dict[str, str],
        rec: RequestRecord,
        body: Any,
        ctype: str,
    ) -> web.StreamResponse:
        reg = self.cluster.registry
        if target.kind == "version":
            return _json(SERVER_VERSION)
        if target.kind == "health":
            return web.Response(text="ok")
        if target.kind == "api":
            return _json(reg.api_versions())
        if target.kind == "apis":
            return _json(reg.api_group_list())
        if target.kind == "group":
            doc = reg.api_group(target.group)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        if target.kind == "resources":
            doc = reg.resource_list(target.group, target.version)
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        if target.kind == "openapi-v2":
            # An OpenAPI v2 Document with no definitions, protobuf-encoded as client-go expects
            # (field 1, swagger = "2.0"). kubectl's client-side validation (used for `kind: List`)
            # skips kinds it has no schema for, exactly as it does for CRDs on a real cluster.
            return web.Response(body=b"\x0a\x032.0", content_type=OPENAPI_V2_PB)
        if target.kind == "openapi":
            doc = (
                openapi.root(reg)
                if request.path.rstrip("/") == "/openapi/v3"
                else (openapi.group_version(reg, request.path.removeprefix("/openapi/v3")))
            )
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(doc)
        if target.kind != "object":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rt = self.cluster.rt(target.group, target.version, target.plural)
        if target.subresource and target.subresource not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ns = target.namespace if rt.namespaced else ""
        accept = request.headers.get("Accept", "")
        view = (
            "Table" if "as=Table" in accept else ("Partial" if "as=PartialObjectMetadata" in accept else "")
        )
        verb = rec.verb
        field_validation = query.get("fieldValidation")
        dry_run = bool(query.get("dryRun"))
        self.cluster.warnings.clear()
        if verb == "list":
            return self._list(rt, ns or None, query, view)
        if verb == "watch":
            if target.name:
                query = {
                    **query,
                    "fieldSelector": ",".join(
                        s for s in (query.get("fieldSelector", ""), f"metadata.name={target.name}") if s
                    ),
                }
            return await self._watch(request, rt, ns or None, query, view)
        if verb == "get" and target.subresource == "log":
            self.cluster.get(rt, ns, target.name)
            # only `echo` pods run here (controllers.Controllers._run_once); any other log is empty
            return web.Response(text=self.cluster.logs.get((ns, target.name), ""), content_type="text/plain")
        if verb == "get":
            obj = self.cluster.get(rt, ns, target.name)
            if view == "Table":
                return _json(
                    table(rt, [obj], obj["metadata"]["resourceVersion"], query.get("includeObject", ""))
                )
            return _json(partial(obj) if view == "Partial" else obj)
        if verb == "create":
            if target.subresource == "eviction":
                return self._evict(rt, ns, target.name, body, dry_run)
            if target.subresource == "binding":
                return self._bind(rt, ns, target.name, body)
            if target.name:
                raise method_not_allowed()
            obj = self.cluster.create(rt, ns or None, body, field_validation, dry_run)
            return _json(obj, 201, headers=self._warning_headers())
        if verb == "update":
            sub = "" if target.subresource == "finalize" else target.subresource
            obj = self.cluster.replace(rt, ns, target.name, body, sub, field_validation, dry_run)
            return _json(obj, 200, headers=self._warning_headers())
        if verb == "patch":
            if ctype.startswith(APPLY) and self.cluster.store.get(rt.gk, ns, target.name) is None:
                obj = self.cluster.create(rt, ns or None, body, field_validation, dry_run)
                return _json(obj, 201)
            obj = self.cluster.patch(
                rt, ns, target.name, ctype, body, target.subresource, field_validation, dry_run
            )
            return _json(obj, 200, headers=self._warning_headers())
        if verb == "delete":
            options = dict(body) if isinstance(body, dict) else {}
            if dry_run or options.get("dryRun"):
                return _json(self.cluster.get(rt, ns, target.name))
            if "gracePeriodSeconds" in query:
                options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
            if "propagationPolicy" in query:
                options["propagationPolicy"] = query["propagationPolicy"]
            return _json(self.cluster.delete(rt, ns, target.name, options))
        if verb == "deletecollection":
            items = []
            for stored in self.cluster.list(
                rt, ns or None, query.get("labelSelector"), query.get("fieldSelector")
            ):
                with contextlib.suppress(ApiError):
                    items.append(
                        self.cluster.delete(
                            rt,
                            stored.meta.get("namespace"),
                            stored.meta["name"],
                            dict(body) if isinstance(body, dict) else {},
                        )
                    )
            return _json(
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.cluster.store.rv)},
                    "items": items,
                }
            )
        raise method_not_allowed()

    def _warning_headers(self) -> dict[str, str] | None:
        if not self.cluster.warnings:
            return None
        return {"Warning": ", ".join(f'299 - "{w}"' for w in self.cluster.warnings)}

    def _evict(self, rt: ResourceType, ns: str, name: str, body: Any, dry_run: bool) -> web.Response:
        pod = self.cluster.get(rt, ns, name)
        if isinstance(body, dict):
            body_name = (body.get("metadata") or {}).get("name")
            if body_name and body_name != name:
                raise bad_request(
                    f"name in URL does not match name in Eviction object: {name} != {body_name}"
                )
        decide_eviction(self.cluster.store, pod)
        options = (body or {}).get("deleteOptions") or {} if isinstance(body, dict) else {}
        if not (dry_run or options.get("dryRun")):
            self.cluster.delete(rt, ns, name, options)
        return _json(eviction_success(), 201)

    def _bind(self, rt: ResourceType, ns: str, name: str, body: Any) -> web.Response:
        node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
        if not node:
            raise bad_request("binding target is required")
        self.cluster.patch(rt, ns, name, "application/merge-patch+json", {"spec": {"nodeName": node}})
        return _json(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}, 201
        )

    def _items_raw(self, rt: ResourceType, items: list[Stored]) -> bytes:
        parts = [
            s.raw if s.obj.get("apiVersion") == rt.api_version else dumps(self.cluster.view(rt, s))
            for s in items
        ]
        return b"[" + b",".join(parts) + b"]"

    def _list(self, rt: ResourceType, ns: str | None, query: dict[str, str], view: str) -> web.Response:
        labels = LabelSelector.parse(query.get("labelSelector"))
        fields = FieldSelector.parse(query.get("fieldSelector"))
        check_field_labels(fields, rt.gk, rt.selectable_fields)
        start = _decode_continue(query["continue"]) if query.get("continue") else None
        found = self.cluster.store.list(rt.gk, ns if rt.namespaced else None, labels, fields, start)
        limit = int(query.get("limit") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(self.cluster.store.rv)}
        if limit and len(found) > limit:
            meta["continue"] = _encode_continue(found[limit - 1][0])
            meta["remainingItemCount"] = len(found) - limit
            found = found[:limit]
        items = [s for _, s in found]
        if view == "Table":
            doc = table(
                rt,
                [self.cluster.view(rt, s) for s in items],
                meta["resourceVersion"],
                query.get("includeObject", ""),
                cont=meta.get("continue"),
            )
            return _json(doc)
        if view == "Partial":
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta,
                    "items": [partial(s.obj) for s in items],
                }
            )
        head = dumps({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta})
        return _json(head[:-1] + b',"items":' + self._items_raw(rt, items) + b"}")

    def _event_line(
        self, rt: ResourceType, typ: str, stored: Stored, view: str, include: str, first: bool
    ) -> bytes:
        if view == "Table":
            obj = self.cluster.view(rt, stored)
            return (
                dumps(
                    {
                        "type": typ,
                        "object": table(
                            rt, [obj], obj["metadata"]["resourceVersion"], include, with_headers=first
                        ),
                    }
                )
                + b"\n"
            )
        if view == "Partial":
            return dumps({"type": typ, "object": partial(stored.obj)}) + b"\n"
        raw = (
            stored.raw
            if stored.obj.get("apiVersion") == rt.api_version
            else dumps(self.cluster.view(rt, stored))
        )
        return b'{"type":"' + typ.encode() + b'","object":' + raw + b"}\n"

    def _bookmark(self, rt: ResourceType, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(self.cluster.store.rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return (
            dumps(
                {
                    "type": "BOOKMARK",
                    "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
                }
            )
            + b"\n"
        )

    async def _watch(
        self, request: web.Request, rt: ResourceType, ns: str | None, query: dict[str, str], view: str
    ) -> web.StreamResponse:
        store = self.cluster.store
        watcher = Watcher(
            rt.gk,
            ns if rt.namespaced else None,
            LabelSelector.parse(query.get("labelSelector")),
            FieldSelector.parse(query.get("fieldSelector")),
        )
        check_field_labels(watcher.fields, rt.gk, rt.selectable_fields)
        rv = query.get("resourceVersion", "")
        send_initial = query.get("sendInitialEvents", "").lower() == "true"
        initial: list[tuple[str, Stored]] = []
        expired: ApiError | None = None
        if not rv or rv == "0" or send_initial:
            initial = [
                ("ADDED", s) for _, s in store.list(rt.gk, watcher.namespace, watcher.labels, watcher.fields)
            ]
        else:
            try:
                for event in store.events_since(rt.gk, int(rv)):
                    typ = watcher.translate(event)
                    if typ is not None:
                        initial.append((typ, event.new))
            except ApiError as e:
                expired = e
            except ValueError as e:
                raise bad_request(f"invalid resource version {rv!r}") from e
        if expired is None:
            store.add_watcher(watcher)
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            if expired is not None:
                await response.write(dumps({"type": "ERROR", "object": expired.body()}) + b"\n")
            else:
                await self._stream(response, rt, watcher, initial, query, view)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            store.drop_watcher(watcher)
        with contextlib.suppress(ConnectionResetError, ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        rt: ResourceType,
        watcher: Watcher,
        initial: list[tuple[str, Stored]],
        query: dict[str, str],
        view: str,
    ) -> None:
        send_initial = query.get("sendInitialEvents", "").lower() == "true"
        bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        include = query.get("includeObject", "")
        loop = asyncio.get_running_loop()
        timeout = query.get("timeoutSeconds")
        deadline = loop.time() + float(timeout) if timeout else None
        first = True
        for typ, stored in initial:
            await response.write(self._event_line(rt, typ, stored, view, include, first))
            first = False
        if send_initial and bookmarks:
            await response.write(self._bookmark(rt, initial_end=True))
        while True:
            wait: float | None = self.bookmark_interval if bookmarks else None
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = remaining if wait is None else min(wait, remaining)
            try:
                event = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if bookmarks:
                    await response.write(self._bookmark(rt))
                continue
            if event is None:
                break
            seen_as = watcher.translate(event)
            if seen_as is not None:
                await response.write(self._event_line(rt, seen_as, event.new, view, include, first))
                first = False


def not_found_error(rt: ResourceType, name: str) -> ApiError:
    return not_found(rt.plural, rt.group, name)
