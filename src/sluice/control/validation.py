"""Checks shared by every control service (names, numbers), raising ValidationError."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping

from sluice.errors import ValidationError
from sluice.gateway.multi_model import PRELOAD, preload_keys
from sluice.runtimes.multi_model import PINNED
from sluice.runtimes.registry import handler_script
from sluice.workers.batching import Batching

MAX_ID = 2**63 - 1
"""The largest number a stored id or version can be (a 64-bit signed integer)."""
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")


@functools.cache
def _name_pattern(max_length: int) -> re.Pattern[str]:
    return re.compile(rf"^[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,{max_length - 1}}}$")


def check_name(value: str, field: str, max_length: int = 63) -> str:
    """SageMaker's resource names: letters, digits and hyphens, at most `max_length`."""
    pattern = _name_pattern(max_length)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(
            f"{field} {value!r} must match {pattern.pattern} "
            f"(letters, digits and single hyphens, 1 to {max_length} characters)",
            field=field,
        )
    return value


def check_range(value: float, field: str, low: float, high: float | None = None) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{field} must be a finite number, got {value}", field=field)
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ValidationError(f"{field} must be {bound}, got {value:g}", field=field)


def check_header_name(value: str, field: str) -> str:
    if not _HEADER.fullmatch(value):
        raise ValidationError(f"{field} {value!r} is not a valid HTTP header name", field=field)
    return value.lower()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
INTERPRETER_PREFIXES = ("PYTHON", "LD_", "DYLD_", "GCONV_", "MALLOC_", "OPENSSL_", "JAVA_TOOL")
INTERPRETER_NAMES = frozenset(
    {"PATH", "HOME", "TMPDIR", "TEMP", "TMP", "IFS", "ENV", "BASH_ENV", "SHELLOPTS", "PS4",
     "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "NIS_PATH", "NLSPATH",
     "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR", "PERL5LIB", "PERL5OPT", "NODE_OPTIONS"}
)  # fmt: skip
"""Variables that change what the worker's interpreter or C library loads or where it
writes: a model may not set them (they would run code the model's artifact does not hold,
as the server's user)."""
MAX_ENVIRONMENT = 100


def check_environment(environment: Mapping[str, str], field: str = "Environment") -> None:
    """A model's environment: SageMaker's shape (at most 100 names of letters, digits and
    underscores; values up to 1,024 characters without NUL), and none of the variables
    that change the interpreter."""
    if len(environment) > MAX_ENVIRONMENT:
        raise ValidationError(
            f"{field} has {len(environment)} variables; at most {MAX_ENVIRONMENT}", field=field
        )
    for name, value in environment.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValidationError(
                f"{field} name {name[:80]!r} must be letters, digits and underscores, "
                "not starting with a digit",
                field=field,
            )
        upper = name.upper()
        if upper in INTERPRETER_NAMES or upper.startswith(INTERPRETER_PREFIXES):
            raise ValidationError(
                f"{field} may not set {name}: it changes what the worker's interpreter loads "
                "or where it writes",
                field=f"{field}.{name}",
            )
        if len(value) > 1024 or "\0" in value:
            raise ValidationError(
                f"{field} value of {name} must be at most 1,024 characters, without NUL",
                field=f"{field}.{name}",
            )
        if upper == PINNED:
            raise ValidationError(
                f"{field} may not set {name}: the server sets it (name the models to keep "
                f"loaded in {PRELOAD})",
                field=f"{field}.{name}",
            )
    Batching.from_environment(environment)  # its settings are numbers in range
    preload_keys(environment)  # keys under the prefix
    handler_script(environment)  # SAGEMAKER_PROGRAM stays inside the model's code
