"""SigV4 verification against requests signed by botocore itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sluice.compat.sagemaker.signing import SignatureCheck, SignatureError

KEYS = {"AKIDTEST": "the-secret"}
URL = "http://127.0.0.1:8080"


def signed(
    path: str = "/", body: bytes = b"{}", secret: str = "the-secret", query: str = ""
) -> tuple[str, bytes, bytes, dict[str, str], bytes]:
    request = AWSRequest(
        "POST",
        f"{URL}{path}" + (f"?{query}" if query else ""),
        data=body,
        headers={"X-Amz-Target": "SageMaker.ListModels", "Content-Type": "application/json"},
    )
    SigV4Auth(Credentials("AKIDTEST", secret), "sagemaker", "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:8080"
    return "POST", path.encode(), query.encode(), headers, body


def code(check: SignatureCheck, *request: object) -> str:
    with pytest.raises(SignatureError) as info:
        check.verify(*request)  # type: ignore[arg-type]
    return info.value.code


def test_a_request_signed_by_botocore_passes() -> None:
    check = SignatureCheck(KEYS)
    check.verify(*signed())
    check.verify(*signed("/endpoints/ep/invocations", b"[[1, 2]]", query="b=2&a=1"))


def test_tampering_a_wrong_secret_and_unknown_keys_fail() -> None:
    check = SignatureCheck(KEYS)
    method, path, query, headers, body = signed()
    assert code(check, method, path, query, headers, b'{"MaxResults": 1}') == (
        "InvalidSignatureException"
    )
    assert code(check, method, path, query, {**headers, "x-amz-target": "SageMaker.DeleteModel"},
                body) == "InvalidSignatureException"  # fmt: skip
    assert code(check, *signed(secret="guess")) == "InvalidSignatureException"
    assert code(SignatureCheck({"OTHER": "x"}), *signed()) == "UnrecognizedClientException"
    headers.pop("authorization")
    assert code(check, method, path, query, headers, body) == "MissingAuthenticationTokenException"
    headers["authorization"] = "Basic dXNlcjpwYXNz"
    assert code(check, method, path, query, headers, body) == "IncompleteSignatureException"


def test_old_signatures_expire() -> None:
    class Later(datetime):
        @classmethod
        def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
            return datetime.now(UTC) + timedelta(minutes=20)

    assert code(SignatureCheck(KEYS, now=Later), *signed()) == "InvalidSignatureException"


@pytest.mark.parametrize(
    "stamp",
    ["", "2026-12-01T18:00:00Z", "20261301T000000Z", "20261201T250000Z", "٢٠٢٦1201T000000Z"],
)
def test_a_missing_or_malformed_date_is_an_incomplete_signature(stamp: str) -> None:
    method, path, query, headers, body = signed()
    headers["x-amz-date"] = stamp
    assert code(SignatureCheck(KEYS), method, path, query, headers, body) == (
        "IncompleteSignatureException"
    )
