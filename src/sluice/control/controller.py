"""One deployment, carried out step by step: provision green, shift, bake, roll back or finish.

Every transition is written to the metadata store before the controller moves on, with
the split, what each fleet answered during the step, the alarm states and the decision
with its reason. Whatever stops a deployment (an alarm entering ALARM, the comparative
guard, the execution timeout, a cancel, green failing to start) calls `abort`, which wakes
the controller at once: a blue/green rollback is one table swap, then green stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sluice.control.alarms import AlarmService
from sluice.control.endpoints import EndpointService, endpoint_variants
from sluice.control.guard import Check, compare
from sluice.control.policies import DeploymentConfig, Step, rollback_steps
from sluice.entities import (
    Alarm,
    AlarmState,
    AlarmTransition,
    Deployment,
    DeploymentState,
    Endpoint,
    EndpointConfig,
    EndpointStatus,
)
from sluice.errors import SluiceError
from sluice.gateway.fleet_stats import Window, merge
from sluice.store.deployment_repo import DeploymentRepository
from sluice.waiting import wait_at_most

log = logging.getLogger(__name__)
GUARD_CHECKS = 3
ROLLBACK_FAILED_TOO = "; the rollback failed too: "


@dataclass
class Progress:
    """What a watcher sees of a running deployment (held in memory, not persisted)."""

    step_index: int = -1
    step_started: float = 0.0
    bake_until: float = 0.0
    baseline: dict[tuple[str, str], Window] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)


class Controller:
    def __init__(
        self,
        deployment: Deployment,
        policy: DeploymentConfig,
        steps: list[Step],
        blue: EndpointConfig,
        green: EndpointConfig,
        repo: DeploymentRepository,
        endpoints: EndpointService,
        alarms: AlarmService,
        first_step: int = 0,
    ) -> None:
        self.id = deployment.id
        self.endpoint = deployment.endpoint
        self.policy = policy
        self.steps = steps
        self.blue = blue
        self.green = green
        self.repo = repo
        self.endpoints = endpoints
        self.alarms = alarms
        self.first_step = first_step
        self.wake = asyncio.Event()
        self.abort_reason: str | None = None
        self.aborted_at: float | None = None
        self.progress = Progress()
        timeout = policy.max_execution_s
        self.deadline = time.time() + timeout if timeout else math.inf
        looks = sum(
            math.ceil(s.bake_s / policy.comparative_guard.interval_s)
            for s in steps
            if s.guarded and policy.comparative_guard
        )
        guard = policy.comparative_guard
        self.check_alpha = guard.alpha / max(1, looks) / GUARD_CHECKS if guard else 0.0
        self.task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()
        self.settled = False
        """The store records the deployment as finished (old fleets may still be stopping)."""

    # -- control from outside

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"deployment {self.id}")

    def retry_rollback(self, failure: str) -> None:
        """Run a failed rollback again (its cause fixed); `failure` is the recorded reason."""
        self.abort_reason = failure.split(ROLLBACK_FAILED_TOO)[0]
        self.task = asyncio.create_task(self._retry(), name=f"rollback {self.id}")

    async def _retry(self) -> None:
        try:
            await self._rollback()
        finally:
            self.done.set()

    def abort(self, reason: str) -> None:
        """Stop the deployment and roll back (the first reason given wins)."""
        if self.abort_reason is None:
            self.abort_reason = reason
            self.aborted_at = time.time()
            log.warning("deployment %s of %s: %s", self.id, self.endpoint, reason)
        self.wake.set()

    def on_alarm(self, alarm: Alarm, transition: AlarmTransition) -> None:
        self.repo.event(
            self.id,
            "alarm",
            f"alarm {alarm.name}: {transition.old_state.value} -> {transition.new_state.value}",
            {"alarm": alarm.name, "state": transition.new_state.value, "reason": transition.reason},
        )
        if transition.new_state is AlarmState.ALARM:
            self.abort(f"alarm {alarm.name} is in ALARM: {transition.reason}")

    # -- the run

    async def run(self) -> None:
        names = self.policy.alarm_names
        try:
            self.alarms.watch_green(names, self.endpoint, self.green.name, self.id, self.on_alarm)
            if self.policy.comparative_guard:
                # The guard's tests need scipy: import it off the event loop, before any look.
                await asyncio.to_thread(importlib.import_module, "scipy.stats")
            await self._run()
        except asyncio.CancelledError:
            raise  # the server is stopping: the store keeps the state for the restart
        except Exception as exc:  # noqa: BLE001 - any failure rolls back
            log.exception("deployment %s failed", self.id)
            self.abort(f"internal error: {type(exc).__name__}: {exc}")
            await self._rollback()
        finally:
            self._release()
            self.done.set()

    async def _run(self) -> None:
        rolling = self.policy.rolling is not None
        self.repo.set_state(
            self.id,
            DeploymentState.PROVISIONING,
            f"starting the green fleet ({self.green.name})",
            variant_status="Creating",
        )
        counts = {v.name: 0 for v in self.green.production} if rolling else None
        try:
            started = await self._until_abort(
                self.endpoints.start_green(self.endpoint, self.green, counts)
            )
        except SluiceError as exc:
            self.abort(f"the green fleet failed to start: {exc.message}")
            started = False
        if not started:
            await self._rollback()
            return
        for index in range(self.first_step, len(self.steps)):
            if not await self._step(index, self.steps[index]):
                break
        if self.abort_reason is not None:
            await self._rollback()
        else:
            await self._complete()

    async def _step(self, index: int, step: Step) -> bool:
        """Reach the step's split and bake it; False once the deployment is aborted."""
        self.repo.set_state(
            self.id,
            DeploymentState.SHIFTING,
            None,  # begin_step records the shift
            step_index=index,
            variant_status="ActivatingTraffic",
        )
        if step.counts and not await self._scale(True, step):
            return False
        self.endpoints.shift(self.endpoint, step.green_shares)
        self.repo.begin_step(self.id, index, step.label, step.green_shares, step.bake_s)
        if step.counts and not await self._scale(False, step):
            return False
        self.repo.set_state(
            self.id,
            DeploymentState.BAKING,
            f"baking step {index + 1} for {step.bake_s:g} s",
            variant_status="Baking",
        )
        await self._bake(index, step)
        fleets = self._fleet_summary()
        alarms = self.alarms.states(self.policy.alarm_names)
        checks = [c.to_dict() for c in self.progress.checks]
        if self.abort_reason is not None:
            self.repo.end_step(
                self.id, index, "rolled back", self.abort_reason, fleets, alarms, checks
            )
            return False
        self.repo.end_step(
            self.id, index, "passed", self._passed_reason(step, alarms), fleets, alarms, checks
        )
        return True

    async def _scale(self, green: bool, step: Step) -> bool:
        """Rolling updates: set green's (or blue's) instance counts; False if aborted."""
        counts = {n: pair[1] if green else pair[0] for n, pair in step.counts.items()}
        try:
            if not await self._until_abort(
                self.endpoints.scale_fleet(self.endpoint, green, counts)
            ):
                return False
        except SluiceError as exc:
            self.abort(f"new instances failed to start: {exc.message}")
            return False
        fleet = "green" if green else "blue"
        self.repo.event(self.id, "scale", f"{fleet} instances: {counts}", {fleet: counts})
        return True

    async def _bake(self, index: int, step: Step) -> None:
        now = time.time()
        progress = self.progress
        progress.step_index, progress.step_started = index, now
        progress.bake_until = now + step.bake_s
        progress.baseline = self.endpoints.fleet_stats(self.endpoint)
        progress.checks = []
        for name, state in self.alarms.states(self.policy.alarm_names).items():
            if state == AlarmState.ALARM.value:
                self.abort(f"alarm {name} is in ALARM")
        guard = self.policy.comparative_guard
        next_look = now + guard.interval_s if guard and step.guarded else math.inf
        while self.abort_reason is None:
            now = time.time()
            if now >= self.deadline:
                self.abort(self._timeout_reason())
                break
            if now >= progress.bake_until:
                break
            if now >= next_look and guard is not None:
                self._look()
                next_look += guard.interval_s
                continue
            self.wake.clear()
            wait = min(progress.bake_until, next_look, self.deadline) - now
            await wait_at_most(self.wake, wait)

    def _look(self) -> None:
        """One comparative-guard evaluation of green against blue since the step began."""
        guard = self.policy.comparative_guard
        assert guard is not None
        blue, green = self._windows()
        checks = compare(blue, green, guard, self.check_alpha)
        self.progress.checks = checks
        worse = [c for c in checks if c.worse]
        if worse:
            detail = "; ".join(f"{c.name}: {c.detail}" for c in worse)
            self.repo.event(
                self.id,
                "guard",
                f"green is significantly worse than blue: {detail}",
                {"checks": [c.to_dict() for c in checks], "alpha_per_check": self.check_alpha},
            )
            self.abort(f"comparative guard: green is significantly worse than blue ({detail})")

    def _windows(self) -> tuple[Window, Window]:
        """Blue's and green's totals since the current step began."""
        now = self.endpoints.fleet_stats(self.endpoint)
        base = self.progress.baseline
        blue: list[Window] = []
        green: list[Window] = []
        for (config, variant), window in now.items():
            delta = window - base.get((config, variant), Window())
            (green if config == self.green.name else blue).append(delta)
        return merge(blue), merge(green)

    def _fleet_summary(self) -> dict[str, Any]:
        blue, green = self._windows()
        return {
            "blue": {"config": self.blue.name, **blue.summary()},
            "green": {"config": self.green.name, **green.summary()},
        }

    def _passed_reason(self, step: Step, alarms: Mapping[str, str]) -> str:
        parts = [f"baked {step.bake_s:g} s"]
        if alarms:
            parts.append("alarms " + ", ".join(f"{n} {s}" for n, s in alarms.items()))
        elif not self.policy.alarm_names:
            parts.append("no alarms watched")
        if self.progress.checks:
            decided = [c for c in self.progress.checks if c.decided]
            if decided:
                parts.append(
                    "guard: no significant degradation ("
                    + "; ".join(f"{c.name}: {c.detail}" for c in decided)
                    + ")"
                )
            else:
                parts.append("guard: too few requests to compare")
        return "; ".join(parts)

    def _timeout_reason(self) -> str:
        return (
            f"MaximumExecutionTimeoutInSeconds ({self.policy.max_execution_s} s) passed before "
            "the update finished"
        )

    async def _until_abort(self, work: Awaitable[object]) -> bool:
        """Run `work` unless the deployment is aborted (or times out) first; False if so."""
        task = asyncio.ensure_future(work)
        while not task.done():
            if self.abort_reason is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, SluiceError):
                    await task
                return False
            if time.time() >= self.deadline:
                self.abort(self._timeout_reason())
                continue
            self.wake.clear()
            waiter = asyncio.ensure_future(self.wake.wait())
            await asyncio.wait(
                {task, waiter},
                timeout=max(0.0, min(self.deadline - time.time(), 3600.0)),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
        task.result()  # raises what the work raised
        return True

    # -- endings

    def _settle(self) -> None:
        """The store says finished: another update may start, the alarms are released."""
        self.settled = True
        self._release()

    def _release(self) -> None:
        self.alarms.unwatch(self.policy.alarm_names, self.id, self.on_alarm)

    async def _rollback(self) -> None:
        reason = self.abort_reason or "rolled back"
        self.repo.set_state(
            self.id, DeploymentState.ROLLING_BACK, f"rolling back: {reason}", reason
        )
        try:
            live = self.endpoints.live_endpoint(self.endpoint)
            if self.policy.rolling is not None and live.green is not None:
                await self._restore_blue_capacity()
            green = self.endpoints.drop_green(self.endpoint)
            swapped = time.time()
            since = (
                ""
                if self.aborted_at is None
                else f" {swapped - self.aborted_at:.3f} s after the trigger"
            )
            self.repo.event(
                self.id,
                "shift",
                f"all traffic on blue{since}",
                {
                    "green_shares": {},
                    "seconds_after_trigger": None
                    if self.aborted_at is None
                    else swapped - self.aborted_at,
                },
            )
            if green is not None:
                await self.endpoints.stop_fleet(self.endpoint, green)
        except Exception as exc:  # noqa: BLE001 - the rollback itself failed
            log.exception("rollback of deployment %s failed", self.id)
            failure = f"{reason}{ROLLBACK_FAILED_TOO}{type(exc).__name__}: {exc}"
            self.repo.finish(
                self.id,
                DeploymentState.ROLLBACK_FAILED,
                failure,
                EndpointStatus.UPDATE_ROLLBACK_FAILED,
            )
        else:
            self.repo.finish(
                self.id, DeploymentState.ROLLED_BACK, reason, EndpointStatus.IN_SERVICE
            )
        self._settle()

    async def _restore_blue_capacity(self) -> None:
        """Rolling updates: bring blue back in rollback batches while green shrinks."""
        live = self.endpoints.live_endpoint(self.endpoint)
        assert live.green is not None
        blue_counts, green_counts = live.blue.instance_counts(), live.green.instance_counts()
        counts = {
            v.name: (blue_counts.get(v.name, 0), green_counts.get(v.name, 0))
            for v in self.blue.production
        }
        for step in rollback_steps(self.policy, counts, self.blue):
            await self.endpoints.scale_fleet(
                self.endpoint, False, {n: b for n, (b, _) in step.counts.items()}
            )
            self.endpoints.shift(self.endpoint, step.green_shares)
            self.repo.event(self.id, "scale", step.label, {"counts": step.counts})
            await self.endpoints.scale_fleet(
                self.endpoint, True, {n: g for n, (_, g) in step.counts.items()}
            )

    async def _complete(self) -> None:
        variants = endpoint_variants(self.green, "InService")

        def commit() -> Endpoint:
            endpoint = self.repo.finish(
                self.id,
                DeploymentState.COMPLETED,
                f"completed: {self.endpoint} serves {self.green.name}",
                EndpointStatus.IN_SERVICE,
                variants,
            )
            self._settle()
            return endpoint

        await self.endpoints.promote_green(self.endpoint, commit)
