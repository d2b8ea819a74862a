"""An in-memory Kubernetes API server on loopback, speaking the real paths the official client uses, with failure injection."""
from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

# jsonpatch (RFC 6902) is in the dev venv through cfn-lint; a maintained implementation beats a hand-written one.
import jsonpatch

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# plural -> (group/version, Kind); the table mirrors the API groups the adapter talks to.
RESOURCES: dict[str, tuple[str, str]] = {
    "deployments": ("apps/v1", "Deployment"),
    "statefulsets": ("apps/v1", "StatefulSet"),
    "cronjobs": ("batch/v1", "CronJob"),
}
_SCALABLE = {"deployments", "statefulsets"}

_NAMESPACED = re.compile(
    r"^/apis/(?P<gv>apps/v1|batch/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[a-z]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>scale))?)?$"
)
_NAMESPACE = re.compile(r"^/api/v1/namespaces(?:/(?P<name>[^/]+))?$")
_ALL_NAMESPACES = re.compile(r"^/apis/(?P<gv>apps/v1|batch/v1)/(?P<plural>[a-z]+)$")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: Optional[str]
    body: Any
    status: int = 0


@dataclass
class _Rule:
    """One failure-injection rule: the next `remaining` matching requests get `status`, or hang when status is None."""

    remaining: int
    status: Optional[int]
    method: Optional[str]
    path_contains: Optional[str]
    retry_after: Optional[int] = None

    def matches(self, method: str, path: str) -> bool:
        if self.remaining <= 0:
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.path_contains and self.path_contains not in path:
            return False
        return True


class _HTTPError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Optional[dict] = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}


def _status(code: int, reason: str, message: str, details: Optional[dict] = None) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKube:
    """A loopback Kubernetes API: seed objects, run the real client against `kubeconfig_yaml()`, inspect `requests`."""

    def __init__(self, token: str = "fake-token", max_hang: float = 5.0):
        self.token = token
        self.max_hang = max_hang
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._rules: list[_Rule] = []
        self._rv = 1000
        self._namespaces: dict[str, dict] = {}
        self._objects: dict[str, dict[tuple[str, str], dict]] = {plural: {} for plural in RESOURCES}
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle -------------------------------------------------------
    def start(self) -> "FakeKube":
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval keeps shutdown() (and so each test's teardown) quick.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-kube", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        # Unblock hanging handlers first so shutdown does not wait for them.
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeKube":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig_yaml(self, token: Optional[str] = None) -> str:
        """A kubeconfig text (token auth) pointing at this server, as stored in the `clusters/S/kubeconfig` secret."""
        return (
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: fake\n"
            "  cluster:\n"
            f"    server: {self.url}\n"
            "contexts:\n"
            "- name: fake\n"
            "  context:\n"
            "    cluster: fake\n"
            "    user: fake\n"
            "current-context: fake\n"
            "users:\n"
            "- name: fake\n"
            "  user:\n"
            f"    token: {token if token is not None else self.token}\n"
        )

    # ---- seeding and inspection -----------------------------------------
    def add_namespace(self, name: str, labels: Optional[dict[str, str]] = None) -> dict:
        labels = {"kubernetes.io/metadata.name": name, **(labels or {})}
        with self._lock:
            obj = {
                "kind": "Namespace",
                "apiVersion": "v1",
                "metadata": self._new_meta(name, None, labels, None),
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
            self._namespaces[name] = obj
            return copy.deepcopy(obj)

    def add_deployment(self, namespace: str, name: str, replicas: Optional[int] = 1,
                       annotations: Optional[dict[str, str]] = None) -> dict:
        return self._add_workload("deployments", namespace, name, replicas, annotations)

    def add_statefulset(self, namespace: str, name: str, replicas: Optional[int] = 1,
                        annotations: Optional[dict[str, str]] = None) -> dict:
        return self._add_workload("statefulsets", namespace, name, replicas, annotations)

    def add_cronjob(self, namespace: str, name: str, suspend: Optional[bool] = False,
                    annotations: Optional[dict[str, str]] = None) -> dict:
        """Seed a CronJob; `suspend=None` leaves the field out (the real API server defaults it to false)."""
        spec: dict[str, Any] = {
            "schedule": "*/5 * * * *",
            "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "job", "image": "busybox:1.36", "command": ["true"]}],
                "restartPolicy": "OnFailure",
            }}}},
        }
        if suspend is not None:
            spec["suspend"] = suspend
        return self._store("cronjobs", namespace, name, spec, annotations, {"active": []})

    def get(self, plural: str, namespace: str, name: str) -> dict:
        with self._lock:
            return copy.deepcopy(self._objects[plural][(namespace, name)])

    def set_spec(self, plural: str, namespace: str, name: str, **fields: Any) -> dict:
        """Change spec fields behind the adapter's back (someone scaling a workload by hand), bumping resourceVersion."""
        with self._lock:
            obj = self._objects[plural][(namespace, name)]
            obj["spec"].update(fields)
            obj["metadata"]["resourceVersion"] = self._next_rv()
            obj["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
            self._sync_status(plural, obj)
            return copy.deepcopy(obj)

    def delete(self, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            self._objects[plural].pop((namespace, name), None)

    def replicas(self, plural: str, namespace: str, name: str) -> Optional[int]:
        return self.get(plural, namespace, name)["spec"].get("replicas")

    def annotations(self, plural: str, namespace: str, name: str) -> dict[str, str]:
        return self.get(plural, namespace, name)["metadata"].get("annotations", {})

    def patches(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "PATCH"]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- failure injection ----------------------------------------------
    def fail_next(self, count: int = 1, status: int = 503, method: Optional[str] = None,
                  path_contains: Optional[str] = None, retry_after: Optional[int] = None) -> None:
        """Answer the next `count` matching requests with `status` (e.g. 500, 503, 429, 403) and a Status body."""
        with self._lock:
            self._rules.append(_Rule(count, status, method, path_contains, retry_after))

    def hang_next(self, count: int = 1, method: Optional[str] = None, path_contains: Optional[str] = None) -> None:
        """Hold the next `count` matching requests until `release()` (or `max_hang` s), so a client timeout fires.

        A held request is then served normally, as a slow server would: a held PATCH still applies.
        """
        with self._lock:
            self._release.clear()
            self._rules.append(_Rule(count, None, method, path_contains))

    def release(self) -> None:
        self._release.set()

    def clear_failures(self) -> None:
        """End the simulated outage: drop every pending failure rule."""
        with self._lock:
            self._rules.clear()

    # ---- internals --------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _new_meta(self, name: str, namespace: Optional[str], labels: Optional[dict],
                  annotations: Optional[dict]) -> dict:
        meta: dict[str, Any] = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "resourceVersion": self._next_rv(),
            "creationTimestamp": _now(),
        }
        if namespace is not None:
            meta["namespace"] = namespace
            meta["generation"] = 1
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        return meta

    def _add_workload(self, plural: str, namespace: str, name: str, replicas: Optional[int],
                      annotations: Optional[dict]) -> dict:
        labels = {"app": name}
        spec: dict[str, Any] = {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
            },
        }
        if replicas is not None:
            spec["replicas"] = replicas
        if plural == "statefulsets":
            spec["serviceName"] = name
        return self._store(plural, namespace, name, spec, annotations, {})

    def _store(self, plural: str, namespace: str, name: str, spec: dict, annotations: Optional[dict],
               status: dict) -> dict:
        group_version, kind = RESOURCES[plural]
        with self._lock:
            obj = {
                "kind": kind,
                "apiVersion": group_version,
                "metadata": self._new_meta(name, namespace, {"app": name}, annotations),
                "spec": spec,
                "status": status,
            }
            self._sync_status(plural, obj)
            self._objects[plural][(namespace, name)] = obj
            return copy.deepcopy(obj)

    @staticmethod
    def _sync_status(plural: str, obj: dict) -> None:
        # The fake's "controllers" converge instantly so status mirrors spec.
        if plural in _SCALABLE:
            replicas = obj["spec"].get("replicas", 1)
            obj["status"] = {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                             "observedGeneration": obj["metadata"].get("generation", 1)}

    def _take_rule(self, method: str, path: str) -> Optional[_Rule]:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.remaining -= 1
                    return rule
        return None

    # ---- request handling (called from handler threads) -----------------
    def handle(self, method: str, raw_path: str, headers, body_bytes: bytes) -> tuple[int, dict, dict]:
        parts = urlsplit(raw_path)
        path, query = parts.path.rstrip("/") or "/", parse_qs(parts.query)
        content_type = headers.get("Content-Type")
        try:
            body = json.loads(body_bytes) if body_bytes else None
        except ValueError:
            body = body_bytes.decode("utf-8", "replace")
        record = RecordedRequest(method, path, query, content_type.split(";")[0].strip() if content_type else None, body)
        with self._lock:
            self.requests.append(record)

        extra_headers: dict[str, str] = {}
        rule = self._take_rule(method, path)
        if rule is not None and rule.status is None:
            self._release.wait(self.max_hang)
        elif rule is not None:
            if rule.retry_after is not None:
                extra_headers["Retry-After"] = str(rule.retry_after)
            record.status = rule.status
            reason = {429: "TooManyRequests", 403: "Forbidden", 409: "Conflict", 401: "Unauthorized",
                      404: "NotFound", 503: "ServiceUnavailable"}.get(rule.status, "InternalError")
            return rule.status, _status(rule.status, reason, f"injected failure {rule.status}"), extra_headers

        if headers.get("Authorization") != f"Bearer {self.token}":
            record.status = 401
            return 401, _status(401, "Unauthorized", "Unauthorized"), extra_headers
        try:
            code, payload = self._route(method, path, query, record.content_type, body)
        except _HTTPError as err:
            code, payload = err.code, _status(err.code, err.reason, err.message, err.details)
        record.status = code
        return code, payload, extra_headers

    def _route(self, method: str, path: str, query: dict, content_type: Optional[str], body: Any) -> tuple[int, dict]:
        if path == "/version" and method == "GET":
            return 200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "platform": "linux/amd64"}
        match = _NAMESPACE.match(path)
        if match and method == "POST" and match["name"] is None:
            name = ((body or {}).get("metadata") or {}).get("name")
            if not name:
                raise _HTTPError(422, "Invalid", "metadata.name: Required value")
            if name in self._namespaces:
                raise _HTTPError(409, "AlreadyExists", f'namespaces "{name}" already exists')
            return 201, self.add_namespace(name, (body.get("metadata") or {}).get("labels"))
        if match and method == "DELETE" and match["name"] is not None:
            with self._lock:
                obj = self._namespaces.pop(match["name"], None)
                if obj is None:
                    raise self._not_found("namespaces", match["name"])
                for table in self._objects.values():
                    for key in [k for k in table if k[0] == match["name"]]:
                        del table[key]
                # Deletion is immediate here; the real server answers with the namespace in phase Terminating.
                obj = copy.deepcopy(obj)
                obj["status"]["phase"] = "Terminating"
                return 200, obj
        if match and method == "GET":
            with self._lock:
                if match["name"] is None:
                    items = [self._namespaces[k] for k in sorted(self._namespaces)]
                    return 200, self._list("NamespaceList", "v1", items, query, strip_type=True)
                obj = self._namespaces.get(match["name"])
                if obj is None:
                    raise self._not_found("namespaces", match["name"])
                return 200, copy.deepcopy(obj)
        match = _ALL_NAMESPACES.match(path)
        if match and method == "GET" and match["plural"] in RESOURCES and RESOURCES[match["plural"]][0] == match["gv"]:
            group_version, kind = RESOURCES[match["plural"]]
            with self._lock:
                table = self._objects[match["plural"]]
                items = [table[key] for key in sorted(table)]
                return 200, self._list(f"{kind}List", group_version, items, query, strip_type=True)
        match = _NAMESPACED.match(path)
        if match and match["plural"] in RESOURCES and RESOURCES[match["plural"]][0] == match["gv"]:
            plural, ns, name, sub = match["plural"], match["ns"], match["name"], match["sub"]
            if sub == "scale" and plural not in _SCALABLE:
                raise _HTTPError(404, "NotFound", "the server could not find the requested resource")
            with self._lock:
                if name is None and method == "POST" and sub is None:
                    created = self._create(plural, ns, body)
                    return 201, created
                if name is None and method == "GET":
                    table = self._objects[plural]
                    items = [table[key] for key in sorted(table) if key[0] == ns]
                    group_version, kind = RESOURCES[plural]
                    return 200, self._list(f"{kind}List", group_version, items, query, strip_type=True)
                if name is not None and method in ("GET", "PATCH"):
                    obj = self._objects[plural].get((ns, name))
                    if obj is None:
                        raise self._not_found(plural, name)
                    if method == "PATCH":
                        obj = self._patch(plural, obj, sub, content_type, body)
                        self._objects[plural][(ns, name)] = obj
                    return 200, self._scale_of(obj) if sub == "scale" else copy.deepcopy(obj)
            raise _HTTPError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        raise _HTTPError(404, "NotFound", "the server could not find the requested resource")

    def _list(self, kind: str, api_version: str, items: list[dict], query: dict, strip_type: bool) -> dict:
        # The real API server honours limit/continue; an offset token is enough to exercise client paging.
        start = int(query.get("continue", ["0"])[0] or 0)
        limit = int(query.get("limit", ["0"])[0] or 0)
        page = items[start:start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if limit and start + limit < len(items):
            meta["continue"] = str(start + limit)
            meta["remainingItemCount"] = len(items) - start - limit
        out = []
        for item in page:
            item = copy.deepcopy(item)
            if strip_type:
                # Typed lists from the real server leave kind/apiVersion off their items.
                item.pop("kind", None)
                item.pop("apiVersion", None)
            out.append(item)
        return {"kind": kind, "apiVersion": api_version, "metadata": meta, "items": out}

    def _create(self, plural: str, namespace: str, body: Any) -> dict:
        # Called with the lock held; only what a test needs to create a workload through the client.
        if not isinstance(body, dict) or not (body.get("metadata") or {}).get("name"):
            raise _HTTPError(422, "Invalid", "metadata.name: Required value")
        if namespace not in self._namespaces:
            raise self._not_found("namespaces", namespace)
        name = body["metadata"]["name"]
        if (namespace, name) in self._objects[plural]:
            raise _HTTPError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        group_version, kind = RESOURCES[plural]
        spec = copy.deepcopy(body.get("spec") or {})
        if plural in _SCALABLE:
            spec.setdefault("replicas", 1)
        elif plural == "cronjobs":
            spec.setdefault("suspend", False)
        meta = body["metadata"]
        obj = {"kind": kind, "apiVersion": group_version,
               "metadata": self._new_meta(name, namespace, meta.get("labels"), meta.get("annotations")),
               "spec": spec, "status": {}}
        self._sync_status(plural, obj)
        self._objects[plural][(namespace, name)] = obj
        return copy.deepcopy(obj)

    @staticmethod
    def _not_found(plural: str, name: str) -> _HTTPError:
        group = RESOURCES.get(plural, ("v1", ""))[0].split("/")[0] if plural in RESOURCES else ""
        resource = f"{plural}.{group}" if group else plural
        return _HTTPError(404, "NotFound", f'{resource} "{name}" not found',
                          {"name": name, "group": group, "kind": plural})

    @staticmethod
    def _scale_of(obj: dict) -> dict:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {"replicas": obj["status"].get("replicas", 0), "selector": f"app={meta['name']}"},
        }

    def _apply(self, target: dict, content_type: Optional[str], body: Any) -> dict:
        if content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            if not isinstance(body, dict):
                raise _HTTPError(400, "BadRequest", f"{content_type} body must be a JSON object")
            return merge_patch(target, body)
        if content_type == JSON_PATCH:
            if not isinstance(body, list):
                raise _HTTPError(400, "BadRequest", "json patch body must be a JSON array")
            try:
                return jsonpatch.apply_patch(target, body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as err:
                raise _HTTPError(422, "Invalid", f"the server rejected our request due to an error in our request: {err}")
        raise _HTTPError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: "
                         f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}")

    def _patch(self, plural: str, obj: dict, sub: Optional[str], content_type: Optional[str], body: Any) -> dict:
        current = self._scale_of(obj) if sub == "scale" else obj
        patched = self._apply(current, content_type, body)
        # A resourceVersion in the patch is a precondition, as on the real server.
        wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if wanted_rv is not None and wanted_rv != obj["metadata"]["resourceVersion"]:
            raise _HTTPError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{obj["metadata"]["name"]}": '
                             "the object has been modified; please apply your changes to the latest version and try again")
        if sub == "scale":
            new = copy.deepcopy(obj)
            new["spec"]["replicas"] = (patched.get("spec") or {}).get("replicas")
        else:
            new = patched
        self._validate(plural, obj, new)
        if (new.get("metadata") or {}).get("annotations") == {}:
            del new["metadata"]["annotations"]  # omitempty on the real server
        if new["spec"] != obj["spec"]:
            new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._sync_status(plural, new)
        return new

    @staticmethod
    def _validate(plural: str, old: dict, new: dict) -> None:
        problems = []
        meta = new.get("metadata") or {}
        for key in ("name", "namespace", "uid"):
            if meta.get(key) != old["metadata"].get(key):
                problems.append(f"metadata.{key}: field is immutable")
        for key, value in (meta.get("annotations") or {}).items():
            if not isinstance(value, str):
                problems.append(f"metadata.annotations[{key}]: must be a string")
        spec = new.get("spec")
        if not isinstance(spec, dict):
            problems.append("spec: Required value")
        elif plural in _SCALABLE:
            replicas = spec.get("replicas")
            if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0):
                problems.append(f"spec.replicas: Invalid value: {replicas!r}: must be greater than or equal to 0")
        elif plural == "cronjobs" and "suspend" in spec and not isinstance(spec["suspend"], bool):
            problems.append(f"spec.suspend: Invalid value: {spec['suspend']!r}")
        if problems:
            raise _HTTPError(422, "Invalid", "; ".join(problems))


class _Handler(BaseHTTPRequestHandler):
    owner: FakeKube
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, each response waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, payload, extra = self.owner.handle(self.command, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and went away; nothing to answer

    do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
