"""Inference experiments (SageMaker's shadow tests): shadows beside a live production variant.

`create` records an experiment (Created); it starts at its scheduled time, or at once on
`start`. Starting serves a new endpoint config, the running one plus the shadows with every
request captured, through a routing swap that keeps the production workers (see
`EndpointService.rewire`): no request is dropped. `stop` applies each variant's action:
Remove and Retain swap the routing back, then Promote updates the endpoint to a config in
which the shadow's model serves as the source variant, under the deployment config given
(all at once if none). A running experiment reaching its end time stops by itself (its
shadows removed) and completes.

The state lives in the store; after a restart an experiment that was Starting or Stopping
finishes what it was doing, and the schedule carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.control.deployments import DeploymentService
from sluice.control.endpoints import MAX_INSTANCES, EndpointService
from sluice.control.policies import parse_policy
from sluice.control.validation import check_name, check_range
from sluice.entities import (
    DataCapture,
    DeploymentState,
    EndpointConfig,
    Experiment,
    ExperimentStatus,
    ExperimentVariant,
    ShadowSampling,
    VariantAction,
    VariantKind,
    VariantSpec,
)
from sluice.errors import AlreadyExists, InvalidState, NotFound, SluiceError, ValidationError
from sluice.store.experiment_repo import ExperimentRepository
from sluice.waiting import wait_at_most

log = logging.getLogger(__name__)

DEFAULT_DURATION = timedelta(days=7)
MAX_DURATION = timedelta(days=30)
Status = ExperimentStatus
ACTIVE = (Status.CREATING, Status.CREATED, Status.UPDATING, Status.STARTING, Status.RUNNING,
          Status.STOPPING)  # fmt: skip
ON_ENDPOINT = (Status.UPDATING, Status.STARTING, Status.RUNNING)
"""States in which the experiment's shadows are (or are being put) on the endpoint."""


@dataclass(frozen=True)
class ExperimentSpec:
    """CreateInferenceExperiment: what to test, where, and when."""

    name: str
    endpoint: str
    source_variant: str
    shadows: tuple[ShadowSampling, ...]
    variants: tuple[ExperimentVariant, ...]
    """Model and instance count of each shadow (and optionally of the source)."""
    start: datetime | None = None
    """Default: now. A time in the past also means now."""
    end: datetime | None = None
    """Default: seven days after the start; at most thirty."""
    description: str = ""
    destination: str | None = None
    data_storage: dict[str, Any] = field(default_factory=dict)
    role_arn: str | None = None
    kms_key: str | None = None


@dataclass(frozen=True)
class StopRequest:
    """StopInferenceExperiment: what happens to each variant, and the state to end in."""

    actions: Mapping[str, VariantAction] = field(default_factory=dict)
    """Variant name to action; absent: the source is retained and shadows are removed."""
    desired_state: ExperimentStatus = Status.COMPLETED
    reason: str | None = None
    deployment_config: dict[str, Any] | None = None
    """How a promoted shadow reaches production (SageMaker's DeploymentConfig)."""
    desired_variants: tuple[ExperimentVariant, ...] = ()
    """Instance counts for the variants kept (SageMaker's DesiredModelVariants)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": {k: v.value for k, v in self.actions.items()},
            "desired_state": self.desired_state.value,
            "reason": self.reason,
            "deployment_config": self.deployment_config,
            "desired_variants": [
                {"variant_name": v.variant_name, "model_name": v.model_name,
                 "instance_count": v.instance_count}
                for v in self.desired_variants
            ],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StopRequest:
        return cls(
            {k: VariantAction(v) for k, v in (data.get("actions") or {}).items()},
            Status(data.get("desired_state") or Status.COMPLETED.value),
            data.get("reason"),
            data.get("deployment_config"),
            tuple(ExperimentVariant(**v) for v in data.get("desired_variants") or ()),
        )


class ExperimentService:
    def __init__(
        self,
        repo: ExperimentRepository,
        endpoints: EndpointService,
        deployments: DeploymentService,
        tick_s: float = 1.0,
    ) -> None:
        self.repo = repo
        self.endpoints = endpoints
        self.deployments = deployments
        self.tick_s = tick_s
        self.tasks: dict[str, asyncio.Task[None]] = {}
        """Starting, stopping or scaling work in flight, per experiment."""
        self.on_started: list[Callable[[Experiment], None]] = []
        self.on_stopping: list[Callable[[Experiment], None]] = []
        """Called while the shadows still run (the last look at their workers)."""
        self.on_finished: list[Callable[[Experiment], None]] = []
        self.scheduler: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        deployments.blockers.append(self._blocks_update)
        endpoints.on_delete.append(self._endpoint_deleted)

    # -- the resource

    def create(self, experiment: ExperimentSpec) -> Experiment:
        """Validate and record a new experiment; it waits (Created) for its start time."""
        check_name(experiment.name, "Name", max_length=120)
        if self.repo.exists(experiment.name):
            raise AlreadyExists(
                f"inference experiment {experiment.name!r} already exists", field="Name"
            )
        endpoint = self.endpoints.get_endpoint(experiment.endpoint)
        source = endpoint.variant(experiment.source_variant)
        if source is None or source.kind is not VariantKind.PRODUCTION:
            raise ValidationError(
                f"{experiment.source_variant!r} is not a production variant of endpoint "
                f"{endpoint.name!r}",
                field="SourceModelVariantName",
            )
        if not experiment.shadows:
            raise ValidationError("give at least one shadow variant", field="ShadowModelVariants")
        names = [experiment.source_variant, *(s.variant_name for s in experiment.shadows)]
        if len(set(names)) != len(names):
            raise ValidationError("variant names must differ", field="ShadowModelVariantName")
        for given in experiment.variants:
            if given.variant_name not in names:
                raise ValidationError(
                    f"model variant {given.variant_name!r} is neither the source nor a shadow",
                    field="ModelVariants",
                )
        variants: list[ExperimentVariant] = []
        variant: ExperimentVariant | None
        given_by_name = {v.variant_name: v for v in experiment.variants}
        for name in names:
            variant = given_by_name.get(name)
            if variant is None:
                if name != source.name:
                    raise ValidationError(
                        f"shadow {name!r} needs a model variant (model and instance count)",
                        field="ModelVariants",
                    )
                variant = ExperimentVariant(name, source.model_name, source.desired_instance_count)
            self._check_variant(variant)
            if name == source.name:
                if variant.model_name != source.model_name:
                    raise ValidationError(
                        f"the source variant {name!r} serves model {source.model_name!r}, "
                        f"not {variant.model_name!r}",
                        field="ModelVariants",
                    )
                variant = replace(variant, status="InService")
            elif endpoint.variant(name) is not None:
                raise ValidationError(
                    f"endpoint {endpoint.name!r} already has a variant named {name!r}",
                    field="ShadowModelVariantName",
                )
            else:
                variant = replace(variant, status="Creating")
            variants.append(variant)
        for shadow in experiment.shadows:
            check_range(shadow.sampling_percentage, "SamplingPercentage", 0, 100)
        busy = self.repo.find(experiment.endpoint, ACTIVE)
        if busy:
            raise InvalidState(
                f"endpoint {endpoint.name!r} already has inference experiment "
                f"{busy[0].name!r} ({busy[0].status.value})",
                field="EndpointName",
            )
        if experiment.destination:
            self.endpoints.artifacts.objects.writable(experiment.destination, "Destination")
        start, end = _schedule(experiment.start, experiment.end)
        created = self.repo.add(
            Experiment(
                experiment.name,
                experiment.endpoint,
                experiment.source_variant,
                tuple(variants),
                experiment.shadows,
                start,
                end,
                Status.CREATING,
                description=experiment.description,
                destination=experiment.destination,
                data_storage=dict(experiment.data_storage),
                role_arn=experiment.role_arn,
                kms_key=experiment.kms_key,
            ),
            "created",
        )
        created = self.repo.update(
            created.name,
            f"waiting for its start at {start.isoformat(timespec='seconds')}",
            status=Status.CREATED,
        )
        self.wake.set()
        return created

    def get(self, name: str) -> Experiment:
        return self.repo.get(name)

    def find(
        self, endpoint: str | None = None, statuses: Sequence[Status] | None = None
    ) -> list[Experiment]:
        return self.repo.find(endpoint, statuses)

    def delete(self, name: str) -> None:
        experiment = self.repo.get(name)
        if experiment.status not in (Status.CREATED, Status.COMPLETED, Status.CANCELLED):
            raise InvalidState(
                f"inference experiment {name!r} is {experiment.status.value}; stop it first",
                field="Name",
            )
        self.repo.delete(name)

    async def update(
        self,
        name: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        description: str | None = None,
        sampling: Mapping[str, int] | None = None,
        instances: Mapping[str, int] | None = None,
        destination: str | None = None,
    ) -> Experiment:
        """Change an experiment: anything while Created; end time, description, sampling
        and shadow instance counts while Running (applied to the live endpoint at once)."""
        experiment = self.repo.get(name)
        running = experiment.status is Status.RUNNING
        if experiment.status is not Status.CREATED and not running:
            raise InvalidState(
                f"inference experiment {name!r} is {experiment.status.value}; only a Created "
                "or Running experiment can be updated",
                field="Name",
            )
        if running and (start is not None or destination is not None):
            raise ValidationError(
                "a running experiment's start time and data storage cannot change; "
                "only its end time, description, sampling and instance counts",
                field="Schedule" if start is not None else "DataStorageConfig",
            )
        changes: dict[str, Any] = {}
        if start is not None or end is not None:
            new_start = experiment.start if start is None else start
            new_end = end or experiment.end
            if running:
                if new_end <= _now():
                    raise ValidationError("the end time has passed", field="EndTime")
                _check_length(new_start, new_end)
            else:
                new_start, new_end = _schedule(new_start, new_end)
            changes.update(start=new_start, end=new_end)
        if description is not None:
            changes["description"] = description
        if destination is not None:
            self.endpoints.artifacts.objects.writable(destination, "Destination")
            changes["destination"] = destination
        shadows = list(experiment.shadows)
        for variant, percentage in (sampling or {}).items():
            if variant not in experiment.shadow_names:
                raise ValidationError(
                    f"{variant!r} is not a shadow of experiment {name!r}",
                    field="ShadowModelVariantName",
                )
            check_range(percentage, "SamplingPercentage", 0, 100)
            shadows = [
                ShadowSampling(s.variant_name, percentage) if s.variant_name == variant else s
                for s in shadows
            ]
        if sampling:
            changes["shadows"] = tuple(shadows)
        variants = list(experiment.variants)
        for variant_name, count in (instances or {}).items():
            if variant_name not in experiment.shadow_names:
                raise ValidationError(
                    f"{variant_name!r} is not a shadow of experiment {name!r}",
                    field="ModelVariants",
                )
            check_range(count, "InstanceCount", 1, MAX_INSTANCES)
            variants = [
                replace(v, instance_count=count) if v.variant_name == variant_name else v
                for v in variants
            ]
        if instances:
            changes["variants"] = tuple(variants)
        if running:
            for variant, percentage in (sampling or {}).items():
                self.endpoints.set_shadow_sampling(experiment.endpoint, variant, percentage)
        counts = {v.variant_name: v.instance_count for v in experiment.variants}
        scaling = {v: n for v, n in (instances or {}).items() if counts[v] != n}
        if not changes:
            raise ValidationError("give something to update", field="Name")
        if running and scaling:
            await self.endpoints.update_capacity(experiment.endpoint, instances=scaling)
            changes["status"] = Status.UPDATING
            changes["variants"] = tuple(
                replace(v, status="Updating") if v.variant_name in scaling else v for v in variants
            )
        updated = self.repo.update(name, "updated: " + ", ".join(sorted(changes)), **changes)
        if running and scaling:
            self._spawn(name, self._settle_update(name))
        self.wake.set()
        return updated

    async def _settle_update(self, name: str) -> None:
        experiment = self.repo.get(name)
        await self.endpoints.wait_idle(experiment.endpoint)
        self.repo.update(
            name,
            "running with the new instance counts",
            status=Status.RUNNING,
            variants=tuple(replace(v, status="InService") for v in experiment.variants),
        )

    # -- starting

    async def start(self, name: str) -> Experiment:
        """Start a Created experiment now (ahead of its scheduled start). One that is
        already Starting or Running (its start time came) is returned as it is."""
        experiment = self.repo.get(name)
        if experiment.status in (Status.STARTING, Status.RUNNING):
            return experiment
        if experiment.status is not Status.CREATED:
            raise InvalidState(
                f"inference experiment {name!r} is {experiment.status.value}; only a Created "
                "experiment can start",
                field="Name",
            )
        now = _now()
        start = min(experiment.start, now)
        experiment = self.repo.update(
            name,
            f"starting: shadows {', '.join(experiment.shadow_names)} join endpoint "
            f"{experiment.endpoint}",
            status=Status.STARTING,
            start=start,
        )
        self._spawn(name, self._start(experiment))
        return experiment

    async def _start(self, experiment: Experiment) -> None:
        name = experiment.name
        try:
            await self.endpoints.wait_idle(experiment.endpoint)
            endpoint = self.endpoints.get_endpoint(experiment.endpoint)
            if endpoint.config_name == experiment.experiment_config:
                config_name = endpoint.config_name  # the swap happened before a restart
            else:
                base = self.endpoints.get_endpoint_config(endpoint.config_name)
                config = self.endpoints.create_endpoint_config(
                    with_shadows(experiment, base, derived_name(name, "shadow"))
                )
                self.repo.update(
                    name,
                    None,
                    base_config=base.name,
                    experiment_config=config.name,
                    destination=config.data_capture.destination if config.data_capture else None,
                )
                await self.endpoints.rewire(experiment.endpoint, config)
                config_name = config.name
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure cancels the experiment
            self._finish(name, Status.CANCELLED, f"it could not start: {_reason(exc)}")
            return
        started = self.repo.update(
            name,
            f"running: endpoint {experiment.endpoint} serves {config_name}",
            status=Status.RUNNING,
            started_at=_now(),
            variants=tuple(replace(v, status="InService") for v in experiment.variants),
        )
        for listener in self.on_started:
            listener(started)

    # -- stopping

    async def stop(self, name: str, request: StopRequest) -> Experiment:
        """Apply each variant's action and end the experiment in the desired state."""
        experiment = self.repo.get(name)
        if request.desired_state not in (Status.COMPLETED, Status.CANCELLED):
            raise ValidationError("DesiredState is Completed or Cancelled", field="DesiredState")
        actions = self._actions(experiment, request)
        if request.deployment_config is not None:
            policy = parse_policy(request.deployment_config)
            self.deployments.alarms.validate_watch(policy.alarm_names, experiment.endpoint)
        if experiment.status is Status.CREATED:
            return self._finish(
                name, request.desired_state, request.reason or "stopped before it started"
            )
        if experiment.status not in (Status.RUNNING, Status.UPDATING):
            raise InvalidState(
                f"inference experiment {name!r} is {experiment.status.value}; only a Created "
                "or Running experiment can be stopped",
                field="Name",
            )
        pending = self.tasks.pop(name, None)
        if pending is not None:  # an instance-count change still settling
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        for listener in self.on_stopping:
            listener(experiment)
        request = replace(request, actions=actions)
        summary = ", ".join(f"{v} {a.value}" for v, a in actions.items())
        experiment = self.repo.update(
            name, f"stopping: {summary}", status=Status.STOPPING, stop=request.to_dict()
        )
        self._spawn(name, self._stop(experiment))
        return experiment

    def _actions(self, experiment: Experiment, request: StopRequest) -> dict[str, VariantAction]:
        known = [experiment.source_variant, *experiment.shadow_names]
        for variant in request.actions:
            if variant not in known:
                raise ValidationError(
                    f"{variant!r} is not a variant of experiment {experiment.name!r} "
                    f"(variants: {', '.join(known)})",
                    field="ModelVariantActions",
                )
        actions = {experiment.source_variant: VariantAction.RETAIN}
        actions.update({s: VariantAction.REMOVE for s in experiment.shadow_names})
        actions.update(request.actions)
        promoted = [s for s in experiment.shadow_names if actions[s] is VariantAction.PROMOTE]
        source = experiment.source_variant
        if len(promoted) > 1:
            raise ValidationError(
                f"only one shadow can be promoted (got {', '.join(promoted)})",
                field="ModelVariantActions",
            )
        if promoted and source in request.actions and actions[source] is not VariantAction.REMOVE:
            raise ValidationError(
                f"promoting {promoted[0]!r} replaces the source variant {source!r}: "
                f"give {source!r} the action Remove (or leave it out)",
                field="ModelVariantActions",
            )
        if promoted:
            actions[source] = VariantAction.REMOVE
        elif actions[source] is VariantAction.REMOVE:
            raise ValidationError(
                f"removing the source variant {source!r} leaves the endpoint no production "
                "variant: promote a shadow in its place",
                field="ModelVariantActions",
            )
        return actions

    async def _stop(self, experiment: Experiment) -> None:
        name = experiment.name
        request = StopRequest.from_dict(experiment.stop)
        actions = request.actions
        promoted = next(
            (s for s in experiment.shadow_names if actions.get(s) is VariantAction.PROMOTE), None
        )
        try:
            if experiment.stop.get("deployment_id") is None:
                await self._drop_shadows(experiment, actions)
            if promoted is not None:
                failure = await self._promote(experiment, promoted, request)
                if failure:
                    self._finish(name, Status.CANCELLED, failure, actions)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure cancels the experiment
            self._finish(name, Status.CANCELLED, f"stopping failed: {_reason(exc)}", actions)
            return
        self._finish(name, request.desired_state, request.reason or "stopped on request", actions)

    async def _drop_shadows(
        self, experiment: Experiment, actions: Mapping[str, VariantAction]
    ) -> None:
        """Serve the endpoint without the shadows that are not retained."""
        await self.endpoints.wait_idle(experiment.endpoint)
        endpoint = self.endpoints.get_endpoint(experiment.endpoint)
        current = self.endpoints.get_endpoint_config(endpoint.config_name)
        leaving = {s for s in experiment.shadow_names if actions.get(s) is not VariantAction.RETAIN}
        kept = tuple(v for v in current.variants if v.name not in leaving)
        if len(kept) == len(current.variants):
            return
        base = self._base_config(experiment)
        if base is not None and [v.name for v in base.variants] == [v.name for v in kept]:
            target = base
        else:
            target = self.endpoints.create_endpoint_config(
                replace(
                    current,
                    name=derived_name(experiment.name, "after"),
                    variants=kept,
                    data_capture=base.data_capture if base else current.data_capture,
                    created_at=None,
                )
            )
        await self.endpoints.rewire(experiment.endpoint, target)

    async def _promote(
        self, experiment: Experiment, promoted: str, request: StopRequest
    ) -> str | None:
        """Update the endpoint so the promoted shadow's model serves as the source variant.

        Returns why the promotion failed (rolled back), or None once it is complete."""
        name = experiment.name
        deployment_id = experiment.stop.get("deployment_id")
        if deployment_id is None:
            await self.endpoints.wait_idle(experiment.endpoint)
            endpoint = self.endpoints.get_endpoint(experiment.endpoint)
            current = self.endpoints.get_endpoint_config(endpoint.config_name)
            shadow = experiment.variant(promoted)
            assert shadow is not None
            desired = {v.variant_name: v.instance_count for v in request.desired_variants}
            count = desired.get(promoted, desired.get(experiment.source_variant))
            variants = tuple(
                replace(
                    v,
                    model_name=shadow.model_name,
                    instance_count=count or shadow.instance_count,
                )
                if v.name == experiment.source_variant
                else v
                for v in current.variants
            )
            final = self.endpoints.create_endpoint_config(
                replace(
                    current,
                    name=derived_name(name, "promoted"),
                    variants=variants,
                    created_at=None,
                )
            )
            policy = parse_policy(request.deployment_config) if request.deployment_config else None
            deployment = await self.deployments.update_endpoint(
                experiment.endpoint, final.name, policy
            )
            deployment_id = deployment.id
            self.repo.update(
                name,
                f"promoting {promoted}: deployment {deployment_id} moves endpoint "
                f"{experiment.endpoint} to {final.name}",
                stop={**experiment.stop, "deployment_id": deployment_id},
            )
        await self.deployments.wait(experiment.endpoint)
        deployment = self.deployments.get(deployment_id)
        while not deployment.state.finished:  # resumed after a restart: still running
            await asyncio.sleep(self.tick_s)
            deployment = self.deployments.get(deployment_id)
        if deployment.state is DeploymentState.COMPLETED:
            return None
        return f"the promotion of {promoted} was rolled back: {deployment.reason}"

    def _finish(
        self,
        name: str,
        status: ExperimentStatus,
        reason: str,
        actions: Mapping[str, VariantAction] | None = None,
    ) -> Experiment:
        experiment = self.repo.get(name)
        actions = actions or {}
        variants = []
        for v in experiment.variants:
            action = actions.get(v.variant_name)
            shadow = v.variant_name in experiment.shadow_names
            if experiment.started_at is None and shadow:
                v = replace(v, status="Deleted")  # never started
            elif action is VariantAction.REMOVE or (shadow and action is None):
                v = replace(v, status="Deleted")
            else:
                v = replace(v, status="InService")
            variants.append(v)
        finished = self.repo.update(
            name,
            f"{status.value.lower()}: {reason}",
            status=status,
            status_reason=reason,
            completion_time=_now(),
            variants=tuple(variants),
        )
        log.info("inference experiment %s %s: %s", name, status.value, reason)
        for listener in self.on_finished:
            listener(finished)
        return finished

    def _base_config(self, experiment: Experiment) -> EndpointConfig | None:
        if experiment.base_config is None:
            return None
        try:
            return self.endpoints.get_endpoint_config(experiment.base_config)
        except NotFound:
            return None

    # -- the schedule, restarts, endpoint deletion

    def start_scheduler(self) -> None:
        self.scheduler = asyncio.create_task(self._schedule(), name="experiment schedule")

    async def recover(self) -> None:
        """After a restart (endpoints restored): finish starts and stops in flight."""
        for experiment in self.repo.find(statuses=(Status.STARTING, Status.STOPPING,
                                                   Status.UPDATING, Status.CREATING)):  # fmt: skip
            name = experiment.name
            if experiment.status is Status.CREATING:
                self.repo.update(name, "created (the server restarted)", status=Status.CREATED)
            elif experiment.status is Status.STARTING:
                self.repo.update(name, "the server restarted; starting again")
                self._spawn(name, self._start(experiment))
            elif experiment.status is Status.STOPPING:
                self.repo.update(name, "the server restarted; stopping again")
                self._spawn(name, self._stop(experiment))
            else:
                self._spawn(name, self._settle_update(name))

    async def _schedule(self) -> None:
        while True:
            now = _now()
            upcoming = now + timedelta(seconds=self.tick_s)
            for experiment in self.repo.find(statuses=(Status.CREATED, Status.RUNNING)):
                if experiment.name in self.tasks:
                    continue
                due = experiment.start if experiment.status is Status.CREATED else experiment.end
                if due > now:
                    upcoming = min(upcoming, due)
                    continue
                try:
                    if experiment.status is Status.CREATED:
                        await self.start(experiment.name)
                    else:
                        await self.stop(
                            experiment.name,
                            StopRequest(reason="its schedule ended; the shadows were removed"),
                        )
                except SluiceError as exc:
                    log.warning("inference experiment %s: %s", experiment.name, exc.message)
            self.wake.clear()
            wait = max(0.01, (upcoming - _now()).total_seconds())
            await wait_at_most(self.wake, min(wait, self.tick_s))

    async def wait(self, name: str) -> None:
        """Until the experiment's start, stop or update in flight (if any) is done."""
        task = self.tasks.get(name)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def close(self) -> None:
        tasks = [t for t in (self.scheduler, *self.tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _blocks_update(self, endpoint: str) -> str | None:
        for experiment in self.repo.find(endpoint, ON_ENDPOINT):
            return (
                f"endpoint {endpoint!r} runs inference experiment {experiment.name!r} "
                f"({experiment.status.value}); stop it first"
            )
        return None

    async def _endpoint_deleted(self, endpoint: str) -> None:
        for experiment in self.repo.find(endpoint, ACTIVE):
            task = self.tasks.pop(experiment.name, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._finish(experiment.name, Status.CANCELLED, f"endpoint {endpoint} was deleted")

    def _spawn(self, name: str, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work, name=f"experiment {name}")
        self.tasks[name] = task
        task.add_done_callback(
            lambda t: self.tasks.pop(name, None) if self.tasks.get(name) is t else None
        )

    def _check_variant(self, variant: ExperimentVariant) -> None:
        check_name(variant.variant_name, "VariantName")
        check_range(variant.instance_count, "InstanceCount", 1, MAX_INSTANCES)
        try:
            self.endpoints.get_model(variant.model_name)
        except NotFound:
            raise ValidationError(
                f"model {variant.model_name!r} does not exist", field="ModelName"
            ) from None


def with_shadows(experiment: Experiment, base: EndpointConfig, name: str) -> EndpointConfig:
    """`base` plus the experiment's shadows, each copying the source variant's requests,
    with every request captured (to the experiment's destination when it names one)."""
    shadows = tuple(
        VariantSpec(
            s.variant_name,
            experiment.variant(s.variant_name).model_name,  # type: ignore[union-attr]
            VariantKind.SHADOW,
            instance_count=experiment.variant(s.variant_name).instance_count,  # type: ignore[union-attr]
            sampling_percentage=s.sampling_percentage,
            source_variant=experiment.source_variant,
        )
        for s in experiment.shadows
    )
    before = base.data_capture
    capture = DataCapture(
        destination=experiment.destination or (before.destination if before else None)
    )
    return EndpointConfig(name, (*base.variants, *shadows), capture, base.sticky_header)


def derived_name(experiment: str, role: str) -> str:
    """A new endpoint config name for an experiment's stage (at most 63 characters)."""
    suffix = f"-{role}-{secrets.token_hex(3)}"
    return experiment[: 63 - len(suffix)] + suffix


def _schedule(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    now = _now()
    start = now if start is None or start < now else start  # a past start means now
    end = end or start + DEFAULT_DURATION
    _check_length(start, end)
    return start, end


def _check_length(start: datetime, end: datetime) -> None:
    if end <= start:
        raise ValidationError("the end time must be after the start time", field="EndTime")
    if end - start > MAX_DURATION:
        raise ValidationError(
            f"an inference experiment runs at most {MAX_DURATION.days} days", field="EndTime"
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, SluiceError) else f"{type(exc).__name__}: {exc}"
