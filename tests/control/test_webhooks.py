"""Webhook destinations (no SSRF) and signed deliveries, with a real receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from sluice.control.webhooks import Notifier, WebhookPolicy, sign
from sluice.errors import ValidationError


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "http://127.0.0.1:8080/api/v1/endpoints",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
        "http://0.0.0.0/hook",
        "http://user:password@hooks.example.com/hook",
        "ftp://hooks.example.com/hook",
        "file:///etc/passwd",
        "not a url",
        "http://[::1/hook",
    ],
)
def test_destinations_a_request_may_not_reach(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        WebhookPolicy().check(url)
    assert info.value.field == "WebhookUrl"


def test_an_allow_list_admits_only_its_destinations() -> None:
    policy = WebhookPolicy(
        ["https://hooks.example.com/services/", "https://*.alerts.example.org", "http://127.0.0.1"]
    )
    policy.check("https://hooks.example.com/services/T1/B2")
    policy.check("https://eu.alerts.example.org/x")
    policy.check("http://127.0.0.1:9000/hook")  # loopback, but listed by name
    for refused in (
        "https://hooks.example.com/other",
        "http://hooks.example.com/services/x",
        "https://alerts.example.org.evil.com/x",
        "https://evil.com/?https://hooks.example.com/services/",
        "http://127.0.0.1.nip.io/hook",
    ):
        with pytest.raises(ValidationError, match="allowed destinations"):
            policy.check(refused)
    with pytest.raises(ValidationError, match="webhook destination"):
        WebhookPolicy(["hooks.example.com"])


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_port
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.http.shutdown()


def deliver(policy: WebhookPolicy, url: str, payload: dict[str, Any]) -> list[str]:
    outcomes: list[str] = []

    async def main() -> None:
        notifier = Notifier(attempts=2, backoff_s=0.01, on_outcome=outcomes.append,
                            policy=policy, secret=b"k3y")  # fmt: skip
        notifier.start()
        notifier.notify(url, payload)
        await notifier.close(grace_s=5)

    asyncio.run(main())
    return outcomes


def test_deliveries_are_signed_and_name_their_host(receiver: Receiver) -> None:
    policy = WebhookPolicy(["http://localhost"])
    url = f"http://localhost:{receiver.port}/hook"
    assert deliver(policy, url, {"alarm": "a", "state": "ALARM"}) == ["delivered"]
    ((headers, body),) = receiver.requests
    assert headers["host"] == f"localhost:{receiver.port}"
    assert headers["x-sluice-delivery"]
    stamp, mac = (part.split("=", 1)[1] for part in headers["x-sluice-signature"].split(","))
    expected = hmac.new(b"k3y", f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
    assert sign(b"k3y", int(stamp), body) == headers["x-sluice-signature"]


def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(receiver: Receiver) -> None:
    # "localhost" passes the check at configuration (a name), but resolves to loopback.
    policy = WebhookPolicy()
    url = f"http://localhost:{receiver.port}/hook"
    policy.check(url)
    assert deliver(policy, url, {"alarm": "a"}) == ["refused"]
    assert receiver.requests == []
