"""What the controller does while the job runs: one observation a step, and its answer.

Each step the observer says what happened (ends, reports, silent tasks,
draining nodes); the watch records it, sends drained tasks their notice,
hands failed ends to the failure policy and carries out its decision
(fail, restart the cluster, replace a task alone, or go on without it),
grows an elastic job back when a checkpoint comes and room is free, and
ends the job when its tracked tasks are done or its time is up. It returns
the next state; the controller (``controller/machine/controller.py``) moves to it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from controller import settings
from controller.machine.attempt import Attempt
from controller.machine.failure_policy import BatchDecision, FailureAction, FailurePolicy
from controller.machine.job_folder import JobStore
from controller.machine.network_faults import NetworkFaults
from controller.machine.observer import Drain, Observation, Observer
from controller.machine.scaling_policy import ScalingPolicy
from controller.plan.launch import replacement_launch
from controller.plan.tasks import plan
from controller.spec import JobSpec, Role
from controller.states.events import BoundChanged, DrainNotice, Grow, PreemptionNotice, task_reported
from controller.states.state import Failed, Recovering, RecoveryReason, Running, State, Succeeded, TaskStatus
from controller.states.task_group import NodeLostError, TaskGroup, TaskStartError
from controller.states.task_table import TaskTable
from controller.states.text import compact
from protocol.wire import FailureCause, TaskEnd, TaskKey, TaskLaunch

log = logging.getLogger("tfray")


@dataclass(eq=False)
class Watch:
    spec: JobSpec
    group: TaskGroup
    tasks: TaskTable
    store: JobStore
    attempt: Attempt
    observer: Observer
    scaling: ScalingPolicy
    failure_policy: FailurePolicy
    clock: Callable[[], float]
    started_at: float
    launches: dict[TaskKey, TaskLaunch] = field(default_factory=dict)
    on_output: Callable[[str, list[str]], None] | None = None  # where the lines tasks print go (the console)
    network_faults: NetworkFaults | None = None  # the spec's faults on hosts' networks, carried out here
    restored: str | None = None  # the checkpoint this run of the cluster restored
    result: Any = None  # what the chief's entrypoint returned
    _bound: str | None = None  # what bounds the job, in a word, as last recorded

    def begin(self, launches: dict[TaskKey, TaskLaunch], restored: str | None) -> Running:
        """A run of the cluster was launched (restoring ``restored``): watch it from here."""
        self.launches = dict(launches)
        self.restored = restored
        self.observer.begin_run()
        if self.network_faults is not None:
            self.network_faults.begin_run(self.attempt.restarts)
        return Running()

    def step(self, state: Running) -> State:
        """One observation, and the answer to it."""
        seen = self.observer.observe(settings.POLL_INTERVAL_S)
        checkpointed = self.take(seen)
        if self.network_faults is not None:
            chief = self.observer.collector.latest.get(str(self.tasks.chief.key), {})
            for event in self.network_faults.due(chief.get("step"), self.tasks.hosts()):
                self.attempt.add(event)
        for key in seen.notices:  # a server cannot save: the coordinator saves for the whole PSS cluster
            if self.tasks.spec(key).serves_training:
                state = self._notice_coordinator(state, key, "got a preemption notice (SIGTERM)")
        for drain in seen.drains:
            state = self._give_notice(state, drain)
        for end in seen.finished:
            self._finished(end)
            if end.key == self.tasks.chief.key:
                state = dataclasses.replace(state, chief_done_at=self.clock())
        self.store.sync(settings.STORAGE_SYNC_S)
        failed = _first_per_task(state.settling + seen.failed)
        if failed:
            state = self._on_failures(state, failed)
            if not isinstance(state, Running) or state.settling:
                return state
        if self.scaling.should_look_for_room(self.tasks.count(Role.WORKER.value), checkpointed):
            full = [t.bundle for t in plan(self.spec) if t.role == Role.WORKER.value]
            missing = full[self.tasks.count(Role.WORKER.value):]
            if self.group.has_capacity(missing):
                return self._grow()
        return self._check_end(state)

    def save_before_stop(self, wait_s: float) -> None:
        """A stop while the job trains: the training tasks get a preemption notice, save at their next step
        boundary and end (under PSS the coordinator saves for all); what they seal is registered. Bounded by
        ``wait_s`` of real time; a second Ctrl-C ends the wait at once."""
        noticed = [t.key for t in self.tasks.tasks if t.tracked and self.tasks.alive(t.key)]
        if not noticed:
            return
        log.warning("saving before stopping: %s sent a preemption notice; waiting up to %gs for the save "
                    "(Ctrl-C again stops at once)", ", ".join(map(str, noticed)), wait_s)
        for key in noticed:
            self.group.give_notice(key)
        waiting = set(noticed)

        def observe(observe_s: float) -> None:  # the observer's wait ends as soon as a task ends
            seen = self.observer.observe(observe_s)
            self.take(seen)
            waiting.difference_update(end.key for end in seen.ends)

        try:
            settings.poll_until(lambda: not waiting, wait_s, settings.POLL_INTERVAL_S, "the save before the stop",
                                wait=observe)
        except settings.WaitTimeout:
            log.warning("%s did not save and end within %gs; stopping them", ", ".join(map(str, waiting)), wait_s)
        except KeyboardInterrupt:
            log.warning("stopping without waiting for the save")

    def _on_failures(self, state: Running, failed: tuple[TaskEnd, ...]) -> State:
        """Settle the batch until its cause is in (or the bound passes), then carry out the policy's decision."""
        now = self.clock()
        until = state.settle_until if state.settle_until is not None else \
            self.failure_policy.settle_deadline(failed, now)
        if now < until and not self.failure_policy.settled(failed, self.tasks.alive_tracked()):
            return dataclasses.replace(state, settling=failed, settle_until=until)
        batch = self.failure_policy.decide(failed, self.attempt.spent, self.attempt.restarts, self.observer.drained)
        self.attempt.decided(batch, self.tasks)
        return self._carry_out(batch, dataclasses.replace(state, settling=(), settle_until=None))

    def _carry_out(self, batch: BatchDecision, state: Running) -> State:
        if batch.action is FailureAction.FAIL:
            return Failed("\n".join(f"{self.tasks.describe(d.task)} failed: {compact(d.error)} [{d.reason}]"
                                    for d in batch.decisions if d.action is FailureAction.FAIL))
        if batch.action is FailureAction.RESTART_CLUSTER:
            self.attempt.restarts += 1
            return Recovering(batch.recovery, batch.backoff_s, quarantine=self.restored if batch.quarantine else None)
        for decision in batch.decisions:
            if decision.action is FailureAction.REPLACE_TASK:
                unreplaced = self._replace(decision.task)
                if unreplaced is not None and unreplaced.action is not FailureAction.CONTINUE_WITHOUT:
                    return self._carry_out(unreplaced, state)  # the dispatcher: nothing goes on without it
            else:
                self._go_on_without(decision.task, decision.cause)
        return state

    def _replace(self, key: TaskKey) -> BatchDecision | None:
        """Start ``key`` again alone at its host:port; what the policy says when that cannot be done."""
        launch = replacement_launch(self.launches[key])
        try:
            info = self.group.replace(key, launch, self.spec.timeouts.startup_s)
        except TaskStartError as err:
            cause = FailureCause.NODE_LOST if isinstance(err, NodeLostError) else FailureCause.START_FAILED
            unreplaced = self.failure_policy.decide_unreplaced(key, cause, str(err), self.attempt.spent,
                                                               self.attempt.restarts)
            self.attempt.decided(unreplaced, self.tasks)
            if unreplaced.action is FailureAction.CONTINUE_WITHOUT:
                self._go_on_without(key, cause)
            return unreplaced
        self.launches[key] = launch
        self.tasks.infos[key] = info
        self.tasks.statuses[key] = TaskStatus.ALIVE
        self.observer.seen(key)
        log.warning("%s replaced: serving again at %s (pid %d)", key, info.address, info.pid)
        return None

    def _go_on_without(self, key: TaskKey, cause: FailureCause) -> None:
        self.group.kill_task(key)  # a hung task left out must not linger
        self.tasks.statuses[key] = TaskStatus.LOST if cause is FailureCause.NODE_LOST else TaskStatus.FAILED
        log.warning("%s is gone; going on with %d %s task(s)", key, self.tasks.left_of_role(key.role), key.role)

    def _grow(self) -> State:
        latest = self.store.latest()
        log.warning("capacity for %d more worker(s) is free: growing back to %d from the checkpoint of step %s",
                    self.scaling.full_workers - self.tasks.count(Role.WORKER.value), self.scaling.full_workers,
                    latest.step if latest else None)
        self.attempt.add(Grow(workers=self.scaling.full_workers, from_step=latest.step if latest else None))
        self.attempt.restarts += 1  # a planned restart of the cluster: it spends no failure budget
        return Recovering(RecoveryReason.GROW)

    def _check_end(self, state: Running) -> State:
        now, grace = self.clock(), self.spec.timeouts.finish_grace_s
        if self.tasks.all_tracked_finished():
            sidecars = ", ".join(map(str, self.tasks.alive_sidecars()))
            if not sidecars:
                return Succeeded("training finished")
            if state.sidecars_told_at is None:
                self.group.request_sidecar_stop()  # the evaluator finishes its last evaluation and returns
                return dataclasses.replace(state, sidecars_told_at=now)
            if now - state.sidecars_told_at > grace:
                return Succeeded(f"training finished ({sidecars} torn down after timeouts.finish_grace_s={grace:g}s)")
        elif state.chief_done_at is not None and now - state.chief_done_at > grace:
            waiting = ", ".join(map(str, self.tasks.unfinished_tracked()))
            log.warning("the chief finished; %s did not finish within %gs and are torn down", waiting, grace)
            return Succeeded(f"the chief finished ({waiting} torn down after the grace period)")
        elif self.spec.timeouts.job_s is not None and now - self.started_at > self.spec.timeouts.job_s:
            return Failed(f"the job ran past timeouts.job_s={self.spec.timeouts.job_s:g}s")
        return state

    def _finished(self, end: TaskEnd) -> None:
        self.tasks.statuses[end.key] = TaskStatus.FINISHED
        log.info("%s finished", end.key)
        if end.key == self.tasks.chief.key:
            self.result = end.result

    def _note_bound(self) -> None:
        """A change of what bounds the job is an event (the first verdict too)."""
        job = (getattr(self.observer.collector, "bounds", None) or {}).get("job")
        if job and job["word"] != self._bound:
            self._bound = job["word"]
            self.attempt.add(BoundChanged(verdict=job["verdict"], word=job["word"], task=job["task"],
                                          figure=job["figure"], node=job.get("node")))

    def take(self, seen: Observation) -> bool:
        """Record what the tasks reported, and the gathers that came in; True when a new complete checkpoint was
        registered."""
        self._note_bound()
        for key in seen.notices:
            log.warning("%s got a preemption notice (SIGTERM); it saves at its next step boundary", key)
            self.attempt.add(PreemptionNotice(task=str(key)))
        for report in seen.task_events:
            log.info("%s: %s", report.task, report.event)
            self.attempt.add(task_reported(report))
        if self.on_output is not None:
            for report in seen.output:
                self.on_output(report.task, report.lines)
        for report in seen.folders:
            self.store.gather_folder(report)
        registered = [self.store.register(report) for report in seen.checkpoints]
        registered += self.store.collect_gathers()  # never waits: a gather runs on beside the steps
        return any(record is not None for record in registered)

    def _give_notice(self, state: Running, drain: Drain) -> Running:
        """A node being drained (Ray's drain API; a cloud reclaiming a spot VM) is a preemption notice."""
        log.warning("%s: its node %s is being drained%s", drain.key, drain.node[:12],
                    f" (deadline in {drain.deadline - time.time():.0f}s)" if drain.deadline else "")
        self.attempt.add(DrainNotice(task=str(drain.key), node=drain.node, deadline=drain.deadline or None))
        if self.tasks.spec(drain.key).serves_training:
            return self._notice_coordinator(state, drain.key, "is on a node being drained")
        log.warning("%s is sent a preemption notice: it saves at its next step boundary", drain.key)
        self.group.give_notice(drain.key)
        return state

    def _notice_coordinator(self, state: Running, server: TaskKey, why: str) -> Running:
        """A PSS server's notice goes to the coordinator (once a run: ``Running.coordinator_told_at``): it
        saves at its next step boundary and stops, the servers serving until then; the restart then loses no
        completed step."""
        chief = self.tasks.chief.key
        if state.coordinator_told_at is not None or not self.tasks.alive(chief):
            return state
        log.warning("%s %s: %s is sent the notice, to save at its next step boundary while %s still serves",
                    server, why, chief, server)
        self.attempt.add(PreemptionNotice(task=str(chief), via=str(server)))
        self.group.give_notice(chief)
        return dataclasses.replace(state, coordinator_told_at=self.clock())


def _first_per_task(ends: tuple[TaskEnd, ...]) -> tuple[TaskEnd, ...]:
    """One end per task (a dead task can also fall silent): the first one seen is its cause."""
    first: dict[TaskKey, TaskEnd] = {}
    for end in ends:
        first.setdefault(end.key, end)
    return tuple(first.values())
