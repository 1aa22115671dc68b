"""Endpoint updates: start one under a deployment policy, cancel it, list the history.

One update at a time per endpoint. The update runs in a `Controller` task; its state lives
in the metadata store, so after a restart `recover` settles every update that was running:
by default it is rolled back (the endpoint comes back on its old config, with the reason
recorded); with `deployment_restart_policy = "resume"` the current step starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sluice.control.alarms import AlarmService
from sluice.control.controller import Controller, Progress
from sluice.control.endpoints import EndpointService
from sluice.control.policies import DeploymentConfig, Step, plan
from sluice.entities import Alarm, Deployment, DeploymentState, Endpoint, EndpointStatus
from sluice.errors import InvalidState, NotFound, ValidationError
from sluice.gateway.fleet_stats import Window
from sluice.store.deployment_repo import DeploymentRepository
from sluice.store.lease_repo import LeaseRepository
from sluice.store.tables import utcnow

log = logging.getLogger(__name__)

RestartPolicy = Literal["rollback", "resume"]


@dataclass(frozen=True)
class FleetView:
    role: str
    config: str
    variant: str
    share: float | None
    window: Window


@dataclass(frozen=True)
class LiveView:
    endpoint: Endpoint
    deployment: Deployment | None
    progress: Progress | None
    fleets: list[FleetView]
    alarms: list[Alarm]


class DeploymentService:
    def __init__(
        self,
        repo: DeploymentRepository,
        endpoints: EndpointService,
        alarms: AlarmService,
        restart_policy: RestartPolicy = "rollback",
    ) -> None:
        self.repo = repo
        self.endpoints = endpoints
        self.alarms = alarms
        self.restart_policy = restart_policy
        self.controllers: dict[str, Controller] = {}
        self.shared: SharedDriving | None = None
        """Set when several gateways share the database: who drives which update."""
        self.blockers: list[Callable[[str], str | None]] = []
        """Each says why an endpoint may not be updated now (None: it may)."""
        endpoints.on_delete.append(self._endpoint_deleted)

    async def update_endpoint(
        self, name: str, config_name: str, policy: DeploymentConfig | None = None
    ) -> Deployment:
        """Start moving `name` to `config_name` under `policy` (None: all at once, no bake)."""
        policy = policy or DeploymentConfig.model_validate({})
        endpoint = self.endpoints.get_endpoint(name)
        try:
            green = self.endpoints.get_endpoint_config(config_name)
        except NotFound:
            raise ValidationError(
                f"endpoint config {config_name!r} does not exist", field="EndpointConfigName"
            ) from None
        running = self.controllers.get(name)
        if running is not None and not running.settled:
            raise InvalidState(
                f"endpoint {name!r} is already being updated (deployment "
                f"{self.controllers[name].id}); wait for it to finish or cancel it",
                field="EndpointName",
            )
        if endpoint.status is not EndpointStatus.IN_SERVICE:
            raise InvalidState(
                f"endpoint {name!r} is {endpoint.status.value}, not InService",
                field="EndpointName",
            )
        for blocker in self.blockers:
            reason = blocker(name)
            if reason:
                raise InvalidState(reason, field="EndpointName")
        if config_name == endpoint.config_name:
            raise ValidationError(
                f"endpoint {name!r} already runs endpoint config {config_name!r}; "
                "create a new endpoint config to update to",
                field="EndpointConfigName",
            )
        self.endpoints.check_config(green)
        blue = self.endpoints.live_endpoint(name).blue.config
        steps = plan(policy, blue, green)
        self.alarms.validate_watch(policy.alarm_names, name)
        deployment = self.repo.start(
            name, config_name, policy.document(), [s.to_dict() for s in steps]
        )
        if self.shared is not None and not self.shared.leading():
            # Its alarms and guard run on the gateway holding the controller lease, which
            # adopts it within a third of the lease's term.
            self.repo.event(
                deployment.id, "state", "handed to the gateway holding the controller lease"
            )
            return deployment
        self._launch(
            Controller(
                deployment, policy, steps, blue, green, self.repo, self.endpoints, self.alarms
            )
        )
        return deployment

    def cancel(self, name: str) -> Deployment:
        """Roll back the endpoint's running update, or retry the rollback that failed."""
        controller = self.controllers.get(name)
        if controller is None or controller.settled:
            if self.endpoints.get_endpoint(name).status is EndpointStatus.UPDATE_ROLLBACK_FAILED:
                return self._retry_rollback(name)
            raise InvalidState(f"endpoint {name!r} has no update running", field="EndpointName")
        controller.abort("cancelled by the user")
        return self.repo.get(controller.id)

    def _retry_rollback(self, name: str) -> Deployment:
        """UpdateRollbackFailed: the endpoint serves a mix of both configs; try again to bring
        it back on the old one (after the cause, say a broken artifact, has been fixed)."""
        failed = next(d for d in self.repo.find(name) if d.state is DeploymentState.ROLLBACK_FAILED)
        reopened = self.repo.reopen(failed.id, "rollback retried by the user")
        policy = DeploymentConfig.model_validate(failed.policy)
        controller = Controller(
            reopened,
            policy,
            [Step.from_dict(s) for s in failed.plan],
            self.endpoints.get_endpoint_config(failed.from_config),
            self.endpoints.get_endpoint_config(failed.to_config),
            self.repo,
            self.endpoints,
            self.alarms,
        )
        self._launch(controller, lambda: controller.retry_rollback(failed.reason or ""))
        return reopened

    def get(self, deployment_id: int) -> Deployment:
        return self.repo.get(deployment_id)

    def history(self, endpoint: str | None = None, details: bool = False) -> list[Deployment]:
        if endpoint is not None:
            self.endpoints.get_endpoint(endpoint)
        return self.repo.find(endpoint, details)

    def live_view(self, name: str) -> LiveView:
        """The endpoint as it serves now: its update's step, each fleet's figures, alarms.

        A fleet's figures cover the current step of a running update, else the fleet's life.
        """
        endpoint = self.endpoints.get_endpoint(name)
        controller = self.controllers.get(name)
        progress = controller.progress if controller else None
        baseline = progress.baseline if progress else {}
        fleets: list[FleetView] = []
        live = self.endpoints.live.get(name)
        for fleet in live.fleets if live else ():
            green = live is not None and fleet is live.green
            for variant, handle in fleet.production.items():
                window = handle.stats.snapshot() - baseline.get(
                    (fleet.config.name, variant), Window()
                )
                share = live.green_shares.get(variant, 0.0) if live and live.green else None
                fleets.append(
                    FleetView(
                        "green" if green else "blue",
                        fleet.config.name,
                        variant,
                        None if share is None else (share if green else 1.0 - share),
                        window,
                    )
                )
        watched = set(controller.policy.alarm_names) if controller else set()
        alarms = [a for a in self.alarms.find() if a.endpoint == name or a.name in watched]
        deployment = self.repo.get(controller.id) if controller else None
        return LiveView(endpoint, deployment, progress, fleets, alarms)

    async def wait(self, endpoint: str) -> None:
        """Until the endpoint's running update (if any) has finished."""
        controller = self.controllers.get(endpoint)
        if controller is not None:
            await controller.done.wait()

    async def recover(self) -> None:
        """After a restart: settle every update that was running, then restore endpoints."""
        resuming: list[Deployment] = []
        for deployment in self.repo.active():
            if (
                self.restart_policy == "resume"
                and deployment.state is not DeploymentState.ROLLING_BACK
            ):
                resuming.append(deployment)
                continue
            where = (
                f"at step {deployment.step_index + 1} of {len(deployment.plan)}"
                if deployment.step_index >= 0
                else "while the green fleet was starting"
            )
            reason = (
                f"the server restarted during the update ({where}); it was rolled back and the "
                f"endpoint serves {deployment.from_config} again"
            )
            self.repo.finish(
                deployment.id, DeploymentState.ROLLED_BACK, reason, EndpointStatus.SYSTEM_UPDATING
            )
            log.warning("deployment %s of %s: %s", deployment.id, deployment.endpoint, reason)
        await self.endpoints.restore(updating={d.endpoint for d in resuming})
        for deployment in resuming:
            asyncio.create_task(self._resume(deployment), name=f"resume {deployment.id}")

    async def _resume(self, deployment: Deployment, why: str = "the server restarted") -> None:
        name = deployment.endpoint
        await self.endpoints.wait_idle(name)
        try:
            endpoint = self.endpoints.get_endpoint(name)
            policy = DeploymentConfig.model_validate(deployment.policy)
            blue = self.endpoints.get_endpoint_config(deployment.from_config)
            green = self.endpoints.get_endpoint_config(deployment.to_config)
        except Exception as exc:  # noqa: BLE001 - cannot resume: the old config stays
            self.repo.finish(
                deployment.id,
                DeploymentState.ROLLED_BACK,
                f"the server restarted and the update could not resume ({exc}); rolled back",
                EndpointStatus.IN_SERVICE,
            )
            return
        if endpoint.status is not EndpointStatus.UPDATING:
            self.repo.finish(
                deployment.id,
                DeploymentState.ROLLED_BACK,
                f"the server restarted and the endpoint came back {endpoint.status.value}; "
                "the update was abandoned",
                endpoint.status,
            )
            return
        first = max(0, deployment.step_index)
        self.repo.event(
            deployment.id, "state", f"{why}; resuming at step {first + 1} (its bake starts over)"
        )
        steps = [Step.from_dict(s) for s in deployment.plan]
        self._launch(
            Controller(
                deployment,
                policy,
                steps,
                blue,
                green,
                self.repo,
                self.endpoints,
                self.alarms,
                first_step=first,
            )
        )

    async def close(self) -> None:
        """Stop controllers; their updates are settled by `recover` at the next start."""
        tasks = [c.task for c in self.controllers.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _launch(self, controller: Controller, start: Callable[[], None] | None = None) -> None:
        shared = self.shared
        if shared is not None and not shared.take(controller.endpoint):
            log.warning("deployment %s is driven by another gateway", controller.id)
            return
        self.controllers[controller.endpoint] = controller
        (start or controller.start)()
        assert controller.task is not None

        def ended(_: object) -> None:
            if self.controllers.get(controller.endpoint) is controller:
                self.controllers.pop(controller.endpoint, None)
            if shared is not None:
                asyncio.get_running_loop().run_in_executor(
                    None, shared.release, controller.endpoint
                )

        controller.task.add_done_callback(ended)

    # -- several gateways on one database

    def share(
        self, leases: LeaseRepository, holder: str, term_s: float, leading: Callable[[], bool]
    ) -> None:
        """Drive updates as one of several gateways: the one holding the controller lease
        drives each update (under a lease of its own, renewed while it runs); an update
        whose driver died is adopted by the lease holder, which resumes it or rolls it
        back as `restart_policy` says; one handed over by another gateway starts afresh."""
        self.shared = SharedDriving(leases, holder, term_s, leading)

    async def drive(self) -> None:
        """While this gateway holds the controller lease: renew the leases of the updates it
        drives and adopt those no live gateway drives, every third of a lease's term."""
        shared = self.shared
        assert shared is not None
        while True:
            for name, controller in list(self.controllers.items()):
                if not controller.settled:
                    await asyncio.to_thread(shared.take, name)
            try:
                await self._adopt(shared)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - tried again at the next beat
                log.exception("adopting updates failed")
            await asyncio.sleep(shared.term_s / 3)

    async def _adopt(self, shared: SharedDriving) -> None:
        for deployment in await asyncio.to_thread(self.repo.active):
            name = deployment.endpoint
            if name in self.controllers or name not in self.endpoints.live:
                continue  # driven here, or not served here yet (the mirror starts it)
            lease = await asyncio.to_thread(shared.leases.get, shared.lease_name(name))
            if lease is not None and lease.expires_at > utcnow():
                continue  # a live gateway drives it
            if not await asyncio.to_thread(shared.take, name):
                continue
            if lease is None:
                log.info("deployment %s of %s: adopted (handed over)", deployment.id, name)
                await self._resume(deployment, "adopted from the gateway that received it")
            elif self.restart_policy == "resume" and (
                deployment.state is not DeploymentState.ROLLING_BACK
            ):
                log.warning("deployment %s of %s: its gateway died; resuming", deployment.id, name)
                await self._resume(deployment, "the gateway driving it stopped")
            else:
                reason = (
                    "the gateway driving the update stopped; it was rolled back and the "
                    f"endpoint serves {deployment.from_config} again"
                )
                self.repo.finish(deployment.id, DeploymentState.ROLLED_BACK, reason,
                                 EndpointStatus.IN_SERVICE)  # fmt: skip
                await asyncio.to_thread(shared.release, name)

    async def _endpoint_deleted(self, name: str) -> None:
        controller = self.controllers.pop(name, None)
        if controller is not None and controller.task is not None:
            controller.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await controller.task


@dataclass(frozen=True)
class SharedDriving:
    """Who drives an update, when several gateways share the database."""

    leases: LeaseRepository
    holder: str
    term_s: float
    leading: Callable[[], bool]
    """Whether this gateway holds the controller lease."""

    @staticmethod
    def lease_name(endpoint: str) -> str:
        return f"deployment:{endpoint}"

    def take(self, endpoint: str) -> bool:
        return self.leases.take(self.lease_name(endpoint), self.holder, self.term_s)

    def release(self, endpoint: str) -> None:
        self.leases.release(self.lease_name(endpoint), self.holder)
