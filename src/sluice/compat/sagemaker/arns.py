"""ARNs in one account/region form: `arn:aws:sagemaker:<region>:<account>:<kind>/<name>`.

As SageMaker does, the name in an ARN is lower-cased; `parse` gives it back that way and
callers match it against names case-insensitively.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.compat.sagemaker.shapes import ValidationException
from sluice.entities import ResourceKind


@dataclass(frozen=True)
class Arns:
    region: str
    account: str

    def of(self, kind: ResourceKind, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind.value}/{name.lower()}"

    def parse(self, arn: str, field: str = "ResourceArn") -> tuple[ResourceKind, str]:
        """The kind and (lower-cased) name of a resource ARN of this server."""
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[:3] != ["arn", "aws", "sagemaker"] or "/" not in parts[5]:
            raise ValidationException(f"{arn!r} is not a SageMaker ARN", field=field)
        if (parts[3], parts[4]) != (self.region, self.account):
            raise ValidationException(
                f"{arn!r} is not in this server's region and account "
                f"({self.region}, {self.account})",
                field=field,
            )
        kind, _, name = parts[5].partition("/")
        try:
            return ResourceKind(kind), name
        except ValueError:
            known = ", ".join(k.value for k in ResourceKind)
            raise ValidationException(
                f"resources of type {kind!r} cannot be tagged here (known: {known})", field=field
            ) from None
