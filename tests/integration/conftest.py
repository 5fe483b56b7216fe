"""Integration fixtures: one real local Ray per module, job specs, and the leak check."""

from __future__ import annotations

import functools
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
import ray
from ray.util.placement_group import placement_group_table

from controller.report.metrics import read_metrics
from controller.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
TASK_CLASSES = {"TaskActor", "ReportInbox"}


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` of a child a test stops with SIGINT: the signal's default action back, even where the
    suite was started in the background (a shell then starts it with SIGINT ignored, and children inherit that,
    so Ctrl-C would never arrive)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_tmpdir() -> str:
    """Ray's socket paths must stay under 107 bytes: pytest's tmp paths are too long."""
    return tempfile.mkdtemp(prefix="tfr", dir="/tmp")


@pytest.fixture(scope="session", autouse=True)
def ray_address_dir():
    """``ray.cluster_utils.Cluster`` writes the head's address into Ray's default temp folder
    (``/tmp/ray``) without creating it: on a machine where no Ray ran yet its start fails."""
    from ray._common.utils import get_default_ray_temp_dir

    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)


class SharedRay:
    """The one Ray this test process is connected to, and what kind it is: a local Ray that every module asking
    for ``local_ray`` shares (started once, not once a module), a fake-GPU one, or a module's own cluster.
    Asking for another kind shuts the current one down first (a process holds one Ray connection)."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.cluster = None

    def use(self, kind: str, start) -> None:
        if self.kind == kind and ray.is_initialized():
            return
        self.release()
        self.cluster = start()
        self.kind = kind

    def release(self) -> None:
        if ray.is_initialized():
            ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
        self.kind, self.cluster = None, None


SHARED_RAY = SharedRay()

# Several Ray nodes on this machine: Ray's metrics pipeline (the GCS exporting, the head's dashboard agent
# ingesting every node's histograms) took about 1.7 of the 2 cores while a PSS job trained, and
# test_pss_multinode ran 232 s with it against 61 s without (docs/design.md §6). The clusters of the tests
# leave it off; the local Ray keeps it (one node costs nothing measurable, and a test scrapes its gauges).
NO_METRICS = {"enable_metrics_collection": False}


@pytest.fixture(scope="session", autouse=True)
def shared_ray_released():
    yield
    SHARED_RAY.release()


def local_ray_start(**resources) -> None:
    """A local Ray of its own (no cluster object to shut down: ``ray.shutdown`` ends it)."""
    ray.init(include_dashboard=False, _temp_dir=short_tmpdir(), log_to_driver=True, **resources)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 4 CPUs, shared by every module that asks for it (tests leave nothing behind in it:
    ``assert_nothing_left``). The modules that use it run one after another (``pytest_collection_modifyitems``)."""
    SHARED_RAY.use("local", lambda: local_ray_start(num_cpus=4))
    yield


@pytest.fixture(scope="module")
def fake_gpu_ray():
    """A local Ray told it has two GPUs: it reserves and assigns GPU IDs as on a GPU node (nothing uses them)."""
    SHARED_RAY.use("fake_gpu", lambda: local_ray_start(num_cpus=4, num_gpus=2))
    yield


def start_three_nodes():
    """A real multi-node Ray on this machine (a 1-CPU head and two 1-CPU worker nodes), the driver attached."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "temp_dir": short_tmpdir(), "_system_config": NO_METRICS})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    return cluster


@pytest.fixture(scope="module")
def three_nodes():
    """Three Ray nodes on this machine (``ray.cluster_utils.Cluster``), shared by the modules that ask for it as
    the local Ray is (started once; they run one after another). A test may take a node away if it adds one
    back (test_elastic does, as a cloud replaces a reclaimed VM): the next finds three live nodes again."""
    SHARED_RAY.use("three_nodes", start_three_nodes)
    yield SHARED_RAY.cluster


@functools.lru_cache(maxsize=1)
def netns_skip_reason() -> str | None:
    """Why the multi-host tests cannot run on this machine (not root, no `ip`, namespaces refused), or None."""
    from bench.netns import unavailable

    why = unavailable()
    return f"the multi-host harness (bench/netns) cannot run here: {why}" if why else None


def start_netns_cluster(**kwargs):
    """A NetnsCluster (bench/netns: every worker node in a network namespace of its own, on its own address),
    the driver attached on the head's address; stopped again if the driver cannot attach."""
    from bench.netns import NetnsCluster

    cluster = NetnsCluster(**kwargs).start()
    try:
        cluster.connect()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def netns_cluster_factory():
    """``start(**NetnsCluster args)`` -> a cluster this test's driver is attached to; it and everything it made
    go when the test ends, failed or not (and at exit or on SIGTERM if the test process is stopped)."""
    made = []

    def start(**kwargs):
        SHARED_RAY.use(f"netns-{id(made)}-{len(made)}", lambda: start_netns_cluster(**kwargs))
        made.append(SHARED_RAY.cluster)
        return SHARED_RAY.cluster

    yield start
    if SHARED_RAY.cluster in made:
        SHARED_RAY.release()
    for cluster in made:
        cluster.stop()


# The Rays that several modules share, by SHARED_RAY kind: the fixture that asks for each.
SHARED_FIXTURES = {"local": "local_ray", "three_nodes": "three_nodes"}


def uses(item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(session, config, items):
    """The modules on the shared local Ray run one after another, then those on the shared three nodes, so each
    starts once; the rest keep their order."""
    items.sort(key=lambda item: (not uses(item, "local_ray"), not uses(item, "three_nodes")))


def pytest_runtest_setup(item):
    """Past the last test on a shared Ray, it goes: the tests after it start Rays or clusters of their own."""
    fixture = SHARED_FIXTURES.get(SHARED_RAY.kind)
    if fixture and not uses(item, fixture):
        SHARED_RAY.release()


def job_spec(tmp_path: Path, name: str, entrypoint: dict, roles: dict | None = None, **extra):
    data = {
        "name": name,
        "strategy": "multi_worker_mirrored",
        "roles": roles or {"chief": {"count": 1, "resources": {"cpu": 1}},
                           "worker": {"count": 2, "resources": {"cpu": 1}}},
        "entrypoint": entrypoint,
        "storage_path": str(tmp_path / "runs"),
        "timeouts": {"scheduling_s": 60, "startup_s": 120, "job_s": 400},
        **extra,
    }
    return parse_spec(data, base_dir=REPO)


def live_leftovers() -> list[str]:
    actors = [f"actor {a['ActorClassName']}" for a in ray._private.state.actors().values()
              if a["State"] != "DEAD" and a["ActorClassName"] in TASK_CLASSES]
    groups = [f"placement group {pg['name']}" for pg in placement_group_table().values()
              if pg["state"] != "REMOVED"]
    return actors + groups


def assert_nothing_left(timeout_s: float = 20.0) -> None:
    """No task actor, inbox or placement group outlives its job (removal is asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while (left := live_leftovers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"still alive {timeout_s:g}s after the job: {left}"


class BackgroundJob:
    """A job run by the controller in a thread, so a test can inject faults while it trains."""

    def __init__(self, spec):
        from controller.machine.controller import Controller
        from controller.ray.group import RayTaskGroup
        from controller.ray.prometheus import RayGauges

        self.spec = spec
        self.controller = Controller(spec, RayTaskGroup(spec.name), sys_path=[str(REPO)], export_gauges=RayGauges())
        self.result = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"job-{spec.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.controller.run()
        except BaseException as err:  # surfaced by wait()
            self.error = err

    def chief_step(self) -> int:
        rows = [r for r in read_metrics(self.spec.job_dir) if r["task"] == str(self.controller.tasks.chief.key)]
        return max((r["step"] for r in rows), default=0)

    def info(self, task: str):
        """Where a task (e.g. 'worker-1') runs now."""
        return self.controller.tasks.info(task)

    def kill(self, task: str, sig: int = signal.SIGKILL):
        """Send a signal to a task's process (a real kill, no mock); return where the task was."""
        info = self.info(task)
        os.kill(info.pid, sig)
        return info

    def wait_until(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert self.thread.is_alive(), f"the job ended while waiting for {what}: {self.result or self.error}"
            assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:g}s"
            time.sleep(0.1)

    def wait(self, timeout_s: float):
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            self.controller.group.shutdown()  # do not leave a stuck job's actors to the next test
            state = self.controller.state.name.value
            raise AssertionError(f"the job did not end within {timeout_s:g}s (state {state})")
        if self.error is not None:
            raise self.error
        return self.result
