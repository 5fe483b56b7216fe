"""The controller: a plain class that runs one attempt of a job through its states.

``step()`` hands the current state (a value with its payload, see
``controller/states/state.py``) to its handler, which does one thing and returns
the next state; ``run()`` steps until a terminal state and releases every
actor and the placement group on the way out, whatever the ending. The
decisions are not made here: the failure policy decides what a batch of
failed ends leads to, the scaling policy which sizes to ask for, and the
observer says what happened since the last step. Ray never appears here:
the task group is injected (``controller.ray.group.RayTaskGroup`` for real
runs, a fake in unit tests).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from controller import settings
from controller.machine.attempt import Attempt
from controller.machine.ending import release
from controller.machine.failure_policy import FailurePolicy
from controller.machine.job_folder import JobStore, StorageError
from controller.machine.network_faults import NetworkFaults
from controller.machine.observer import Observer
from controller.machine.restore import quarantine, restart_point, verified_restore
from controller.machine.resume import fingerprint
from controller.machine.scaling_policy import ScalingPolicy
from controller.machine.watch import Watch
from controller.plan.launch import build_launches, task_env
from controller.plan.tasks import TaskSpec, plan
from controller.report.gauges import JobGauges, Sample
from controller.report.metrics import MetricsCollector
from controller.report.progress import Progress, epochs_asked
from controller.report.tensorboard import ScalarWriter
from controller.spec import JobSpec, Role
from controller.states.events import Resize, Restart
from controller.states.network import HostNetwork
from controller.states.result import JobResult
from controller.states.state import (
    Failed,
    JobState,
    Pending,
    Provisioning,
    Recovering,
    Running,
    Starting,
    State,
    Stopped,
    check_transition,
)
from controller.states.task_group import InfeasibleDemandError, SchedulingTimeoutError, TaskGroup, TaskStartError
from controller.states.task_table import TaskTable
from controller.store.lease import Holder, JobRunningError

log = logging.getLogger("tfray")


class Controller:
    """Runs one attempt of a job: provision, start, watch, recover, end."""

    def __init__(self, spec: JobSpec, group: TaskGroup, *, sys_path: list[str] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 on_output: Callable[[str, list[str]], None] | None = None,
                 on_attempt: Callable[[int], None] | None = None,
                 export_gauges: Callable[[list[Sample]], None] | None = None,
                 network: HostNetwork | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 wall_clock: Callable[[], float] = time.time):
        self.spec = spec
        self.group = group
        self.sys_path = list(sys_path or [])
        self.on_progress = on_progress
        self.on_output = on_output  # (task, lines) a task printed; None: they are only in its log file
        self.on_attempt = on_attempt  # told the attempt's number once it is taken (the driver log opens then)
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self.tasks = TaskTable(plan(spec))
        self.store = JobStore(spec, group, clock)
        self.attempt = Attempt(spec.failure.limits(), fingerprint(spec))
        self.failure_policy = FailurePolicy(spec.strategy.value, spec.failure, settle_s=settings.FAILURE_SETTLE_S,
                                            notice_grace_s=spec.timeouts.preemption_grace_s)
        self.scaling = ScalingPolicy(spec.counts()[Role.WORKER], spec.elastic, spec.timeouts.scheduling_s,
                                     settings.ELASTIC_PROBE_S)
        self.network_faults = NetworkFaults.of(spec, network, clock)  # the spec's faults on hosts' networks
        self.state: State = Pending()
        self.gauges = JobGauges(spec.name, export_gauges, clock, wall_clock) if export_gauges else None
        self.collector: MetricsCollector | None = None
        self.watch: Watch | None = None  # made once the attempt is known
        self._released = False
        self._runner: int | None = None  # the thread in run(), if any
        self._stop_requested: str | None = None  # a stop asked for from another thread

    # ----------------------------------------------------------------- driving

    def step(self) -> State:
        """Do the current state's one thing and move to the state it returns."""
        handler = {Pending: self._prepare, Provisioning: self._provision, Starting: self._start,
                   Running: self._watch, Recovering: self._recover}.get(type(self.state))
        if handler is not None:
            self._enter(handler(self.state))
        if self.gauges is not None and not self.state.is_terminal:  # run() exports the ending
            self.gauges.observe(self.state, self.attempt, self.tasks, self.collector, self.store)
        return self.state

    def run(self) -> JobResult:
        """Step until the job ends; release everything on every exit path."""
        self._runner = threading.get_ident()
        try:
            while not self.state.is_terminal:
                if self._stop_requested is not None:
                    self._stop_now(self._stop_requested)
                    break
                self.step()
        except KeyboardInterrupt:
            self.stop("stopped by the user (Ctrl-C or SIGTERM)")
        except BaseException as err:  # a controller bug must still release the cluster
            if not self.state.is_terminal:
                self._enter(Failed(f"controller error: {type(err).__name__}: {err}"))
            raise
        finally:
            self._release()
            if self.gauges is not None:  # the ending, however it came
                self.gauges.observe(self.state, self.attempt, self.tasks, self.collector, self.store)
        return self.outcome()

    def stop(self, reason: str = "stopped") -> None:
        """Stop the job (idempotent); tasks are killed, the cluster released. Called from another thread than
        the one in ``run()``, it asks ``run()`` to stop before its next step, so no step is cut in half."""
        if self._runner not in (None, threading.get_ident()):
            self._stop_requested = reason
            return
        if not self.state.is_terminal:
            self._stop_now(reason)
        self._release()

    def _stop_now(self, reason: str) -> None:
        """Running tasks save first (a preemption notice, bounded), so a stop keeps the job's progress."""
        if isinstance(self.state, Running) and self.watch is not None:
            self.watch.save_before_stop(min(self.spec.timeouts.preemption_grace_s, settings.STOP_SAVE_S))
        self._enter(Stopped(reason))

    @property
    def message(self) -> str:
        return getattr(self.state, "message", "")

    @property
    def result(self) -> Any:
        """What the chief's entrypoint returned (once it finished)."""
        return self.watch.result if self.watch is not None else None

    def outcome(self) -> JobResult:
        return JobResult(state=self.state.name, message=self.message, job_dir=str(self.spec.job_dir),
                         attempt=self.attempt.number, result=self.result, latest_checkpoint=self.store.latest(),
                         failures=list(self.attempt.failures), restarts=self.attempt.restarts,
                         tasks={str(k): v for k, v in self.tasks.infos.items()}, events=list(self.attempt.events),
                         statuses=self.tasks.status_names(), elapsed_s=time.time() - self.attempt.started_at,
                         chief_metrics=self.collector.latest.get(str(self.tasks.chief.key)) if self.collector else None)

    # ------------------------------------------------------------------ states

    def _prepare(self, _: Pending) -> State:
        try:
            self.store.prepare()
            self.group.claim(Holder.me())
        except (StorageError, JobRunningError) as err:
            return Failed(str(err))
        except OSError as err:
            return Failed(f"storage_path {self.spec.storage_path}: cannot prepare {self.spec.job_dir}: {err}")
        self.attempt.begin(self.store.record)
        if self.on_attempt is not None:
            self.on_attempt(self.attempt.number)
        shown = {str(self.tasks.chief.key)} | {str(t.key) for t in self.tasks.tasks if t.sidecar}
        self.collector = MetricsCollector(self.spec.job_dir, self.spec.name, self.attempt.number,
                                          chief=str(self.tasks.chief.key), on_progress=self.on_progress,
                                          scalars=ScalarWriter(self.spec.job_dir, self.attempt.number, shown),
                                          total_epochs=epochs_asked(self.attempt.fingerprint.get("args")),
                                          reserved=lambda task: self.tasks.reserved(task))
        self.collector.restart = self.attempt.restarts
        observer = Observer(self.group, self.collector, self.tasks, clock=self.clock,
                            heartbeat_s=self.spec.timeouts.heartbeat_s, drain_poll_s=settings.DRAIN_POLL_S,
                            wall_clock=self.wall_clock)
        self.watch = Watch(self.spec, self.group, self.tasks, self.store, self.attempt, observer, self.scaling,
                           self.failure_policy, self.clock, started_at=self.clock(), on_output=self.on_output,
                           network_faults=self.network_faults if self.network_faults.faults else None)
        latest = self.store.latest()
        log.info("job %s attempt %d: %d tasks; %s", self.spec.name, self.attempt.number, len(self.tasks.tasks),
                 f"resuming from step {latest.step} ({latest.path})" if latest else "starting fresh")
        return Provisioning(self.scaling.sizes(capacity_lost=False))

    def _provision(self, state: Provisioning) -> State:
        """Reserve every task's resources at the first size left to try (gang scheduling)."""
        size, rest = state.sizes[0], state.sizes[1:]
        tasks = plan(self.spec, workers=size.workers)
        try:
            self.group.provision(tasks, self.spec.placement.value, size.wait_s)
        except InfeasibleDemandError as err:  # no size helps: the kind of node asked for does not exist
            return Failed(str(err))
        except SchedulingTimeoutError as err:
            first = state.first_error or str(err)
            return Provisioning(rest, first) if rest else Failed(self.scaling.none_fit(first))
        self._resize(tasks)
        return Starting()

    def _start(self, _: Starting) -> State:
        restore = verified_restore(self.spec, self.store, self.attempt, self.failure_policy)
        if isinstance(restore, Failed):
            return restore
        env = task_env(self.spec)
        try:
            infos = self.group.start(env, self.spec.timeouts.startup_s)
        except TaskStartError as err:
            return Failed(str(err))
        launches = build_launches(
            self.spec, self.tasks.tasks, {key: info.address for key, info in infos.items()}, env,
            attempt=self.attempt.number, restarts=self.attempt.restarts, restore=restore,
            sys_path=self.sys_path, storage_token=self.store.token)
        self.store.manifest.protected = {restore.step} if restore else set()  # pruning never takes it meanwhile
        self.group.launch(launches)
        self.tasks.started(infos)
        return self.watch.begin(launches, restore.path if restore else None)

    def _watch(self, state: Running) -> State:
        return self.watch.step(state)

    def _recover(self, state: Recovering) -> State:
        """Tear every task down (the placement group stays) and start again from the newest checkpoint."""
        self.group.stop_tasks()
        quarantined = next((r for r in self.store.manifest.records if r.path == state.quarantine), None)
        if quarantined is not None:
            quarantine(self.store, self.attempt, quarantined, "its restore failed in the tasks with a data error")
        if state.backoff_s > 0:
            log.info("waiting %.1fs before restart %d (failure.backoff_s)", state.backoff_s, self.attempt.restarts)
            self.sleep(state.backoff_s)
        self.watch.take(self.watch.observer.collect())  # what the old tasks sent before they died still counts
        self.store.wait_for_gathers("the restart")  # what they saved on their nodes, in before the reconcile
        self.store.reconcile()  # nothing writes now: half-written checkpoints go
        self.collector.restart = self.attempt.restarts
        latest = self.store.latest()
        log.warning("restarting the cluster (restart %d) from %s", self.attempt.restarts,
                    restart_point(self.spec.entrypoint.kind, latest.step if latest else None,
                                  self.store.backups_hold_files(), self.store.backups_dir))
        self.attempt.add(Restart(restart=self.attempt.restarts, reason=state.reason.value,
                                 from_step=latest.step if latest else None,
                                 from_checkpoint=latest.path if latest else None))
        if state.reason.reprovisions:  # the lost node's bundles may be gone: ask for capacity again
            return Provisioning(self.scaling.sizes(capacity_lost=True))
        return Starting()

    def _resize(self, tasks: list[TaskSpec]) -> None:
        """Run with these tasks from now on (an elastic job shrinking or growing back)."""
        if [t.key for t in tasks] == [t.key for t in self.tasks.tasks]:
            return
        workers, full = sum(1 for t in tasks if t.role == Role.WORKER.value), self.scaling.full_workers
        log.warning("job %s runs with %d of %d worker(s) from now on%s", self.spec.name, workers, full,
                    "" if workers == full else f" (elastic.min_workers={self.spec.elastic.min_workers}); it grows "
                    "back at a checkpoint once capacity returns")
        self.attempt.add(Resize(workers=workers, full=full))
        self.tasks.reset(tasks)

    # ------------------------------------------------------------------ ending

    def _enter(self, nxt: State) -> None:
        check_transition(self.state.name, nxt.name)
        moved = nxt.name is not self.state.name
        if moved:
            log.debug("job %s: %s -> %s", self.spec.name, self.state.name.value, nxt.name.value)
        self.state = nxt
        if nxt.is_terminal:
            self.tasks.end_all()
            log.log(logging.INFO if nxt.name is JobState.SUCCEEDED else logging.ERROR, "job %s %s: %s",
                    self.spec.name, nxt.name.value, self.message)
            self._release()  # every ending releases the cluster at once
        elif self.attempt.number and (moved or self.attempt.changed):
            self.store.write(self.attempt.snapshot(nxt.name, "", self.tasks))

    def _release(self) -> None:
        """Idempotent: every ending calls it, and stop() may too."""
        if not self._released:
            self._released = True
            release(self)
