"""The controller: a plain class that runs one job through its states.

``step()`` reads the state, does at most one action and returns the next
state; ``run()`` loops until a terminal state and always releases every
actor and the placement group on the way out, whatever the ending
(success, task failure, timeout, Ctrl-C). Ray never appears here: the task
group is injected (``controller.provisioner.RayTaskGroup`` for real runs, a
fake in unit tests).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from controller import settings
from controller.checkpoints import CheckpointManifest, CheckpointRecord, checkpoint_dir
from controller.launch import build_launches, task_env
from controller.metrics import MetricsCollector, Progress
from controller.plan import TaskKey, TaskSpec, chief_of, plan
from controller.policy import SEVERITY, FailureAction, FailureCause, FailureDecision, decide
from controller.record import JobRecord
from controller.spec import JobSpec, Role
from controller.state import JobState, TaskStatus, check_transition
from controller.storage import TOKEN_FILE, Mirror, write_tree
from controller.task_group import (
    NodeLostError,
    SchedulingTimeoutError,
    TaskEvent,
    TaskGroup,
    TaskInfo,
    TaskStartError,
)

log = logging.getLogger("tfray")


@dataclass
class JobResult:
    """How a job ended, for the CLI and for tests."""

    state: JobState
    message: str
    job_dir: str
    attempt: int
    result: Any = None  # what the chief's entrypoint returned
    latest_checkpoint: CheckpointRecord | None = None
    failures: list[str] = field(default_factory=list)
    tasks: dict[str, TaskInfo] = field(default_factory=dict)  # where each task ran (last incarnation)
    restarts: int = 0  # restarts of the whole cluster
    events: list[dict] = field(default_factory=list)  # every failure with its cause and the decision taken
    statuses: dict[str, str] = field(default_factory=dict)


class Controller:
    """Runs one attempt of a job: provision, start, watch, end."""

    def __init__(
        self,
        spec: JobSpec,
        group: TaskGroup,
        *,
        sys_path: list[str] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.spec = spec
        self.group = group
        self.sys_path = list(sys_path or [])
        self.on_progress = on_progress
        self.clock = clock
        self.sleep = sleep
        self.tasks: list[TaskSpec] = plan(spec)
        self.chief: TaskSpec = chief_of(self.tasks)
        self.state = JobState.PENDING
        self.statuses: dict[TaskKey, TaskStatus] = {t.key: TaskStatus.PENDING for t in self.tasks}
        self.infos: dict[TaskKey, TaskInfo] = {}
        self.failures: list[str] = []
        self.message = ""
        self.result: Any = None
        self.attempt = 0
        self.manifest = CheckpointManifest(spec.job_dir, keep=spec.checkpoint.keep)
        self.record = JobRecord(spec.job_dir, spec.name)
        self.collector: MetricsCollector | None = None
        self._started_at: float | None = None
        self._chief_done_at: float | None = None
        self._sidecar_stop_at: float | None = None
        self._released = False
        self.restarts = 0
        self.spent: dict[str, int] = {budget: 0 for budget in spec.failure.limits()}
        self.events: list[dict] = []
        self._last_seen: dict[str, float] = {}  # task -> clock() of its latest heartbeat
        self._noticed: set[str] = set()  # tasks whose preemption notice is logged
        self.mirror: Mirror | None = None  # uploads the job folder when storage_path is a URI
        self.storage_token = uuid.uuid4().hex  # tasks that can read it in the job folder share its file system
        self.full_workers = spec.counts()[Role.WORKER]
        self.workers = self.full_workers  # an elastic job may run with fewer
        self._reprovision = False  # the next restart asks for capacity again (a node was lost or drained)
        self._grow = False  # the next restart is a planned one, back to the full size
        self._can_grow = False  # a checkpoint arrived while running small: check for capacity
        self._drain_checked_at = float("-inf")
        self._drained: set[str] = set()  # tasks sent a notice because their node is being drained

    # ----------------------------------------------------------------- driving

    def step(self) -> JobState:
        """Do at most one action and move to the next state."""
        handler = {
            JobState.PENDING: self._prepare,
            JobState.PROVISIONING: self._provision,
            JobState.STARTING: self._start,
            JobState.RUNNING: self._watch,
            JobState.RECOVERING: self._recover,
        }.get(self.state)
        if handler is not None:
            handler()
        return self.state

    def run(self) -> JobResult:
        """Step until the job ends; release everything on every exit path."""
        try:
            while not self.state.is_terminal:
                self.step()
        except KeyboardInterrupt:
            self.stop("stopped by the user (Ctrl-C or SIGTERM)")
        except BaseException as err:  # a controller bug must still release the cluster
            if not self.state.is_terminal:
                self._end(JobState.FAILED, f"controller error: {type(err).__name__}: {err}")
            raise
        finally:
            self._release()
        return self.outcome()

    def stop(self, reason: str = "stopped") -> None:
        """Stop the job now (idempotent); tasks are killed, the cluster released."""
        if not self.state.is_terminal:
            self._end(JobState.STOPPED, reason)
        else:
            self._release()

    def outcome(self) -> JobResult:
        return JobResult(
            state=self.state,
            message=self.message,
            job_dir=str(self.spec.job_dir),
            attempt=self.attempt,
            result=self.result,
            latest_checkpoint=self.manifest.latest(),
            failures=list(self.failures),
            tasks={str(k): v for k, v in self.infos.items()},
            restarts=self.restarts,
            events=list(self.events),
            statuses={str(k): v.value for k, v in self.statuses.items()},
        )

    # ------------------------------------------------------------------ states

    def _prepare(self) -> None:
        job_dir = self.spec.job_dir
        job_dir.mkdir(parents=True, exist_ok=True)
        if self.spec.storage_uri is not None:
            try:
                self.mirror = Mirror(self.spec.storage_uri, job_dir)
                self.mirror.download()  # a re-run resumes from what the URI holds
            except Exception as err:
                self._end(JobState.FAILED, f"storage_path {self.spec.storage_path}: cannot read "
                                           f"{self.spec.storage_uri}: {type(err).__name__}: {err}")
                return
            self.manifest = CheckpointManifest(job_dir, keep=self.spec.checkpoint.keep)
        (job_dir / TOKEN_FILE).write_text(self.storage_token)
        self.manifest.reconcile()  # nothing runs yet: half-written checkpoints can go
        self.attempt = self.record.next_attempt()
        lost = self.record.take_over_lost_attempt(self.attempt)
        if lost is not None:  # its driver died mid-run: carry on with its counters, so budgets hold
            self.restarts = lost.get("restarts", 0)
            self.spent = {budget: lost.get("spent", {}).get(budget, 0) for budget in self.spent}
            self.events = [*lost.get("events", []),
                           {"time": time.time(), "event": "driver_lost", "attempt": lost["attempt"]}]
            log.warning("attempt %d's driver stopped mid-run; carrying on with %d restart(s) and budgets %s",
                        lost["attempt"], self.restarts, self.spent)
        self.collector = MetricsCollector(
            job_dir, self.spec.name, self.attempt, chief=str(self.chief.key), on_progress=self.on_progress
        )
        self.collector.restart = self.restarts
        latest = self.manifest.latest()
        log.info(
            "job %s attempt %d: %d tasks; %s",
            self.spec.name,
            self.attempt,
            len(self.tasks),
            f"resuming from step {latest.step} ({latest.path})" if latest else "starting fresh",
        )
        self._started_at = self.clock()
        self._transition(JobState.PROVISIONING)

    def _provision(self) -> None:
        """Reserve the job's resources; an elastic job that cannot get its full size in time takes the
        largest size that fits, down to elastic.min_workers."""
        elastic = self.spec.elastic
        sizes = [self.full_workers]
        wait_s = self.spec.timeouts.scheduling_s
        if elastic is not None:
            sizes += range(self.full_workers - 1, elastic.min_workers - 1, -1)
            if self._reprovision:
                wait_s = elastic.capacity_wait_s
        error: SchedulingTimeoutError | None = None
        for workers in sizes:
            tasks = plan(self.spec, workers=workers)
            try:
                self.group.provision(tasks, self.spec.placement.value, wait_s if error is None
                                     else settings.ELASTIC_PROBE_S)
            except SchedulingTimeoutError as err:
                error = error or err
                continue
            self._resize(tasks, workers)
            self._reprovision = False
            self._transition(JobState.STARTING)
            return
        if elastic is not None:
            error = SchedulingTimeoutError(f"{error} Not even elastic.min_workers={elastic.min_workers} worker(s) "
                                           f"fit within {settings.ELASTIC_PROBE_S:g}s.")
        self._end(JobState.FAILED, str(error))

    def _resize(self, tasks: list[TaskSpec], workers: int) -> None:
        """Run with ``workers`` workers from now on (an elastic job shrinking or growing back)."""
        if workers == self.workers and len(tasks) == len(self.tasks):
            return
        log.warning("job %s runs with %d of %d worker(s) from now on%s", self.spec.name, workers,
                    self.full_workers, "" if workers == self.full_workers else
                    f" (elastic.min_workers={self.spec.elastic.min_workers}); it grows back at a checkpoint "
                    "once capacity returns")
        self.events.append({"time": time.time(), "event": "resize", "workers": workers, "full": self.full_workers})
        self.workers = workers
        self.tasks = tasks
        self.chief = chief_of(tasks)
        self.statuses = {t.key: TaskStatus.PENDING for t in tasks}
        self.infos = {}

    def _start(self) -> None:
        env = task_env(self.spec)
        try:
            self.infos = self.group.start(env, self.spec.timeouts.startup_s)
        except TaskStartError as err:
            self._end(JobState.FAILED, str(err))
            return
        self.group.launch(build_launches(
            self.spec, self.tasks, {key: info.address for key, info in self.infos.items()}, env,
            attempt=self.attempt, restarts=self.restarts, restore=self.manifest.latest(), sys_path=self.sys_path,
            storage_token=self.storage_token,
        ))
        self.statuses = {key: TaskStatus.ALIVE for key in self.statuses}
        self._last_seen = {str(key): self.clock() for key in self.statuses}
        self._noticed: set[str] = set()
        self._drained = set()
        self._chief_done_at = self._sidecar_stop_at = None
        self._transition(JobState.RUNNING)

    def _recover(self) -> None:
        """Tear every task down (the placement group stays) and start again from the newest checkpoint."""
        self.group.stop_tasks()
        policy = self.spec.failure
        # The first restart is immediate (most failures are one-off); repeated ones back off, doubling.
        backoff = 0.0 if self._grow or self.restarts <= 1 else min(
            policy.max_backoff_s, policy.backoff_s * 2 ** (self.restarts - 2))
        if backoff > 0:
            log.info("waiting %.1fs before restart %d (failure.backoff_s)", backoff, self.restarts)
            self.sleep(backoff)
        self._take_reports()  # what the old tasks sent before they died still counts
        self.manifest.reconcile()  # no task runs now: half-written checkpoints go
        if self.collector is not None:
            self.collector.restart = self.restarts
        latest = self.manifest.latest()
        log.warning("restarting the cluster (restart %d) from %s", self.restarts,
                    f"step {latest.step}" if latest else "the beginning (no checkpoint yet)")
        self.events.append({"time": time.time(), "event": "restart", "restart": self.restarts,
                            "from_step": latest.step if latest else None,
                            "from_checkpoint": latest.path if latest else None})
        if self._grow or self._reprovision:
            self._reprovision = True  # ask for capacity again (the lost node's bundles may be gone)
            self._grow = False
            self._transition(JobState.PROVISIONING)
        else:
            self._transition(JobState.STARTING)

    def _watch(self) -> None:
        events = self.group.poll(settings.POLL_INTERVAL_S)
        if any(e.status is TaskStatus.FAILED for e in events):
            events += self._settle(events)
        self._take_reports()
        events += self._hung_tasks()
        self._sync_storage(settings.STORAGE_SYNC_S)
        failed = []
        for event in events:
            if event.status is TaskStatus.FINISHED:
                self._on_finished(event)
            else:
                failed.append(event)
        if failed:
            self._on_failures(failed)
        if self.state is JobState.RUNNING:
            self._notice_drained_nodes()
            self._maybe_grow()
        if self.state is JobState.RUNNING:
            self._check_end()

    def _check_end(self) -> None:
        now = self.clock()
        grace = self.spec.timeouts.finish_grace_s
        if all(self.statuses[t.key] is TaskStatus.FINISHED for t in self.tasks if t.tracked):
            sidecars = [t.key for t in self.tasks if t.sidecar and self.statuses[t.key] is TaskStatus.ALIVE]
            if not sidecars:
                self._end(JobState.SUCCEEDED, "training finished")
            elif self._sidecar_stop_at is None:
                self.group.request_sidecar_stop()  # the evaluator finishes its last evaluation and returns
                self._sidecar_stop_at = now
            elif now - self._sidecar_stop_at > grace:
                self._end(JobState.SUCCEEDED, f"training finished ({', '.join(map(str, sidecars))} torn down "
                                              f"after timeouts.finish_grace_s={grace:g}s)")
        elif self._chief_done_at is not None and now - self._chief_done_at > grace:
            waiting = ", ".join(str(t.key) for t in self.tasks if t.tracked and not self.statuses[t.key].is_terminal)
            log.warning("the chief finished; %s did not finish within %gs and are torn down", waiting, grace)
            self._end(JobState.SUCCEEDED, f"the chief finished ({waiting} torn down after the grace period)")
        elif self.spec.timeouts.job_s is not None and now - self._started_at > self.spec.timeouts.job_s:
            self._end(JobState.FAILED, f"the job ran past timeouts.job_s={self.spec.timeouts.job_s:g}s")

    # ----------------------------------------------------------------- helpers

    def _notice_drained_nodes(self) -> None:
        """A node being drained (Ray's drain API; a cloud about to reclaim a spot VM) is a preemption
        notice for the tasks on it: they save at the next step boundary and stop."""
        now = self.clock()
        if now - self._drain_checked_at < settings.DRAIN_POLL_S:
            return
        self._drain_checked_at = now
        draining = self.group.draining_nodes()
        if not draining:
            return
        trains = {t.key for t in self.tasks if t.tracked and not t.runs_server}  # servers and side-cars just go
        for key, info in self.infos.items():
            if (info.node_id in draining and key in trains and self.statuses.get(key) is TaskStatus.ALIVE
                    and str(key) not in self._drained):
                self._drained.add(str(key))
                deadline = draining[info.node_id]
                log.warning("%s: its node %s is being drained%s; sending it a preemption notice", key,
                            info.node_id[:12], f" (deadline in {deadline - time.time():.0f}s)" if deadline else "")
                self.events.append({"time": time.time(), "event": "drain_notice", "task": str(key),
                                    "node": info.node_id, "deadline": deadline or None})
                self.group.give_notice(key)

    def _maybe_grow(self) -> None:
        """An elastic job running small grows back at a new checkpoint when the missing workers fit."""
        if not self._can_grow or self.workers >= self.full_workers:
            return
        self._can_grow = False
        missing = [t.bundle for t in plan(self.spec) if t.role == Role.WORKER.value][self.workers:]
        if not self.group.has_capacity(missing):
            return
        latest = self.manifest.latest()
        log.warning("capacity for %d more worker(s) is free: growing back to %d from the checkpoint of step %s",
                    len(missing), self.full_workers, latest.step if latest else None)
        self.events.append({"time": time.time(), "event": "grow", "workers": self.full_workers,
                            "from_step": latest.step if latest else None})
        self._grow = True
        self.restarts += 1  # a planned restart of the cluster: it spends no failure budget
        self._transition(JobState.RECOVERING)

    def _hung_tasks(self) -> list[TaskEvent]:
        """Tasks whose process sent no heartbeat within timeouts.heartbeat_s: killed, reported as hung."""
        limit = self.spec.timeouts.heartbeat_s
        now = self.clock()
        hung = []
        for key, status in self.statuses.items():
            silent = now - self._last_seen.get(str(key), now)
            if status is TaskStatus.ALIVE and silent > limit:
                self.group.kill_task(key)
                hung.append(TaskEvent(key, TaskStatus.FAILED, cause=FailureCause.HUNG,
                                      error=f"no heartbeat for {silent:.0f}s (timeouts.heartbeat_s={limit:g})"))
        return hung

    def _settle(self, events: list[TaskEvent]) -> list[TaskEvent]:
        """Gather ends that arrive with an error (a ps dies, then the chief raises because of it),
        so the decision sees the cause and not only its symptoms. A lost task is a cause already:
        no wait then, a restart starts at once. Nor once every running task's end is in (all tasks
        stop together on a preemption notice)."""
        root_causes = (FailureCause.PROCESS_DIED, FailureCause.NODE_LOST, FailureCause.HUNG,
                       FailureCause.INFRASTRUCTURE)

        def settled(batch: list[TaskEvent]) -> bool:
            if any(e.status is TaskStatus.FAILED and e.cause in root_causes for e in batch):
                return True
            ended = {e.key for e in batch}
            return all(t.key in ended for t in self.tasks if t.tracked and self.statuses[t.key] is TaskStatus.ALIVE)

        # Tasks that stop on a preemption notice are saving: give their peers the notice's grace to end.
        noticed = any(e.cause is FailureCause.PREEMPTED for e in events)
        bound_s = self.spec.timeouts.preemption_grace_s if noticed else settings.FAILURE_SETTLE_S
        more: list[TaskEvent] = []
        for _ in range(max(4, int(bound_s / (settings.FAILURE_SETTLE_S / 4)))):
            if settled(events + more):
                break
            more += self.group.poll(settings.FAILURE_SETTLE_S / 4)
        return more

    def _on_finished(self, event: TaskEvent) -> None:
        self.statuses[event.key] = TaskStatus.FINISHED
        log.info("%s finished", event.key)
        if event.key == self.chief.key:
            self.result = event.result
            self._chief_done_at = self.clock()

    def _on_failures(self, failed: list[TaskEvent]) -> None:
        lost = [e for e in failed if e.cause not in (None, FailureCause.USER_ERROR)]
        if lost:
            # A peer's error in the same batch as a lost process is a symptom
            # (a broken collective, a server gone), not a bug in user code.
            for event in failed:
                if event not in lost:
                    log.warning("%s raised after %s was lost; treated as a consequence", event.key,
                                ", ".join(str(e.key) for e in lost))
            failed = lost
        decided: list[tuple[TaskEvent, FailureDecision]] = []
        for event in failed:
            decision = decide(self.spec.strategy.value, event.key.role, event.cause or FailureCause.USER_ERROR,
                              event.error, spent=self.spent, limits=self.spec.failure.limits())
            if decision.action is FailureAction.REPLACE_TASK:
                self.spent[decision.budget] += 1
            decided.append((event, decision))
        worst = max((d.action for _, d in decided), key=SEVERITY.get)
        if worst is FailureAction.RESTART_CLUSTER:
            budget = next(d.budget for _, d in decided if d.action is FailureAction.RESTART_CLUSTER)
            self.spent[budget] += 1  # one restart, however many tasks it answers
        for event, decision in decided:
            self._record(event, decision)
        self._write_job_record()
        if worst is FailureAction.FAIL:
            self._end(JobState.FAILED, "\n".join(self._describe(e) + f" [{d.reason}]" for e, d in decided
                                                  if d.action is FailureAction.FAIL))
        elif worst is FailureAction.RESTART_CLUSTER:
            self.restarts += 1
            # Capacity went away with the task: ask for it again rather than wait on a lost bundle.
            self._reprovision = any(e.cause in (FailureCause.NODE_LOST, FailureCause.PREEMPTED)
                                    or str(e.key) in self._drained for e, _ in decided)
            self._transition(JobState.RECOVERING)
        else:
            for event, decision in decided:
                if decision.action is FailureAction.REPLACE_TASK:
                    self._replace(event.key)
                else:
                    self._go_on_without(event.key, event.cause)

    def _replace(self, key: TaskKey) -> None:
        try:
            info = self.group.replace(key, self.spec.timeouts.startup_s)
        except NodeLostError as err:
            self.events.append({"time": time.time(), "task": str(key), "cause": FailureCause.NODE_LOST.value,
                                "action": FailureAction.CONTINUE_WITHOUT.value, "reason": str(err)})
            self._go_on_without(key, FailureCause.NODE_LOST)
            return
        except TaskStartError as err:
            self.statuses[key] = TaskStatus.FAILED
            log.warning("%s could not be replaced (%s); going on without it", key, err)
            return
        self.infos[key] = info
        self.statuses[key] = TaskStatus.ALIVE
        self._last_seen[str(key)] = self.clock()
        log.warning("%s replaced: serving again at %s (pid %d)", key, info.address, info.pid)

    def _go_on_without(self, key: TaskKey, cause: FailureCause | None) -> None:
        self.statuses[key] = TaskStatus.PREEMPTED if cause is FailureCause.NODE_LOST else TaskStatus.FAILED
        left = sum(1 for t in self.tasks if t.role == key.role and self.statuses[t.key] is TaskStatus.ALIVE)
        log.warning("%s is gone; going on with %d %s task(s)", key, left, key.role)

    def _describe(self, event: TaskEvent) -> str:
        info = self.infos.get(event.key)
        where = f" on node {info.node_id[:12]} ({info.hostname}, pid {info.pid})" if info else ""
        return f"{event.key}{where} failed: {event.error}"

    def _record(self, event: TaskEvent, decision: FailureDecision) -> None:
        info = self.infos.get(event.key)
        failure = self._describe(event)
        self.failures.append(failure)
        self.events.append({
            "time": time.time(), "task": str(event.key), "node": info.node_id if info else None,
            "cause": (event.cause or FailureCause.USER_ERROR).value, "action": decision.action.value,
            "reason": decision.reason, "budget": decision.budget, "spent": dict(self.spent),
            "error": (event.error or "")[-2000:],
        })
        log.warning("%s: %s -> %s (%s)", event.key, (event.cause or FailureCause.USER_ERROR).value,
                    decision.action.value, decision.reason)

    def _note_pid(self, task: str, pid: int | None) -> None:
        """A heartbeat names the process that trains now (forked for each run): keep it in ``infos``."""
        key = next((k for k in self.infos if str(k) == task), None)
        if key is not None and pid and self.infos[key].pid != pid:
            self.infos[key] = dataclasses.replace(self.infos[key], pid=pid)

    def _take_reports(self) -> None:
        if self.collector is None:
            return
        for record in self.collector.handle(self.group.drain_reports()):
            if record.get("kind") == "heartbeat":
                self._last_seen[record["task"]] = self.clock()
                self._note_pid(record["task"], record.get("pid"))
                if record.get("notice") and record["task"] not in self._noticed:
                    self._noticed.add(record["task"])
                    log.warning("%s got a preemption notice (SIGTERM); it saves at its next step boundary",
                                record["task"])
                    self.events.append({"time": time.time(), "event": "preemption_notice", "task": record["task"]})
                continue
            if record.get("kind") != "checkpoint":
                log.info("%s: %s", record.get("task"), record.get("event", record))
                self.events.append({"time": time.time(), **record})
                continue
            path = record["path"]
            if "files" in record:  # gathered from a task that cannot write into the storage path
                path = write_tree(checkpoint_dir(self.spec.job_dir, record["step"]), record["files"])
            registered = self.manifest.register(path)
            if registered is None:
                log.warning("checkpoint %s reported by %s is not complete; ignored", record["path"], record["task"])
            else:
                log.info("checkpoint at step %d: %s", registered.step, registered.path)
                self._sync_storage()
                self._can_grow = self.workers < self.full_workers

    def _transition(self, nxt: JobState) -> None:
        check_transition(self.state, nxt)
        log.debug("job %s: %s -> %s", self.spec.name, self.state.value, nxt.value)
        self.state = nxt
        if self.attempt:
            self._write_job_record()

    def _end(self, state: JobState, message: str) -> None:
        self._transition(state)
        self.message = message
        log.log(logging.INFO if state is JobState.SUCCEEDED else logging.ERROR, "job %s %s: %s",
                self.spec.name, state.value, message)
        self._release()  # every ending releases the cluster at once

    def _release(self) -> None:
        """Final reports in, every actor and the placement group out. Idempotent."""
        if self._released:
            return
        self._released = True
        try:
            if self.state is not JobState.PENDING and self.collector is not None:
                try:
                    self._take_reports()
                except Exception as err:  # the inbox may be gone with a dead cluster
                    log.warning("could not fetch the last reports: %s", err)
        finally:
            self.group.shutdown()
            if self.collector is not None:
                self.collector.close()
            if self.state is not JobState.PENDING:
                self.manifest.remove_workertemp()
                self._write_job_record()
                self._sync_storage()

    def _sync_storage(self, min_interval_s: float = 0.0) -> None:
        """Upload the job folder's changes to the storage URI (if any); a failed upload is retried later."""
        if self.mirror is None:
            return
        try:
            self.mirror.sync(min_interval_s)
        except Exception as err:
            log.warning("could not upload to %s (%s: %s); trying again later", self.spec.storage_uri,
                        type(err).__name__, err)

    def _write_job_record(self) -> None:
        """The attempt's state, counters and events in job.json (rewritten at every change; `tfray status`)."""
        self.record.write_attempt({
            "attempt": self.attempt, "state": self.state.value, "message": self.message, "updated_at": time.time(),
            "restarts": self.restarts, "spent": self.spent, "limits": self.spec.failure.limits(),
            "statuses": {str(k): v.value for k, v in self.statuses.items()},
            "tasks": {str(k): {"address": i.address, "node": i.node_id, "pid": i.pid} for k, i in self.infos.items()},
            "events": self.events,
        })
