"""Reading a baseline's JSON documents (statistics.json, constraints.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sluice.errors import ValidationError


def read_object(path: Path, field: str = "baseline") -> dict[str, Any]:
    """The JSON object in `path`; ValidationError, naming the file, when it is missing,
    unreadable, not JSON or not an object."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValidationError(f"the baseline has no {path.name} ({path})", field=field) from None
    except ValueError as e:
        raise ValidationError(f"{path} is not JSON: {e}", field=field) from None
    except OSError as e:
        raise ValidationError(f"cannot read {path}: {e}", field=field) from None
    if not isinstance(document, dict):
        raise ValidationError(f"{path} is not a JSON object", field=field)
    return document
