"""Lineage walks: from an endpoint, a variant or a captured inference back to the package
(its data, code and approval), and from a package forward to every endpoint that served it.

An endpoint's history of configs is read from its deployments: it ran its first config
from its creation, moved to a deployment's new config when that completed, and served
both old and new while a deployment was under way. An inference is placed by finding its
capture record (variant and time) and the config live at that time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice import entities as e
from sluice.control.deployments import DeploymentService
from sluice.control.endpoints import EndpointService
from sluice.control.registry import RegistryService
from sluice.errors import NotFound, ValidationError

MAX_PARENTS = 20
"""How far a package's parents are followed (a guard against a cycle in old data)."""


@dataclass(frozen=True)
class Period:
    """An endpoint ran `config` from `since` until `until` (None: it still does)."""

    config: str
    since: datetime
    until: datetime | None
    deployment: int | None = None
    """The deployment that brought the config in (None: the endpoint's first config)."""


class LineageService:
    def __init__(
        self,
        endpoints: EndpointService,
        deployments: DeploymentService,
        registry: RegistryService,
        capture_roots: list[Path],
    ) -> None:
        self.endpoints = endpoints
        self.deployments = deployments
        self.registry = registry
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
        }

    def of_inference(self, inference_id: str, endpoint: str | None = None) -> dict[str, Any]:
        """Find a captured inference and walk back from the variant that answered it."""
        names = [endpoint] if endpoint else [ep.name for ep in self.endpoints.list_endpoints()]
        for name in names:
            periods = self.timeline(name)
            for variant, when in self._find_capture(name, periods, inference_id):
                live = [
                    p for p in periods
                    if p.since <= when and (p.until is None or when < p.until)
                ]  # fmt: skip
                candidates = []
                for period in live:
                    config = self._config(period.config)
                    spec = next((v for v in config.variants if v.name == variant), None)
                    if spec is not None:
                        entry = self._variant(variant, spec.model_name, spec.kind.value)
                        candidates.append({"config": period.config, **entry})
                return {
                    "inference_id": inference_id,
                    "endpoint": name,
                    "variant": variant,
                    "time": when,
                    "ambiguous": len(candidates) > 1,
                    "served_by": candidates,
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
        models = sorted(self.registry.repo.models_of([package.ref]))
        served = []
        for endpoint in self.endpoints.list_endpoints():
            for period in self.timeline(endpoint.name):
                try:
                    config = self._config(period.config)
                except NotFound:
                    continue
                variants = [v.name for v in config.variants if v.model_name in models]
                if variants:
                    served.append({"endpoint": endpoint.name, "variants": variants,
                                   **asdict(period)})  # fmt: skip
        return {"package": self._package(package), "models": models, "endpoints": served}

    def timeline(self, endpoint: str) -> list[Period]:
        """The configs `endpoint` ran, oldest first (overlapping while deploying)."""
        current = self.endpoints.get_endpoint(endpoint)
        history = sorted(self.deployments.history(endpoint), key=lambda d: d.id)
        first = history[0].from_config if history else current.config_name
        periods = [Period(first, current.created_at, None)]
        for deployment in history:
            moved = deployment.state is e.DeploymentState.COMPLETED
            ended = deployment.finished_at
            # The new config serves from the start of its deployment: until its end if
            # rolled back, for good if it completed.
            periods.append(
                Period(
                    deployment.to_config,
                    deployment.created_at,
                    None if moved else ended,
                    deployment.id,
                )
            )
            if moved:
                for i, period in enumerate(periods[:-1]):
                    if period.until is None:
                        periods[i] = Period(period.config, period.since, ended, period.deployment)
        return periods

    # -- pieces

    def _variant(self, name: str, model_name: str, kind: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"variant": name, "kind": kind, "model": {"name": model_name}}
        try:
            model = self.endpoints.get_model(model_name)
        except NotFound:
            entry["model"]["deleted"] = True
            return entry
        entry["model"].update(
            artifact=model.artifact_uri, runtime=model.runtime, created_at=model.created_at
        )
        entry["package"] = None
        if model.package is not None:
            try:
                entry["package"] = self._package(self.registry.get(model.package))
            except NotFound:
                entry["package"] = {"ref": model.package, "deleted": True}
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
        self, endpoint: str, periods: list[Period], inference_id: str
    ) -> Iterator[tuple[str, datetime]]:
        """(variant, time) of each capture record of `inference_id` on `endpoint`."""
        roots = list(self.capture_roots)
        for period in periods:
            try:
                capture = self._config(period.config).data_capture
            except NotFound:
                continue
            if capture is not None and capture.destination:
                roots.append(self.endpoints.artifacts.objects.local(capture.destination))
        needle = b'"inferenceId":' + json.dumps(inference_id).encode()
        for root in dict.fromkeys(roots):
            base = root / endpoint
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.jsonl")):
                data = path.read_bytes()
                at = data.find(needle)
                if at < 0:
                    continue
                start = data.rfind(b"\n", 0, at) + 1
                end = data.find(b"\n", at)
                try:
                    record = json.loads(data[start : end if end >= 0 else len(data)])
                    stamp = record["eventMetadata"]["inferenceTime"].replace("Z", "+00:00")
                    when = datetime.fromisoformat(stamp).astimezone(UTC)
                except (ValueError, KeyError, TypeError):
                    continue
                yield path.relative_to(base).parts[0], when


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
