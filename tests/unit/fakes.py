"""Stand-ins for Ray in controller unit tests: a task group that implements the whole TaskGroup protocol
(controller/states/task_group.py), a clock, and helpers to step a controller. Tests script what the group
reports; the fake records what it was asked."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from controller.machine.controller import Controller
from controller.plan.tasks import TaskSpec
from controller.spec import parse_spec
from controller.states.state import JobState
from controller.states.task_group import TaskInfo
from protocol.layout import checkpoint_dir
from protocol.seal import seal
from protocol.streaming import read_chunks, write_chunks
from protocol.wire import CheckpointReport, FailureCause, HeartbeatReport, Report, TaskEnd, TaskKey, TaskLaunch

CHIEF, W0, W1 = TaskKey("chief", 0), TaskKey("worker", 0), TaskKey("worker", 1)
PS0, EVAL = TaskKey("ps", 0), TaskKey("evaluator", 0)


@dataclass
class FakeGather:
    """A folder on its way from a task's node (this machine): copied when it is over, ``gather_s`` after it
    started on the group's clock (never, when None: its host went silent), or failing with ``error``."""

    key: TaskKey
    path: str
    into: Path
    remove_after: bool
    replace: bool
    timeout_s: float
    over_at: float | None
    error: Exception | None = None
    told: bool = False  # the caller was told it is over


class FakeTaskGroup:
    """Does what it is told. ``provision_error`` may be a callable of the task list (to fit some sizes).
    A task given notice saves and ends at the next poll, as one whose code uses JobCallback does (unless
    ``saves_on_notice`` is False: code that ignores the notice). A gather takes ``gather_s`` on ``clock``
    (None: it hangs, a silent host), or fails with ``gather_error``; a wait for gathers moves a FakeClock on
    (time passes while the controller waits), else sleeps."""

    def __init__(self, *, provision_error=None, start_error=None, replace_error=None, capacity: bool = False,
                 claim_error=None, saves_on_notice: bool = True, gather_s: float | None = 0.0,
                 gather_error: Exception | None = None, clock=None):
        self.gather_s = gather_s
        self.gather_error = gather_error
        self.clock = clock or time.monotonic
        self.gathers: list[FakeGather] = []  # every gather started; its index is its handle
        self.gather_looks: list[tuple[list[int], float]] = []  # each look at the gathers: the handles, the wait
        self.claim_error = claim_error
        self.saves_on_notice = saves_on_notice
        self.holder = None  # the driver that claimed the job
        self.provision_error = provision_error
        self.start_error = start_error
        self.replace_error = replace_error
        self.capacity = capacity
        self.ends: list[TaskEnd] = []  # what the next poll returns
        self.reports: list[Report] = []  # what the next drain returns
        self.draining: dict[str, float] = {}
        self.poll_error: BaseException | None = None
        # What it was asked:
        self.provisions: list[tuple[int, float]] = []  # (tasks, timeout_s)
        self.tasks: list[TaskSpec] = []
        self.env: dict[str, str] = {}
        self.launches: dict[TaskKey, TaskLaunch] = {}
        self.replaced: list[TaskKey] = []
        self.killed: list[TaskKey] = []
        self.notices: list[TaskKey] = []
        self.fetched: list[tuple[TaskKey, str]] = []  # folders brought from a task's node
        self.stops = self.sidecar_stops = self.shutdowns = 0

    def claim(self, holder):
        if self.claim_error:
            raise self.claim_error
        self.holder = holder

    def provision(self, tasks, placement, timeout_s):
        self.provisions.append((len(tasks), timeout_s))
        error = self.provision_error(tasks) if callable(self.provision_error) else self.provision_error
        if error:
            raise error
        self.tasks = list(tasks)

    def start(self, env, timeout_s):
        self.env = dict(env)
        if self.start_error:
            raise self.start_error
        return {t.key: info(i) for i, t in enumerate(self.tasks)}

    def launch(self, launches):
        self.launches = dict(launches)

    def replace(self, key, launch, timeout_s):
        if self.replace_error:
            raise self.replace_error
        self.replaced.append(key)
        self.launches[key] = launch
        return TaskInfo("10.0.0.1:2221", "node000000000001", "host1", 999)

    def stop_tasks(self):
        self.stops += 1

    def request_sidecar_stop(self):
        self.sidecar_stops += 1

    def kill_task(self, key):
        self.killed.append(key)

    def poll(self, timeout_s):
        if self.poll_error:
            raise self.poll_error
        ends, self.ends = self.ends, []
        return ends

    def drain_reports(self, final=False):
        reports, self.reports = self.reports, []
        return reports

    def start_gather(self, key, path, into, *, remove_after, replace, timeout_s):
        self.fetched.append((key, path))
        over_at = None if self.gather_s is None else self.clock() + self.gather_s
        self.gathers.append(FakeGather(key, path, into, remove_after, replace, timeout_s, over_at, self.gather_error))
        return len(self.gathers) - 1

    def finished_gathers(self, handles, wait_s=0.0):
        self.gather_looks.append((list(handles), wait_s))
        done = self._over(handles)
        if not done and wait_s > 0:
            if isinstance(self.clock, FakeClock):
                self.clock.now += wait_s
            else:
                time.sleep(wait_s)
            done = self._over(handles)
        return done

    def _over(self, handles):
        """The task's node is this machine: a gather over is a copy, streamed as the Ray group streams it."""
        done = {}
        for handle in handles:
            gather = self.gathers[handle]
            assert not gather.told, f"the gather of {gather.path} was looked at after it was said to be over"
            if gather.error is not None:
                done[handle] = gather.error
            elif gather.over_at is not None and self.clock() >= gather.over_at:
                done[handle] = write_chunks(gather.into, read_chunks(gather.path, gather.remove_after),
                                            replace=gather.replace)
            else:
                continue
            gather.told = True
        return done

    def draining_nodes(self):
        return dict(self.draining)

    def give_notice(self, key):
        self.notices.append(key)
        if self.saves_on_notice:
            self.ends.append(TaskEnd.failed(key, FailureCause.STOPPED_ON_NOTICE, f"{key} stopped on its notice"))

    def has_capacity(self, bundles):
        return self.capacity

    def shutdown(self):
        self.shutdowns += 1


def info(i: int) -> TaskInfo:
    """Where the i-th planned task runs in the fake: node ``node00000000000<i>``, host ``host<i>``."""
    return TaskInfo(f"10.0.0.{i}:{2220 + i}", f"node{i:0>12}", f"host{i}", 100 + i)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_spec(tmp_path, **changes):
    data = {
        "name": "job",
        "strategy": "multi_worker_mirrored",
        "roles": {"chief": {"count": 1}, "worker": {"count": 2}},
        "entrypoint": {"function": "m:f", "args": {"epochs": 2}},
        "storage_path": str(tmp_path),
        "timeouts": {"finish_grace_s": 10, "job_s": 100, "heartbeat_s": 1000},
        **changes,
    }
    return parse_spec(data)


def pss_spec(tmp_path, **changes):
    roles = {"chief": {"count": 1}, "worker": {"count": 2}, "ps": {"count": 1}, "evaluator": {"count": 1}}
    return make_spec(tmp_path, strategy="parameter_server", roles=roles, **changes)


def controller_for(spec, group=None, **kwargs) -> Controller:
    kwargs.setdefault("sleep", lambda s: None)
    return Controller(spec, group or FakeTaskGroup(), **kwargs)


def states(controller: Controller, n: int) -> list[JobState]:
    """The names of the next ``n`` states the controller steps to."""
    return [controller.step().name for _ in range(n)]


def start_running(controller: Controller) -> None:
    assert states(controller, 3) == [JobState.PROVISIONING, JobState.STARTING, JobState.RUNNING]


def running(spec, group: FakeTaskGroup | None = None, **kwargs) -> tuple[Controller, FakeTaskGroup]:
    """A controller on ``spec`` stepped to RUNNING with a fake group (a new one unless given)."""
    group = group or FakeTaskGroup()
    controller = controller_for(spec, group, **kwargs)
    start_running(controller)
    return controller, group


def died(key: TaskKey, cause: FailureCause = FailureCause.PROCESS_DIED, error: str = "killed") -> TaskEnd:
    return TaskEnd.failed(key, cause, error)


def checkpoint_report(spec, step: int, epoch: int = 1) -> CheckpointReport:
    """A sealed checkpoint of ``step`` on disk, and the chief's report of it."""
    path = checkpoint_dir(spec.job_dir, step)
    path.mkdir(parents=True)
    seal(path, step, epoch, {})
    return CheckpointReport(CHIEF, step, str(path))


def heartbeats(*tasks: str) -> list[HeartbeatReport]:
    return [HeartbeatReport(TaskKey.parse(t), pid=1) for t in tasks]


def poll_until_true(predicate, timeout_s: float = 10.0) -> None:
    from controller.settings import poll_until

    poll_until(predicate, timeout_s, 0.01, "the condition")
