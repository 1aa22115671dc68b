"""Several gateways, one database: each serves every endpoint with instances of its own,
and follows what the others change.

`Mirror` reads the endpoints' records and the running updates every `interval_s` (a
quarter of a second by default: a change reaches every gateway well within a second) and
hands each endpoint whose routing changed (status, config, weights, instance counts,
sampling, the step of its update) to `EndpointService.mirror`, which starts, swaps,
scales, republishes or stops its fleets on this gateway without writing to the database.
An update another gateway drives is followed step by step: its green fleet runs here too
and takes the same share of this gateway's traffic. Reading the small endpoints table is the
whole cost: no notification channel to keep open, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable

from sluice.control.endpoints import EndpointService, FollowedUpdate
from sluice.control.policies import Step
from sluice.entities import Deployment, DeploymentState, Endpoint
from sluice.store.deployment_repo import DeploymentRepository

log = logging.getLogger(__name__)


def routing_of(endpoint: Endpoint, deployment: Deployment | None) -> Hashable:
    """What a gateway serves an endpoint by: a change to any of it is mirrored."""
    return (
        endpoint.status,
        endpoint.config_name,
        tuple(
            (v.name, v.current_weight, v.desired_instance_count, v.sampling_percentage)
            for v in endpoint.variants
        ),
        None if deployment is None else (deployment.id, deployment.state, deployment.step_index),
    )


def followed(deployment: Deployment | None) -> FollowedUpdate | None:
    """The part of a running update another gateway follows (None: none, or rolling back:
    the followers take green out at once)."""
    if deployment is None or deployment.state is DeploymentState.ROLLING_BACK:
        return None
    step = (
        Step.from_dict(deployment.plan[deployment.step_index])
        if 0 <= deployment.step_index < len(deployment.plan)
        else None
    )
    return FollowedUpdate(
        deployment.to_config,
        deployment.policy.get("RollingUpdatePolicy") is not None,
        dict(step.green_shares) if step else {},
        dict(step.counts) if step else {},
    )


class Mirror:
    def __init__(
        self,
        service: EndpointService,
        deployments: DeploymentRepository,
        driven_here: Callable[[str], bool],
        interval_s: float = 0.25,
    ) -> None:
        """`driven_here`: whether this gateway drives an update of the endpoint (it is
        left alone: the update's controller does it)."""
        self.service = service
        self.deployments = deployments
        self.driven_here = driven_here
        self.interval_s = interval_s
        self.seen: dict[str, Hashable] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="mirror endpoints")

    async def _run(self) -> None:
        while True:
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("reading the endpoints of the other gateways failed")
            await asyncio.sleep(self.interval_s)

    async def once(self) -> None:
        """Mirror every endpoint whose routing changed since the last round."""
        endpoints = {e.name: e for e in await asyncio.to_thread(self.service.repo.list_endpoints)}
        running = {d.endpoint: d for d in await asyncio.to_thread(self.deployments.active)}
        for name in set(self.seen) - set(endpoints):
            del self.seen[name]
            await self.service.mirror(name, None)
        for name, endpoint in endpoints.items():
            if self.driven_here(name):
                self.seen.pop(name, None)  # looked at afresh once its update ends
                continue
            deployment = running.get(name)
            routing = routing_of(endpoint, deployment)
            if self.seen.get(name) == routing:
                continue
            await self.service.mirror(name, endpoint, followed(deployment))
            if name not in self.service.tasks:  # else: looked at again once it is done
                self.seen[name] = routing

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
