"""Request and response bodies of the native API; the source of its OpenAPI document."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from sluice import entities as e


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(Strict):
    name: str = Field(description="Unique model name (SageMaker's name rules).")
    artifact: str = Field(description="A directory or model.tar.gz, as a path or file:// URI.")
    runtime: str | None = Field(None, description="sklearn, onnx or python; detected if absent.")
    image: str | None = Field(None, description="A container image name, used as a runtime hint.")
    environment: dict[str, str] = Field(default_factory=dict)


class ModelOut(BaseModel):
    name: str
    artifact: str
    runtime: str
    image: str | None
    environment: dict[str, str]
    created_at: datetime

    @classmethod
    def of(cls, m: e.Model) -> ModelOut:
        return cls(
            name=m.name,
            artifact=m.artifact_uri,
            runtime=m.runtime,
            image=m.image,
            environment=m.environment,
            created_at=m.created_at,
        )


class VariantIn(Strict):
    name: str
    model: str
    weight: float = Field(1.0, ge=0, description="Relative share of production traffic.")
    instances: int = Field(1, ge=1, description="Worker processes serving this variant.")


class ShadowIn(Strict):
    name: str
    model: str
    instances: int = Field(1, ge=1)
    sampling_percentage: int = Field(
        100, ge=0, le=100, description="Share of production requests copied here."
    )


class DataCaptureIn(Strict):
    enabled: bool = True
    sampling_percentage: int = Field(100, ge=0, le=100)
    capture_input: bool = True
    capture_output: bool = True
    destination: str | None = Field(None, description="Directory or file:// URI.")


class EndpointConfigCreate(Strict):
    name: str
    variants: list[VariantIn] = Field(min_length=1)
    shadows: list[ShadowIn] = Field(default_factory=list)
    data_capture: DataCaptureIn | None = None
    sticky_header: str | None = Field(
        None, description="Request header whose value keeps a caller on one variant."
    )

    def to_entity(self) -> e.EndpointConfig:
        variants = [
            e.VariantSpec(v.name, v.model, e.VariantKind.PRODUCTION, v.weight, v.instances)
            for v in self.variants
        ]
        variants += [
            e.VariantSpec(
                s.name, s.model, e.VariantKind.SHADOW, 0.0, s.instances, s.sampling_percentage
            )
            for s in self.shadows
        ]
        capture = e.DataCapture(**self.data_capture.model_dump()) if self.data_capture else None
        return e.EndpointConfig(self.name, tuple(variants), capture, self.sticky_header)


class EndpointConfigOut(BaseModel):
    name: str
    variants: list[VariantIn]
    shadows: list[ShadowIn]
    data_capture: DataCaptureIn | None
    sticky_header: str | None
    created_at: datetime | None

    @classmethod
    def of(cls, c: e.EndpointConfig) -> EndpointConfigOut:
        return cls(
            name=c.name,
            variants=[
                VariantIn(
                    name=v.name,
                    model=v.model_name,
                    weight=v.initial_weight,
                    instances=v.instance_count,
                )
                for v in c.production
            ],
            shadows=[
                ShadowIn(
                    name=v.name,
                    model=v.model_name,
                    instances=v.instance_count,
                    sampling_percentage=v.sampling_percentage,
                )
                for v in c.shadows
            ],
            data_capture=DataCaptureIn(**c.data_capture.to_dict()) if c.data_capture else None,
            sticky_header=c.sticky_header,
            created_at=c.created_at,
        )


class EndpointCreate(Strict):
    name: str
    config: str


class EndpointVariantOut(BaseModel):
    name: str
    model: str
    kind: str
    current_weight: float
    desired_weight: float
    current_instance_count: int
    desired_instance_count: int
    sampling_percentage: int
    status: str


class EndpointOut(BaseModel):
    name: str
    config: str
    status: str
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    variants: list[EndpointVariantOut]

    @classmethod
    def of(cls, ep: e.Endpoint) -> EndpointOut:
        return cls(
            name=ep.name,
            config=ep.config_name,
            status=ep.status.value,
            failure_reason=ep.failure_reason,
            created_at=ep.created_at,
            updated_at=ep.updated_at,
            variants=[
                EndpointVariantOut(
                    name=v.name,
                    model=v.model_name,
                    kind=v.kind.value,
                    current_weight=v.current_weight,
                    desired_weight=v.desired_weight,
                    current_instance_count=v.current_instance_count,
                    desired_instance_count=v.desired_instance_count,
                    sampling_percentage=v.sampling_percentage,
                    status=v.status,
                )
                for v in ep.variants
            ],
        )


class WeightsUpdate(Strict):
    weights: dict[str, float] = Field(
        default_factory=dict, description="Production variant name to its new weight."
    )
    instances: dict[str, int] = Field(
        default_factory=dict,
        description="Variant name to its new instance count (reached in the background).",
    )


class ErrorOut(BaseModel):
    error: str
    message: str
    field: str | None = None
