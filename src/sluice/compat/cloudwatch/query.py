"""The AWS query protocol, as CloudWatch speaks it (older botocore; `POST /` with a form
body `Action=<Op>&Version=2010-08-01&...`): form parameters read into members by the
operation's input shape, and members written out as XML by its output shape.

Read: a structure's member `M` under prefix `P` is `P.M`; a list's items are
`P.member.1`, `P.member.2`, ...; a map's entries `P.entry.N.key` and `P.entry.N.value`;
numbers, booleans and timestamps arrive as text and take their shape's type.
Written: `<OpResponse xmlns=...><OpResult>...</OpResult><ResponseMetadata>...`; lists as
`<member>` items, maps as `<entry><key/><value/></entry>`, timestamps in ISO 8601.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape

from sluice.compat.sagemaker.shapes import ServiceModel

XMLNS = "http://monitoring.amazonaws.com/doc/2010-08-01/"
VERSION = "2010-08-01"


def read(model: ServiceModel, operation: str, form: Mapping[str, str]) -> dict[str, Any]:
    """The operation's input members from form parameters (types by the model; the model
    then checks them as it checks every protocol's)."""
    ref = model.operations[operation].get("input")
    if ref is None:
        return {}
    return _read_structure(model, ref["shape"], form, "")


def _read(model: ServiceModel, name: str, form: Mapping[str, str], key: str) -> Any:
    shape = model.shapes[name]
    kind = shape["type"]
    if kind == "structure":
        found = _read_structure(model, name, form, key + ".")
        return found if found else None
    if kind == "list":
        items: list[Any] = []
        of = shape["member"]["shape"]
        while (item := _read(model, of, form, f"{key}.member.{len(items) + 1}")) is not None:
            items.append(item)
        return items if items or key in form else None
    if kind == "map":
        entries: dict[Any, Any] = {}
        n = 1
        while f"{key}.entry.{n}.key" in form:
            entries[form[f"{key}.entry.{n}.key"]] = _read(
                model, shape["value"]["shape"], form, f"{key}.entry.{n}.value"
            )
            n += 1
        return entries or None
    text = form.get(key)
    if text is None:
        return None
    if kind in ("integer", "long"):
        return int(text) if text.lstrip("-").isdigit() else text
    if kind in ("double", "float"):
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text  # strings, and timestamps in ISO 8601 (the model reads them)


def _read_structure(
    model: ServiceModel, name: str, form: Mapping[str, str], prefix: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for member, ref in model.shapes[name].get("members", {}).items():
        value = _read(model, ref["shape"], form, f"{prefix}{member}")
        if value is not None:
            out[member] = value
    return out


def write(model: ServiceModel, operation: str, members: Mapping[str, Any], request_id: str) -> str:
    """The XML answer of an operation."""
    output = model.operations[operation].get("output")
    result = ""
    if output is not None:
        body = _write_structure(model, output["shape"], members)
        result = f"<{operation}Result>{body}</{operation}Result>"
    return (
        f'<{operation}Response xmlns="{XMLNS}">{result}<ResponseMetadata><RequestId>'
        f"{request_id}</RequestId></ResponseMetadata></{operation}Response>"
    )


def error(code: str, message: str, sender: bool, request_id: str) -> str:
    kind = "Sender" if sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{XMLNS}"><Error><Type>{kind}</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    )


def _write_structure(model: ServiceModel, name: str, value: Mapping[str, Any]) -> str:
    out = []
    for member, ref in model.shapes[name].get("members", {}).items():
        if member in value and value[member] is not None:
            out.append(f"<{member}>{_write(model, ref['shape'], value[member])}</{member}>")
    return "".join(out)


def _write(model: ServiceModel, name: str, value: Any) -> str:
    shape = model.shapes[name]
    kind = shape["type"]
    if kind == "structure":
        return _write_structure(model, name, value)
    if kind == "list":
        item = shape["member"]["shape"]
        return "".join(f"<member>{_write(model, item, v)}</member>" for v in value)
    if kind == "map":
        key, val = shape["key"]["shape"], shape["value"]["shape"]
        return "".join(
            f"<entry><key>{_write(model, key, k)}</key>"
            f"<value>{_write(model, val, v)}</value></entry>"
            for k, v in value.items()
        )
    if kind == "timestamp":
        moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if kind == "boolean":
        return "true" if value else "false"
    return escape(str(value))
