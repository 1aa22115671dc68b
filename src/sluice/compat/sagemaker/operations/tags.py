"""AddTags, ListTags, DeleteTags on every kind of resource served (see ResourceKind)."""

from __future__ import annotations

from collections.abc import Iterable

from sluice.compat.sagemaker.operations import Members, Services, operation, tags_of
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.entities import ResourceKind
from sluice.errors import NotFound

DEFAULT_MAX_RESULTS = 50


@operation("AddTags")
async def add_tags(s: Services, m: Members) -> Members:
    kind, name = _resource(s, m["ResourceArn"])
    tags = s.tags.add(kind, name, tags_of(m))
    return {"Tags": [{"Key": t.key, "Value": t.value} for t in tags]}


@operation("ListTags")
async def list_tags(s: Services, m: Members) -> Members:
    kind, name = _resource(s, m["ResourceArn"])
    tags = s.tags.get(kind, name)
    start = _offset(m.get("NextToken"))
    end = start + m.get("MaxResults", DEFAULT_MAX_RESULTS)
    return {
        "Tags": [{"Key": t.key, "Value": t.value} for t in tags[start:end]],
        "NextToken": str(end) if end < len(tags) else None,
    }


@operation("DeleteTags")
async def delete_tags(s: Services, m: Members) -> Members:
    kind, name = _resource(s, m["ResourceArn"])
    s.tags.remove(kind, name, m["TagKeys"])
    return {}


def _resource(s: Services, arn: str) -> tuple[ResourceKind, str]:
    """The kind and exact name of the resource an ARN names (ARNs lower-case names)."""
    kind, lowered = s.arns.parse(arn)
    names: Iterable[str]
    if kind is ResourceKind.MODEL:
        names = (x.name for x in s.endpoints.list_models())
    elif kind is ResourceKind.ENDPOINT_CONFIG:
        names = (x.name for x in s.endpoints.list_endpoint_configs())
    elif kind is ResourceKind.ENDPOINT:
        names = (x.name for x in s.endpoints.list_endpoints())
    elif kind is ResourceKind.MODEL_PACKAGE_GROUP:
        names = (x.name for x in s.registry.list_groups())
    elif kind is ResourceKind.MODEL_PACKAGE:
        names = (x.ref for x in s.registry.packages())
    else:
        names = (x.name for x in s.experiments.find())
    for name in names:
        if name.lower() == lowered:
            return kind, name
    raise NotFound(f'Could not find resource "{arn}".', field="ResourceArn")


def _offset(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise ValidationException("NextToken is not a token this server gave", field="NextToken")
    return int(token)
