"""The controller: a plain class that runs one job through its states.

``step()`` reads the state, does at most one action and returns the next
state; ``run()`` loops until a terminal state and always releases every
actor and the placement group on the way out, whatever the ending
(success, task failure, timeout, Ctrl-C). Ray never appears here: the task
group is injected (``controller.provisioner.RayTaskGroup`` for real runs, a
fake in unit tests).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from controller import settings
from controller.checkpoints import CheckpointManifest, CheckpointRecord, write_json_atomic
from controller.metrics import MetricsCollector, Progress
from controller.plan import TaskKey, TaskSpec, chief_of, plan
from controller.spec import JobSpec
from controller.state import JobState, TaskStatus, check_transition
from controller.task_group import (
    SchedulingTimeoutError,
    TaskEvent,
    TaskGroup,
    TaskInfo,
    TaskLaunch,
    TaskStartError,
)
from controller.tf_config import tf_configs

log = logging.getLogger("tfray")

JOB_STATE_FILE = "job.json"


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
    tasks: dict[str, TaskInfo] = field(default_factory=dict)  # where each task ran


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
    ):
        self.spec = spec
        self.group = group
        self.sys_path = list(sys_path or [])
        self.on_progress = on_progress
        self.clock = clock
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
        self.collector: MetricsCollector | None = None
        self._started_at: float | None = None
        self._chief_done_at: float | None = None
        self._released = False

    # ----------------------------------------------------------------- driving

    def step(self) -> JobState:
        """Do at most one action and move to the next state."""
        handler = {
            JobState.PENDING: self._prepare,
            JobState.PROVISIONING: self._provision,
            JobState.STARTING: self._start,
            JobState.RUNNING: self._watch,
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
        )

    # ------------------------------------------------------------------ states

    def _prepare(self) -> None:
        job_dir = self.spec.job_dir
        job_dir.mkdir(parents=True, exist_ok=True)
        self.manifest.reconcile()  # nothing runs yet: half-written checkpoints can go
        record = self._read_job_record()
        self.attempt = len(record.get("attempts", [])) + 1
        self.collector = MetricsCollector(
            job_dir, self.spec.name, self.attempt, chief=str(self.chief.key), on_progress=self.on_progress
        )
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
        try:
            self.group.provision(self.tasks, self.spec.placement.value, self.spec.timeouts.scheduling_s)
        except SchedulingTimeoutError as err:
            self._end(JobState.FAILED, str(err))
            return
        self._transition(JobState.STARTING)

    def _start(self) -> None:
        env = {**settings.TASK_ENV, **self.spec.env}
        try:
            self.infos = self.group.start(env, self.spec.timeouts.startup_s)
        except TaskStartError as err:
            self._end(JobState.FAILED, str(err))
            return
        addresses = {key: info.address for key, info in self.infos.items()}
        configs = tf_configs(self.spec.strategy, self.tasks, addresses)
        self.group.launch({t.key: self._launch_for(t, configs[t.key], env) for t in self.tasks})
        self.statuses = {key: TaskStatus.ALIVE for key in self.statuses}
        self._transition(JobState.RUNNING)

    def _watch(self) -> None:
        events = self.group.poll(settings.POLL_INTERVAL_S)
        self._take_reports()
        for event in events:
            self._on_task_event(event)
        if self.state.is_terminal:
            return
        now = self.clock()
        if all(s is TaskStatus.FINISHED for s in self.statuses.values()):
            self._end(JobState.SUCCEEDED, "every task finished")
        elif self._chief_done_at is not None and now - self._chief_done_at > self.spec.timeouts.finish_grace_s:
            waiting = ", ".join(str(k) for k, s in self.statuses.items() if not s.is_terminal)
            log.warning("the chief finished; %s did not finish within %.0fs and are torn down", waiting,
                        self.spec.timeouts.finish_grace_s)
            self._end(JobState.SUCCEEDED, f"the chief finished ({waiting} torn down after the grace period)")
        elif self.spec.timeouts.job_s is not None and now - self._started_at > self.spec.timeouts.job_s:
            self._end(JobState.FAILED, f"the job ran past timeouts.job_s={self.spec.timeouts.job_s:g}s")

    # ----------------------------------------------------------------- helpers

    def _on_task_event(self, event: TaskEvent) -> None:
        self.statuses[event.key] = event.status
        if event.status is TaskStatus.FINISHED:
            log.info("%s finished", event.key)
            if event.key == self.chief.key:
                self.result = event.result
                self._chief_done_at = self.clock()
            return
        info = self.infos.get(event.key)
        where = f" on node {info.node_id[:12]} ({info.hostname}, pid {info.pid})" if info else ""
        failure = f"{event.key}{where} failed: {event.error}"
        self.failures.append(failure)
        # Fault handling (restarts, budgets) is a later layer; for now any task
        # failure ends the job, and MWMS peers stuck in a collective are killed.
        self._end(JobState.FAILED, failure)

    def _take_reports(self) -> None:
        if self.collector is None:
            return
        for record in self.collector.handle(self.group.drain_reports()):
            registered = self.manifest.register(record["path"])
            if registered is None:
                log.warning("checkpoint %s reported by %s is not complete; ignored", record["path"], record["task"])
            else:
                log.info("checkpoint at step %d: %s", registered.step, registered.path)

    def _launch_for(self, task: TaskSpec, tf_config: dict | None, env: dict[str, str]) -> TaskLaunch:
        ep = self.spec.entrypoint
        latest = self.manifest.latest()
        if ep.kind == "script":
            target = str(self.spec.resolve(ep.script))
        else:
            target = ep.function or ep.module
        return TaskLaunch(
            job_name=self.spec.name,
            job_dir=str(self.spec.job_dir),
            attempt=self.attempt,
            strategy=self.spec.strategy.value,
            role=task.role,
            index=task.index,
            is_chief=task.is_chief,
            num_workers=sum(1 for t in self.tasks if t.in_cluster),
            tf_config=tf_config,
            entrypoint_kind=ep.kind,
            entrypoint_target=target,
            args=dict(ep.args),
            argv=tuple(ep.argv()),
            env=env,
            sys_path=tuple(self.sys_path),
            checkpoint_every_n_epochs=self.spec.checkpoint.every_n_epochs,
            restore_from=latest.path if latest else None,
            restore_step=latest.step if latest else None,
            restore_epoch=latest.epoch if latest else None,
        )

    def _transition(self, nxt: JobState) -> None:
        check_transition(self.state, nxt)
        log.debug("job %s: %s -> %s", self.spec.name, self.state.value, nxt.value)
        self.state = nxt

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

    def _read_job_record(self) -> dict:
        import json

        path = self.spec.job_dir / JOB_STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {}

    def _write_job_record(self) -> None:
        record = self._read_job_record()
        attempts = [a for a in record.get("attempts", []) if a.get("attempt") != self.attempt]
        attempts.append({"attempt": self.attempt, "state": self.state.value, "message": self.message,
                         "ended_at": time.time()})
        write_json_atomic(self.spec.job_dir / JOB_STATE_FILE, {"name": self.spec.name, "attempts": attempts})
