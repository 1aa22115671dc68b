"""Domain objects returned by the store and the services: frozen, no ORM, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EndpointStatus(StrEnum):
    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    DELETING = "Deleting"
    FAILED = "Failed"
    SYSTEM_UPDATING = "SystemUpdating"
    """Workers are being brought back after a server restart (SageMaker's maintenance state)."""
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"
    """An update failed and so did its rollback: old and new fleets may both serve."""


class VariantKind(StrEnum):
    PRODUCTION = "production"
    SHADOW = "shadow"


@dataclass(frozen=True)
class Model:
    name: str
    artifact_uri: str
    model_dir: str
    """Where the artifact was unpacked inside the artifact store."""
    runtime: str
    image: str | None
    environment: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class VariantSpec:
    """One variant in an endpoint config: a production variant or a shadow."""

    name: str
    model_name: str
    kind: VariantKind = VariantKind.PRODUCTION
    initial_weight: float = 1.0
    instance_count: int = 1
    sampling_percentage: int = 100
    """Shadows only: the share of production requests copied to this variant."""


@dataclass(frozen=True)
class DataCapture:
    enabled: bool = True
    sampling_percentage: int = 100
    capture_input: bool = True
    capture_output: bool = True
    destination: str | None = None
    """A directory or file:// URI; default: `capture/` under the home."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "sampling_percentage": self.sampling_percentage,
            "capture_input": self.capture_input,
            "capture_output": self.capture_output,
            "destination": self.destination,
        }


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    variants: tuple[VariantSpec, ...]
    data_capture: DataCapture | None = None
    sticky_header: str | None = None
    """A request header whose value keeps a caller on the same production variant."""
    created_at: datetime | None = None

    @property
    def production(self) -> tuple[VariantSpec, ...]:
        return tuple(v for v in self.variants if v.kind is VariantKind.PRODUCTION)

    @property
    def shadows(self) -> tuple[VariantSpec, ...]:
        return tuple(v for v in self.variants if v.kind is VariantKind.SHADOW)


@dataclass(frozen=True)
class EndpointVariant:
    name: str
    model_name: str
    kind: VariantKind
    current_weight: float
    desired_weight: float
    current_instance_count: int
    desired_instance_count: int
    sampling_percentage: int
    status: str


@dataclass(frozen=True)
class Endpoint:
    name: str
    config_name: str
    status: EndpointStatus
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    variants: tuple[EndpointVariant, ...] = field(default=())
    sticky_layout: tuple[tuple[float, float, str], ...] = ()
    """Key-space segments per production variant, kept so sticky callers stay put."""

    def production_weights(self) -> dict[str, float]:
        return {v.name: v.current_weight for v in self.variants if v.kind is VariantKind.PRODUCTION}

    def variant(self, name: str) -> EndpointVariant | None:
        return next((v for v in self.variants if v.name == name), None)
