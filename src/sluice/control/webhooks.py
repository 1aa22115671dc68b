"""Webhook notifications: checked destinations, signed bodies, sent in the background.

`notify` never blocks and never raises, so a slow or broken receiver cannot hold up the
caller (an alarm transition, a rollback); deliveries are counted in the metrics.

A request must not make the server reach what the operator did not allow (SSRF):
a destination must be an http(s) URL without credentials in it, match the allow-list
when one is set (setting webhook_destinations), and resolve to public addresses only,
unless its host is listed by name. The check is made when a webhook is configured and
again at each delivery, which connects to the very address it checked (a name that
resolves elsewhere later, DNS rebinding, gains nothing). Every body is signed:
`X-Sluice-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from sluice.errors import ValidationError

log = logging.getLogger(__name__)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Destination:
    """One allow-list entry: scheme://host[:port][/path], host may be `*.suffix`."""

    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, entry: str) -> Destination:
        parts = urlsplit(entry)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                f"webhook destination {entry!r} must be http(s)://host[:port][/path]",
                field="webhook_destinations",
            )
        return cls(parts.scheme, parts.hostname.lower(), parts.port, parts.path or "/")

    def matches(self, scheme: str, host: str, port: int, path: str) -> bool:
        if scheme != self.scheme or (self.port is not None and port != self.port):
            return False
        if self.host.startswith("*."):
            if not host.endswith(self.host[1:]):
                return False
        elif host != self.host:
            return False
        return path.startswith(self.path)


@dataclass(frozen=True)
class Target:
    """A checked webhook URL, split for delivery."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    named: bool
    """Its host is listed by name in the allow-list: any address it resolves to is fine."""


class WebhookPolicy:
    def __init__(self, destinations: Sequence[str] = ()) -> None:
        self.destinations = [Destination.parse(d) for d in destinations]

    def check(self, url: str, field: str = "WebhookUrl") -> Target:
        """The URL as a delivery target; ValidationError naming `field` if not allowed."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValidationError(f"{field} is not a URL: {exc}", field=field) from None
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise ValidationError(f"{field} must be an http:// or https:// URL", field=field)
        if parts.username is not None or parts.password is not None:
            raise ValidationError(f"{field} may not carry credentials", field=field)
        path = parts.path or "/"
        matched = [d for d in self.destinations if d.matches(parts.scheme, host, port, path)]
        if self.destinations and not matched:
            raise ValidationError(
                f"{field} {url!r} is not among the allowed destinations "
                "(setting webhook_destinations)",
                field=field,
            )
        target = Target(url, parts.scheme, host, port, path,
                        any(not d.host.startswith("*.") for d in matched))  # fmt: skip
        literal = _address(host)
        if literal is not None:
            self.check_address(target, literal, field)
        return target

    def check_address(self, target: Target, address: IpAddress, field: str = "WebhookUrl") -> None:
        if target.named or address.is_global:
            return
        raise ValidationError(
            f"{field} {target.url!r} reaches {address}, a loopback, link-local, private or "
            "reserved address; list its host in setting webhook_destinations to allow it",
            field=field,
        )

    async def resolve(self, target: Target) -> IpAddress:
        """The address to connect to: the first the host resolves to, all of them checked."""
        literal = _address(target.host)
        if literal is not None:
            return literal
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise OSError(f"{target.host} resolves to no address")
        for address in addresses:
            self.check_address(target, address)
        return addresses[0]


def _address(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The X-Sluice-Signature value for a body sent at `timestamp`."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Notifier:
    def __init__(
        self,
        attempts: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
        senders: int = 4,
        on_outcome: Callable[[str], None] = lambda outcome: None,
        policy: WebhookPolicy | None = None,
        secret: bytes = b"",
    ) -> None:
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue[tuple[str, dict[str, Any], Callable[[str], None] | None]] = (
            asyncio.Queue(queue_size)
        )
        self.senders = senders
        self.on_outcome = on_outcome
        self.tasks: list[asyncio.Task[None]] = []
        self.http: httpx.AsyncClient | None = None
        self.policy = policy or WebhookPolicy()
        self.secret = secret

    def check(self, url: str, field: str = "WebhookUrl") -> None:
        """Raise ValidationError unless `url` is a destination deliveries may go to."""
        self.policy.check(url, field)

    def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=self.timeout_s)
        self.tasks = [
            asyncio.create_task(self._send_loop(), name="webhooks") for _ in range(self.senders)
        ]

    def notify(
        self, url: str, payload: dict[str, Any], done: Callable[[str], None] | None = None
    ) -> None:
        """Queue a delivery; `done` hears its outcome (delivered, failed, refused, dropped)."""
        try:
            self.queue.put_nowait((url, payload, done))
        except asyncio.QueueFull:
            log.warning("webhook queue full: notification to %s dropped", url)
            self._outcome("dropped", done)

    def _outcome(self, outcome: str, done: Callable[[str], None] | None) -> None:
        self.on_outcome(outcome)
        if done is not None:
            done(outcome)

    async def _send_loop(self) -> None:
        while True:
            url, payload, done = await self.queue.get()
            try:
                self._outcome(await self._deliver(url, payload), done)
            finally:
                self.queue.task_done()

    async def _deliver(self, url: str, payload: dict[str, Any]) -> str:
        """Deliver with retries; the outcome."""
        assert self.http is not None
        try:
            target = self.policy.check(url)
        except ValidationError as exc:
            log.warning("webhook %s refused: %s", url, exc.message)
            return "refused"
        body = json.dumps(payload).encode()
        delivery = uuid.uuid4().hex
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._post(target, body, delivery)
                if response.status_code < 300:
                    return "delivered"
                problem = f"HTTP {response.status_code}"
            except ValidationError as exc:
                log.warning("webhook %s refused: %s", url, exc.message)
                return "refused"
            except (httpx.HTTPError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                log.info("webhook %s: attempt %d failed (%s); retrying", url, attempt, problem)
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("webhook %s failed after %d attempts: %s", url, self.attempts, problem)
        return "failed"

    async def _post(self, target: Target, body: bytes, delivery: str) -> httpx.Response:
        """POST to the address the policy checked, naming the host in Host and TLS SNI."""
        assert self.http is not None
        address = await self.policy.resolve(target)
        netloc = f"[{address}]" if address.version == 6 else str(address)
        parts = urlsplit(target.url)
        url = parts._replace(netloc=f"{netloc}:{target.port}").geturl()
        stamp = int(time.time())
        headers = {
            "Host": parts.netloc,
            "Content-Type": "application/json",
            "User-Agent": "sluice-webhooks",
            "X-Sluice-Delivery": delivery,
            "X-Sluice-Signature": sign(self.secret, stamp, body),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else None
        return await self.http.post(url, content=body, headers=headers, extensions=extensions)

    async def close(self, grace_s: float = 2.0) -> None:
        """Give queued notifications `grace_s` to go out, then stop."""
        if self.tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), grace_s)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        if self.http is not None:
            await self.http.aclose()
