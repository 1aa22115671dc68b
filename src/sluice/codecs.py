"""Decode request bodies into arrays and encode predictions, by content type. Runs in workers."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from sluice.errors import UnsupportedContentType, ValidationError
from sluice.types import CSV, JSON, JSONLINES, NPY, media_type

Prediction = Mapping[str, Any]
"""What a runtime returns: named outputs; "predictions" is the main one."""

DECODABLE = (JSON, CSV, NPY, JSONLINES)
ENCODABLE = (JSON, CSV, NPY, JSONLINES)

__all__ = ["check_accept", "decode", "encode", "media_type"]


def decode(body: bytes, content_type: str) -> np.ndarray:
    """Turn a request body into a 2-D array of rows; raise ValidationError naming the problem."""
    kind = media_type(content_type)
    if not body:
        raise ValidationError("request body is empty", field="body")
    if kind == JSON:
        return _rows(_load_json(body), "JSON")
    if kind == JSONLINES:
        rows = [_load_json(line) for line in body.splitlines() if line.strip()]
        return _rows(rows, "JSON Lines")
    if kind == CSV:
        return _decode_csv(body)
    if kind == NPY:
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as exc:  # numpy raises several types for bad input
            raise ValidationError(f"body is not a valid .npy array: {exc}", field="body") from exc
        return _rows(array, "NPY")
    raise UnsupportedContentType(
        f"content type {content_type!r} is not supported; use one of {', '.join(DECODABLE)}",
        field="Content-Type",
    )


def check_accept(accept: str) -> None:
    """Refuse an Accept type before the model runs, not after."""
    if media_type(accept) not in ENCODABLE:
        raise UnsupportedContentType(
            f"accept type {accept!r} is not supported; use one of {', '.join(ENCODABLE)}",
            field="Accept",
        )


def encode(prediction: Prediction, accept: str, bare: bool = False) -> tuple[bytes, str]:
    """Encode a runtime's outputs as the client asked (JSON by default). `bare`: JSON is
    the main output's list alone, as SageMaker's framework containers answer, instead of
    an object of every named output."""
    kind = media_type(accept)
    main = np.asarray(prediction["predictions"])
    if bare and kind == JSON:
        return json.dumps(_plain(main), separators=(",", ":")).encode(), JSON
    if kind == JSON:
        doc = {key: _plain(value) for key, value in prediction.items()}
        return json.dumps(doc, separators=(",", ":")).encode(), JSON
    if kind == JSONLINES:
        lines = [json.dumps(row, separators=(",", ":")) for row in _plain(main)]
        return ("\n".join(lines) + "\n").encode(), JSONLINES
    if kind == CSV:
        if main.dtype.kind in "biuf" and main.ndim in (1, 2):
            # Numbers need no quoting: joined directly, as csv.writer would write them.
            rows: Iterable[str]
            if main.ndim == 1:
                rows = map(str, main.tolist())
            else:
                rows = (",".join(map(str, row)) for row in main.tolist())
            return ("\n".join(rows) + "\n").encode(), CSV
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in main.tolist() if main.ndim else [main.tolist()]:
            writer.writerow(row if isinstance(row, list) else [row])
        return out.getvalue().encode(), CSV
    if kind == NPY:
        buffer = io.BytesIO()
        np.save(buffer, main, allow_pickle=False)
        return buffer.getvalue(), NPY
    check_accept(accept)
    raise AssertionError("unreachable")


def _load_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValidationError(f"body is not valid JSON: {exc}", field="body") from exc


def _rows(value: Any, what: str) -> np.ndarray:
    if isinstance(value, dict):
        for key in ("instances", "inputs", "data"):
            if key in value:
                value = value[key]
                break
        else:
            raise ValidationError(
                f"{what} object must hold rows under 'instances', 'inputs' or 'data'",
                field="body",
            )
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise ValidationError(f"{what} rows must all have the same length", field="body") from exc
    if array.dtype == object:
        raise ValidationError(f"{what} rows must all have the same length", field="body")
    if array.ndim == 0:
        raise ValidationError(f"{what} body must be a list of rows, not a scalar", field="body")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.size == 0:
        raise ValidationError(f"{what} body holds no values", field="body")
    if array.dtype.kind not in "biuf":
        # Strings that are not numbers stay strings, for models that take them (encoders).
        with contextlib.suppress(ValueError):
            array = array.astype(np.float64)
    return array


ARROW_CSV_FROM = 64 * 1024
"""Bodies at least this large are parsed by Arrow's CSV reader (in C++, many times faster
than the csv module on batches); smaller ones keep the csv module (no import cost)."""


def _decode_csv(body: bytes) -> np.ndarray:
    if len(body) >= ARROW_CSV_FROM:
        numbers = _numeric_csv_with_arrow(body)
        if numbers is not None:
            return numbers
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("CSV body is not UTF-8 text", field="body") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        raise ValidationError("CSV body holds no rows", field="body")
    width = len(rows[0])
    for number, row in enumerate(rows, start=1):
        if len(row) != width:
            raise ValidationError(
                f"CSV row {number} has {len(row)} values, the first row has {width}",
                field="body",
            )
    try:
        return np.array(rows, dtype=np.float64)
    except ValueError:
        return np.array(rows, dtype=object).astype(str)


def _numeric_csv_with_arrow(body: bytes) -> np.ndarray | None:
    """The rows of an all-numeric CSV body with no missing values; None for anything else
    (ragged rows, text, gaps), which the csv module then reads and explains."""
    import pyarrow as pa
    import pyarrow.csv as arrow_csv

    try:
        table = arrow_csv.read_csv(
            pa.py_buffer(body),
            read_options=arrow_csv.ReadOptions(autogenerate_column_names=True),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    columns = table.columns
    if not columns or not table.num_rows:
        return None
    if any(c.null_count or not pa.types.is_integer(c.type) and not pa.types.is_floating(c.type)
           for c in columns):  # fmt: skip
        return None
    out = np.empty((table.num_rows, len(columns)), dtype=np.float64)
    for number, column in enumerate(columns):
        out[:, number] = column.to_numpy()
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
