"""Lineage walks: from an endpoint, a variant or a captured inference back to the package
(its data, code and approval), and from a package forward to every endpoint that served it.

What served when comes from the serving history the store keeps (store/serving_history.py),
which outlives deleted endpoints, configs and models. An inference is placed by finding
its capture record (variant and time) and the periods live at that time: two while a
deployment was shifting traffic.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice import entities as e
from sluice.control.endpoints import EndpointService
from sluice.control.registry import RegistryService
from sluice.errors import NotFound, ValidationError
from sluice.store.serving_history import ServingHistory

MAX_PARENTS = 20
"""How far a package's parents are followed (a guard against a cycle in old data)."""


class LineageService:
    def __init__(
        self,
        endpoints: EndpointService,
        registry: RegistryService,
        history: ServingHistory,
        capture_roots: list[Path],
    ) -> None:
        self.endpoints = endpoints
        self.registry = registry
        self.history = history
        self.capture_roots = capture_roots
        """Where capture without a destination of its own lands (searched for inferences)."""

    # -- back

    def of_endpoint(self, name: str, variant: str | None = None) -> dict[str, Any]:
        """What the endpoint (or one of its variants) serves now, back to its packages."""
        endpoint = self.endpoints.get_endpoint(name)
        variants = [v for v in endpoint.variants if variant is None or v.name == variant]
        if not variants:
            raise NotFound(
                f"endpoint {name!r} has no variant {variant!r}",
                field="variant",
            )
        return {
            "endpoint": name,
            "config": endpoint.config_name,
            "variants": [self._variant(v.name, v.model_name, v.kind.value) for v in variants],
            "history": [
                _period(p)
                for p in self.history.periods(endpoint=name)
                if variant is None or p.variant == variant
            ],
        }

    def of_inference(self, inference_id: str, endpoint: str | None = None) -> dict[str, Any]:
        """Find a captured inference and walk back from the variant that answered it."""
        periods = self.history.periods(endpoint=endpoint)
        names = [endpoint] if endpoint else list(dict.fromkeys(p.endpoint for p in periods))
        for name in names:
            mine = [p for p in periods if p.endpoint == name]
            for variant, when in self._find_capture(name, mine, inference_id):
                live = [
                    p for p in mine
                    if p.variant == variant and p.since <= when
                    and (p.until is None or when < p.until)
                ]  # fmt: skip
                return {
                    "inference_id": inference_id,
                    "endpoint": name,
                    "variant": variant,
                    "time": when,
                    "ambiguous": len(live) > 1,
                    "served_by": [
                        {
                            "config": p.config,
                            **self._variant(p.variant, p.model, p.kind.value, p.package),
                        }
                        for p in live
                    ],  # fmt: skip
                }
        raise NotFound(
            f"no captured inference {inference_id!r}"
            + (f" on endpoint {endpoint!r}" if endpoint else ""),
            field="inference_id",
        )

    # -- forward

    def of_package(self, ref: str) -> dict[str, Any]:
        """Every model made from the package and every endpoint that ran one, and when."""
        package = self.registry.get(ref)
        periods = self.history.periods(packages=[package.ref])
        models = sorted(
            set(self.registry.repo.models_of([package.ref])) | {p.model for p in periods}
        )
        return {
            "package": self._package(package),
            "models": models,
            "endpoints": [_period(p) for p in periods],
        }

    # -- pieces

    def _variant(
        self, name: str, model_name: str, kind: str, package: str | None = None
    ) -> dict[str, Any]:
        """A variant, its model and the model's package (`package`: as recorded, for a
        model deleted since)."""
        entry: dict[str, Any] = {"variant": name, "kind": kind, "model": {"name": model_name}}
        try:
            model = self.endpoints.get_model(model_name)
        except NotFound:
            entry["model"]["deleted"] = True
        else:
            entry["model"].update(
                artifact=model.artifact_uri, runtime=model.runtime, created_at=model.created_at
            )
            package = model.package
        entry["package"] = None
        if package is not None:
            try:
                entry["package"] = self._package(self.registry.get(package))
            except NotFound:
                entry["package"] = {"ref": package, "deleted": True}
        return entry

    def _package(self, package: e.ModelPackage) -> dict[str, Any]:
        lineage = package.lineage
        out = {
            "ref": package.ref,
            "approval": package.approval.value,
            "approval_by": package.approval_by,
            "approval_reason": package.approval_reason,
            "approved_at": next(
                (
                    h.at
                    for h in reversed(package.history)
                    if h.kind == "approval" and h.status == e.ApprovalStatus.APPROVED.value
                ),
                None,
            ),  # fmt: skip
            "registered_at": package.created_at,
            "registered_by": package.created_by,
            "metrics": package.metrics,
            "code": {
                "commit": lineage.code_commit,
                "dirty": lineage.code_dirty,
                "repository": lineage.code_repository,
            },
            "data": [asdict(d) for d in lineage.data],
            "parameters": lineage.parameters,
            "build": {
                "id": lineage.build_id,
                "system": lineage.build_system,
                "url": lineage.build_url,
            },
            "parents": self._parents(lineage.parent),
        }
        return out

    def _parents(self, ref: str | None) -> list[dict[str, Any]]:
        chain: list[dict[str, Any]] = []
        while ref is not None and len(chain) < MAX_PARENTS:
            try:
                parent = self.registry.get(ref)
            except NotFound:
                chain.append({"ref": ref, "deleted": True})
                break
            chain.append(
                {
                    "ref": parent.ref,
                    "approval": parent.approval.value,
                    "code_commit": parent.lineage.code_commit,
                    "data": [asdict(d) for d in parent.lineage.data],
                }
            )
            ref = parent.lineage.parent
        return chain

    def _config(self, name: str) -> e.EndpointConfig:
        return self.endpoints.get_endpoint_config(name)

    def _find_capture(
        self, endpoint: str, periods: list[e.ServingPeriod], inference_id: str
    ) -> Iterator[tuple[str, datetime]]:
        """(variant, time) of each capture record of `inference_id` on `endpoint`."""
        roots = list(self.capture_roots)
        objects = self.endpoints.artifacts.objects
        for period in periods:
            destination = period.capture
            if destination is None:  # recorded before destinations were (or none named)
                try:
                    capture = self._config(period.config).data_capture
                except NotFound:
                    continue
                destination = capture.destination if capture is not None else None
            if destination:
                roots.append(objects.local(destination, "capture"))
        needle = b'"inferenceId":' + json.dumps(inference_id).encode()
        for root in dict.fromkeys(roots):
            base = root / endpoint
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.jsonl")):
                line = _line_with(path, needle)
                if line is None:
                    continue
                try:
                    record = json.loads(line)
                    stamp = record["eventMetadata"]["inferenceTime"].replace("Z", "+00:00")
                    when = datetime.fromisoformat(stamp).astimezone(UTC)
                except (ValueError, KeyError, TypeError):
                    continue
                yield path.relative_to(base).parts[0], when


def _line_with(path: Path, needle: bytes) -> bytes | None:
    """The line of `path` that holds `needle`, searched without reading the file into memory
    (an hour of capture can be large)."""
    with path.open("rb") as f:
        if path.stat().st_size == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            at = data.find(needle)
            if at < 0:
                return None
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            return data[start : end if end >= 0 else len(data)]


def _period(period: e.ServingPeriod) -> dict[str, Any]:
    return {**asdict(period), "kind": period.kind.value}


def check_query(
    endpoint: str | None, variant: str | None, inference_id: str | None, package: str | None
) -> None:
    """Exactly one starting point: an endpoint (and variant), an inference or a package."""
    starts = sum(x is not None for x in (inference_id, package)) + (
        endpoint is not None and inference_id is None
    )
    if starts != 1 or (variant is not None and (endpoint is None or inference_id is not None)):
        raise ValidationError(
            "give one of: endpoint (with an optional variant), inference_id (with an "
            "optional endpoint), package",
            field="query",
        )
