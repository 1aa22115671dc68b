"""Tags on models, endpoint configs, endpoints and inference experiments."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from sluice.entities import ResourceKind, Tag
from sluice.errors import ValidationError
from sluice.store.tag_repo import TagRepository

MAX_TAGS = 50
"""Per resource, as SageMaker."""


class TagService:
    def __init__(
        self, repo: TagRepository, getters: Mapping[ResourceKind, Callable[[str], object]]
    ) -> None:
        self.repo = repo
        self.getters = getters
        """Per kind, a lookup that raises NotFound for a resource that does not exist."""

    def add(self, kind: ResourceKind, name: str, tags: Sequence[Tag]) -> list[Tag]:
        """Add tags (a key already there takes the new value); returns all the tags."""
        self.getters[kind](name)
        check_tags(tags)
        return self.repo.put(kind, name, tags, MAX_TAGS)

    def get(self, kind: ResourceKind, name: str) -> list[Tag]:
        self.getters[kind](name)
        return self.repo.get(kind, name)

    def remove(self, kind: ResourceKind, name: str, keys: Iterable[str]) -> None:
        self.getters[kind](name)
        self.repo.delete(kind, name, keys)


def check_tags(tags: Sequence[Tag]) -> None:
    for tag in tags:
        _check(tag)


def _check(tag: Tag) -> None:
    if not 1 <= len(tag.key) <= 128:
        raise ValidationError("a tag key is 1 to 128 characters", field="Key")
    if len(tag.value) > 256:
        raise ValidationError("a tag value is at most 256 characters", field="Value")
    if tag.key.lower().startswith("aws:"):
        raise ValidationError(
            f"tag keys starting with 'aws:' are reserved: {tag.key!r}", field="Key"
        )
