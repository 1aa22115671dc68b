"""The service model that ships with botocore, cut down to the operations sluice serves.

`ServiceModel.decode_input` checks a request against the operation's input shape the way
AWS does (required members, types, enums, lengths, ranges, patterns) and answers with
AWS's own wording, naming the member (`productionVariants.1.member.variantName`). It
also turns timestamps into datetimes. One liberty: where AWS wants an S3 URI, a file://
URI or an absolute path is taken too (a local server's artifacts live on its disk).
`ServiceModel.problems` checks any value against any shape, strictly (unknown members
too); the tests use it on our responses.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

import regex

from sluice.errors import ValidationError

Shape = dict[str, Any]


class ValidationException(ValidationError):
    """A request that does not fit the service model (AWS's unmodelled ValidationException)."""

    code = "ValidationException"


class LazyServiceModel:
    """A service model read from botocore on first use, off the event loop (reading and
    indexing it takes a moment a server start need not wait for)."""

    def __init__(self, service: str, operations: Collection[str]) -> None:
        self.service = service
        self.operation_names = sorted(operations)
        self.loaded: ServiceModel | None = None
        self._loading = asyncio.Lock()

    async def get(self) -> ServiceModel:
        async with self._loading:
            if self.loaded is None:
                self.loaded = await asyncio.to_thread(
                    ServiceModel, self.service, self.operation_names
                )
        return self.loaded


class ServiceModel:
    def __init__(self, service: str, operations: Collection[str]) -> None:
        from botocore.loaders import Loader

        full = Loader().load_service_model(service, "service-2")
        self.metadata: dict[str, Any] = dict(full["metadata"])
        self.operations: dict[str, Shape] = {}
        self.shapes: dict[str, Shape] = {}
        for name in operations:
            operation = full["operations"][name]
            self.operations[name] = operation
            for part in ("input", "output"):
                if part in operation:
                    self._keep(full["shapes"], operation[part]["shape"])
            for error in operation.get("errors", ()):
                self._keep(full["shapes"], error["shape"])

    def _keep(self, shapes: dict[str, Shape], name: str) -> None:
        if name in self.shapes:
            return
        shape = shapes[name]
        self.shapes[name] = shape
        for ref in _references(shape):
            self._keep(shapes, ref)

    def errors(self, operation: str) -> set[str]:
        """The error codes the operation models (ResourceNotFound, ConflictException, ...)."""
        return {e["shape"] for e in self.operations[operation].get("errors", ())}

    def idempotency_token(self, operation: str) -> str | None:
        """The input member botocore fills with a fresh token when the caller gives none
        (ClientRequestToken, ClientToken): the operation is to be done once per token."""
        ref = self.operations[operation].get("input")
        members = self.shapes[ref["shape"]].get("members", {}) if ref else {}
        return next((k for k, v in members.items() if v.get("idempotencyToken")), None)

    def output_shape(self, operation: str) -> str | None:
        output = self.operations[operation].get("output")
        return str(output["shape"]) if output else None

    def decode_input(self, operation: str, params: Any) -> dict[str, Any]:
        """The request's members, checked; timestamps become datetimes, blobs bytes."""
        ref = self.operations[operation].get("input")
        if ref is None:
            return {}
        if not isinstance(params, dict):
            raise ValidationException("the request body must be a JSON object", field="body")
        problems: list[tuple[str, str]] = []
        decoded = self._decode(ref["shape"], params, "", problems)
        if problems:
            count = len(problems)
            detail = "; ".join(message for _, message in problems)
            raise ValidationException(
                f"{count} validation error{'s' if count > 1 else ''} detected: {detail}",
                field=problems[0][0],
            )
        return dict(decoded)

    def _decode(self, name: str, value: Any, path: str, problems: list[tuple[str, str]]) -> Any:
        shape = self.shapes[name]
        kind = shape["type"]

        def fail(constraint: str) -> None:
            problems.append((path, f"Value {_show(value)} at '{path}' failed to satisfy "
                                   f"constraint: Member must {constraint}"))  # fmt: skip

        if kind == "structure":
            if not isinstance(value, dict):
                fail("be a structure")
                return value
            members = shape.get("members", {})
            out: dict[str, Any] = {}
            for required in shape.get("required", ()):
                if value.get(required) is None:
                    at = _join(path, required)
                    problems.append(
                        (
                            at,
                            f"Value null at '{at}' failed to satisfy constraint: "
                            "Member must not be null",
                        )  # fmt: skip
                    )
            for key, item in value.items():
                member = members.get(key)
                if member is None or item is None:
                    continue  # AWS ignores members it does not know (newer clients)
                out[key] = self._decode(member["shape"], item, _join(path, key), problems)
            return out
        if kind == "list":
            if not isinstance(value, list):
                fail("be a list")
                return value
            _check_size(shape, len(value), fail)
            member = shape["member"]["shape"]
            return [
                self._decode(member, item, f"{path}.{i}.member", problems)
                for i, item in enumerate(value, start=1)
            ]
        if kind == "map":
            if not isinstance(value, dict):
                fail("be a map")
                return value
            _check_size(shape, len(value), fail)
            key_shape, value_shape = shape["key"]["shape"], shape["value"]["shape"]
            return {
                self._decode(key_shape, k, f"{path}.key", problems): self._decode(
                    value_shape, v, f"{path}.{k}", problems
                )
                for k, v in value.items()
            }
        if kind == "string":
            if not isinstance(value, str):
                fail("be a string")
                return value
            _check_size(shape, len(value), fail, "length")
            if "enum" in shape and value not in shape["enum"]:
                fail(f"satisfy enum value set: [{', '.join(shape['enum'])}]")
            pattern = shape.get("pattern")
            if pattern and not _regex(pattern).fullmatch(value) and not _local(pattern, value):
                fail(f"satisfy regular expression pattern: {pattern}")
            return value
        if kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                fail("be an integer")
                return value
            _check_range(shape, value, fail)
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                fail("be a number")
                return value
            _check_range(shape, value, fail)
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                fail("be a boolean")
            return value
        if kind == "timestamp":
            moment = _timestamp(value)
            if moment is None:
                fail("be a timestamp (epoch seconds or ISO 8601)")
                return value
            return moment
        if kind == "blob":
            try:
                return base64.b64decode(value, validate=True)
            except (ValueError, TypeError):
                fail("be base64-encoded")
                return value
        return value

    def problems(self, name: str, value: Any, path: str = "") -> Iterator[str]:
        """What in `value` does not fit shape `name`, unknown members included (strict)."""
        shape = self.shapes[name]
        kind = shape["type"]
        if kind == "structure":
            if not isinstance(value, dict):
                yield f"{path}: not an object"
                return
            members = shape.get("members", {})
            for required in shape.get("required", ()):
                if value.get(required) is None:
                    yield f"{_join(path, required)}: required and missing"
            for key, item in value.items():
                if key not in members:
                    yield f"{_join(path, key)}: not a member of {name}"
                else:
                    yield from self.problems(members[key]["shape"], item, _join(path, key))
        elif kind == "list":
            if not isinstance(value, list):
                yield f"{path}: not a list"
                return
            for i, item in enumerate(value):
                yield from self.problems(shape["member"]["shape"], item, f"{path}[{i}]")
        elif kind == "map":
            if not isinstance(value, dict):
                yield f"{path}: not a map"
                return
            for k, v in value.items():
                yield from self.problems(shape["value"]["shape"], v, f"{path}.{k}")
        else:
            problems: list[tuple[str, str]] = []
            if kind == "timestamp":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    yield f"{path}: timestamps go out as epoch seconds, not {value!r}"
                return
            self._decode(name, value, path, problems)
            yield from (message for _, message in problems)


def _local(pattern: str, value: str) -> bool:
    """Where AWS takes an S3 URI, a server without S3 also takes a file:// URI or a path."""
    return "s3" in pattern and "://" in pattern and value.startswith(("file://", "/"))


def _references(shape: Shape) -> Iterator[str]:
    for part in ("member", "key", "value"):
        if part in shape:
            yield shape[part]["shape"]
    for member in shape.get("members", {}).values():
        yield member["shape"]


def _join(path: str, member: str) -> str:
    camel = member[:1].lower() + member[1:]
    return f"{path}.{camel}" if path else camel


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return f"'{text[:200]}'"


def _check_size(shape: Shape, size: int, fail: Any, what: str = "length") -> None:
    if "min" in shape and size < shape["min"]:
        fail(f"have {what} greater than or equal to {shape['min']}")
    if "max" in shape and size > shape["max"]:
        fail(f"have {what} less than or equal to {shape['max']}")


def _check_range(shape: Shape, value: float, fail: Any) -> None:
    if "min" in shape and value < shape["min"]:
        fail(f"have value greater than or equal to {shape['min']}")
    if "max" in shape and value > shape["max"]:
        fail(f"have value less than or equal to {shape['max']}")


@cache
def _regex(pattern: str) -> regex.Pattern[str]:
    """The model's (Java) patterns, Unicode classes such as \\p{L} and \\p{P} included.
    Java spells characters beyond the BMP as UTF-16 surrogate pairs (`\\uD800\\uDC00-
    \\uDBFF\\uDFFF`); Python names them by code point."""
    return regex.compile(
        pattern.replace("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF"),
        regex.DOTALL,
    )


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):  # a CBOR timestamp (tag 1), decoded already
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
