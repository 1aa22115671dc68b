"""The gate every HTTP request passes before any handler: host, size, credentials, role.

`Guard.admit` checks, in order:

1. the Host header, against DNS rebinding (a web page in the operator's browser must not
   reach a server on loopback under a name of the attacker's);
2. the body size, with the limit of the path (invocations and `/v2` inference:
   `max_payload_bytes`; ground truth and outcomes: `max_label_post_bytes`; anything else,
   the control plane included: `max_request_bytes`);
3. the caller: `Authorization: Bearer <token>` or an AWS SigV4 signature from a configured
   access key, on every surface alike;
4. the caller's role against the path's: `invoke` for the data plane, `admin` for the rest.

A refused request is answered here, in the error shape its client parses (the SageMaker
runtime's, SageMaker's JSON 1.1, or sluice's own). An admitted one gets back a `receive`
to read its body from (the body is read once here when a signature needs it).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum
from typing import Any
from xml.sax.saxutils import escape

import cbor2

from sluice.compat.sagemaker.runtime import endpoint_of
from sluice.compat.sagemaker.signing import SignatureCheck, SignatureError
from sluice.dashboard import is_shell
from sluice.security.credentials import Credentials, Principal, Role

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
OPEN_PATHS = frozenset({"/healthz", "/v2/health/live", "/v2/health/ready"})
"""Probes answer anyone: they say whether the server is up, nothing more."""
ANY_ROLE_PATHS = frozenset({"/api/v1/openapi.json", "/api/v1/docs"})
UPLOADS = "/api/v1/uploads"
ASYNC_INPUTS = "/api/v1/async-inputs"
"""An async request's body: as big as the input may be, streamed to disk and capped by its
handler (async_max_input_bytes); invoke role."""
"""Streamed to disk by its handler, which caps it (max_artifact_bytes): not read ahead
here unless a signature needs the body."""
LABEL_POST = re.compile(r"^/api/v1/endpoints/[^/]+/(ground-truth|outcomes)$")
"""Labels and outcomes are data-plane feeds: the applications that invoke post them."""
ASYNC_INVOCATIONS = re.compile(r"^/api/v1/endpoints/[^/]+/async-invocations(/[^/]+(/output)?)?$")
"""Submitting, following and cancelling async invocations is invoking."""


class Surface(Enum):
    RUNTIME = "runtime"
    SAGEMAKER = "sagemaker"
    SMITHY_CBOR = "smithy-rpc-v2-cbor"
    """CloudWatch's default protocol (`POST /service/<service>/operation/<operation>`)."""
    AWS_QUERY = "query"
    """CloudWatch's query protocol (`POST /` with a form body): errors in XML."""
    NATIVE = "native"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HostCheck:
    """Names the server answers to: exact names, `*.suffix`, or `*` for any."""

    def __init__(self, names: Iterable[str]) -> None:
        self.exact = {n.lower() for n in names if not n.startswith("*")}
        self.suffixes = tuple(n[1:].lower() for n in names if n.startswith("*."))
        self.any = "*" in names

    @classmethod
    def for_server(cls, bind_host: str, allowed: list[str]) -> HostCheck | None:
        """Listed names (plus loopback for a loopback server); None (no check) for a
        server on other interfaces with no list, where credentials are the defence."""
        if allowed:
            return cls([*allowed, *(LOOPBACK_NAMES if is_loopback(bind_host) else ())])
        if is_loopback(bind_host):
            return cls(LOOPBACK_NAMES)
        return None

    def allows(self, host_header: str | None) -> bool:
        if self.any:
            return True
        if not host_header:
            return False
        host = host_header.lower()
        if host.startswith("["):
            host = host[1 : host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        return host in self.exact or (bool(self.suffixes) and host.endswith(self.suffixes))


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Guard:
    def __init__(
        self,
        credentials: Credentials | None,
        hosts: HostCheck | None,
        max_payload_bytes: int,
        max_label_bytes: int,
        max_request_bytes: int,
        metrics_public: bool = False,
    ) -> None:
        self.credentials = credentials
        """None: authentication is off (a loopback server run with --insecure-local)."""
        self.hosts = hosts
        self.max_payload_bytes = max_payload_bytes
        self.max_label_bytes = max_label_bytes
        self.max_request_bytes = max_request_bytes
        self.metrics_public = metrics_public
        self.signatures = SignatureCheck(credentials.aws_secrets if credentials else {})

    async def admit(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The receive to read the body from, or None when the request was refused (and
        answered)."""
        path: str = scope["path"]
        method: str = scope["method"]
        runtime = endpoint_of(path) is not None
        streamed = runtime or path in (UPLOADS, ASYNC_INPUTS)
        host: str | None = None
        authorization = ""
        form = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"content-type":
                form = value.split(b";")[0].strip().lower() == b"application/x-www-form-urlencoded"
        surface = Surface.RUNTIME if runtime else _surface(method, path, form)
        try:
            if self.hosts is not None and not self.hosts.allows(host):
                raise Refusal(
                    400,
                    "InvalidHost",
                    f"this server does not answer to the host {host!r} (setting allowed_hosts)",
                )
            needed = self._role(method, path, runtime)
            limit = self._limit(method, path, runtime)
            if self.credentials is None or needed is None:
                return receive if streamed else await _buffered(scope, receive, limit)
            self.credentials.refresh()
            if authorization.startswith("Bearer "):
                principal = self.credentials.by_bearer(authorization[7:].strip())
                if principal is None:
                    raise _unknown(surface, "the bearer token is not one this server knows")
                body_receive = receive if streamed else await _buffered(scope, receive, limit)
            elif authorization.startswith("AWS4-"):
                replay = await _buffered(scope, receive, limit)
                principal = self._signed(scope, replay.body, surface)
                body_receive = replay
            else:
                raise _missing(surface)
            if not principal.role.allows(needed):
                raise Refusal(
                    403,
                    "AccessDeniedException" if surface is not Surface.NATIVE else "Forbidden",
                    f"{principal.name} has the role {principal.role.value}; "
                    f"{method} {path} needs {needed.value}",
                )
            return body_receive
        except Refusal as refusal:
            await _answer(send, surface, refusal)
            return None

    def _signed(self, scope: Scope, body: bytes, surface: Surface) -> Principal:
        assert self.credentials is not None
        self.signatures.keys = self.credentials.aws_secrets
        try:
            access_key = self.signatures.verify_scope(scope, body)
        except SignatureError as exc:
            raise Refusal(403, exc.code, exc.message) from None
        return self.credentials.by_access_key[access_key]

    def _role(self, method: str, path: str, runtime: bool) -> Role | None:
        if runtime:
            return Role.INVOKE
        if path in OPEN_PATHS or is_shell(method, path):
            return None
        if path == "/metrics":
            return None if self.metrics_public else Role.INVOKE
        if path == "/v2" or path.startswith("/v2/") or path in ANY_ROLE_PATHS:
            return Role.INVOKE
        if method == "POST" and LABEL_POST.match(path):
            return Role.INVOKE
        if path == ASYNC_INPUTS or ASYNC_INVOCATIONS.match(path):
            return Role.INVOKE
        return Role.ADMIN

    def _limit(self, method: str, path: str, runtime: bool) -> int:
        if runtime or path.startswith("/v2/"):
            return self.max_payload_bytes
        if method == "POST" and LABEL_POST.match(path):
            return self.max_label_bytes
        return self.max_request_bytes


class _Replay:
    """A receive that hands out a body read ahead of the app, then the client's events."""

    def __init__(self, body: bytes, receive: Receive) -> None:
        self.body = body
        self.receive = receive
        self.sent = False

    async def __call__(self) -> Message:
        if not self.sent:
            self.sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        return await self.receive()


async def _buffered(scope: Scope, receive: Receive, limit: int) -> _Replay:
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return _Replay(b"".join(chunks), receive)


def _too_large(limit: int) -> Refusal:
    return Refusal(413, "PayloadTooLarge", f"the request body is over {limit:,} bytes")


def _missing(surface: Surface) -> Refusal:
    if surface is Surface.NATIVE:
        return Refusal(
            401,
            "Unauthorized",
            "this server needs credentials: Authorization: Bearer <token> (sluice credentials)",
        )
    return Refusal(
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token: this server takes SigV4-signed requests or a bearer token",
    )


def _unknown(surface: Surface, message: str) -> Refusal:
    if surface is Surface.NATIVE:
        return Refusal(401, "Unauthorized", message)
    return Refusal(403, "UnrecognizedClientException", message)


def _surface(method: str, path: str, form: bool = False) -> Surface:
    if path == "/" and method == "POST":
        return Surface.AWS_QUERY if form else Surface.SAGEMAKER
    if path.startswith("/service/") and method == "POST":
        return Surface.SMITHY_CBOR
    return Surface.NATIVE


async def _answer(send: Send, surface: Surface, refusal: Refusal) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if surface is Surface.SAGEMAKER:
        content_type = b"application/x-amz-json-1.1"
        body: dict[str, Any] = {"__type": refusal.code, "message": refusal.message}
    elif surface is Surface.RUNTIME:
        content_type = b"application/json"
        body = {"ErrorCode": refusal.code, "Message": refusal.message}
        headers.append((b"x-amzn-errortype", refusal.code.encode()))
    else:
        content_type = b"application/json"
        body = {"error": refusal.code, "message": refusal.message}
    if refusal.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="sluice"'))
    payload = json.dumps(body).encode()
    if surface is Surface.SMITHY_CBOR:
        content_type = b"application/cbor"
        payload = cbor2.dumps({"__type": refusal.code, "message": refusal.message})
        headers.append((b"smithy-protocol", b"rpc-v2-cbor"))
    elif surface is Surface.AWS_QUERY:
        content_type = b"text/xml"
        payload = (
            "<ErrorResponse><Error><Type>Sender</Type>"
            f"<Code>{escape(refusal.code)}</Code><Message>{escape(refusal.message)}</Message>"
            "</Error></ErrorResponse>"
        ).encode()
    headers += [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]
    if refusal.status == 413:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
