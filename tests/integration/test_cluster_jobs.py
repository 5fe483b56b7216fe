"""A cluster's way in: jobs through the Jobs API with token auth on, and autoscaling on fake nodes.

Each test starts its own Ray head as a user would (`ray start --head`, here with
``--block`` so that its PID owns everything it starts), reached on 127.0.0.1 at
free ports (Ray 2.60 still registers the node under the host's IP), with a fresh
short temp dir (socket paths < 107 bytes) and token auth on through a token file
in a private HOME, as the cluster configs do on every node. It is stopped by that
PID, and whatever outlives it (fake nodes do) by the PIDs that name its temp
dir; never with `ray stop`, which would stop every Ray on the machine
(docs/design.md §6). The session's own RAY_AUTH_MODE=disabled (tests/conftest.py) stays in this
process; Ray runs only in subprocesses.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from controller.machine.record import JobRecord
from controller.report.metrics import last_rows, read_metrics
from controller.store.checkpoints import CheckpointManifest
from protocol.seal import read_seal, sealed_checkpoints

from .conftest import REPO, free_port, short_tmpdir

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
TASKS = {"chief-0", "worker-0"}  # a chief and one worker: two TF processes on the machine's two cores


def home_with_token(parent: Path, token: str | None) -> str:
    """A HOME whose ~/.ray/auth_token holds the token (mode 600), as `ray up` leaves it on every node."""
    home = tempfile.mkdtemp(prefix="home", dir=parent)
    if token is not None:
        path = Path(home, ".ray", "auth_token")
        path.parent.mkdir()
        path.write_text(token)
        path.chmod(0o600)
    return home


def ray_env(home: str, auth_mode: str = "token", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env.update(HOME=home, RAY_AUTH_MODE=auth_mode, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:g}s"
        time.sleep(interval_s)
    return result


class RayHead:
    """`ray start --head --block` in a subprocess: token auth on, loopback, its own temp dir; stop() by PID."""

    def __init__(self, tmp_path: Path, *args: str, port: int | None = None, **env: str):
        self.tmp_path = tmp_path
        self.token = secrets.token_hex(32)
        self.home = home_with_token(tmp_path, self.token)
        self.temp_dir = short_tmpdir()
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = ray_env(self.home, **env)
        self.log = Path(self.temp_dir, "ray-start.log")
        self.proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", "--block", f"--port={self.port}", "--node-ip-address=127.0.0.1",
             f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
             # Not Ray's fixed defaults (52365, 10001): another Ray on this machine may hold them, and a
             # head whose job agent cannot bind answers every submit "No available agent".
             f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}", *args],
            env=self.env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def client_env(self, **extra: str) -> dict[str, str]:
        """A client with its own copy of the token (a user's laptop)."""
        return ray_env(home_with_token(self.tmp_path, self.token), **extra)

    def agent_log_tail(self, chars: int = 3000) -> str:
        """The end of the head's job agent log: why a submit found "No available agent", if one did."""
        logs = sorted(Path(self.temp_dir).glob("session_*/logs/dashboard_agent*.log"))
        return "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-chars:]}" for p in logs) or "(no agent log)"

    def assert_running(self) -> None:
        assert self.proc.poll() is None, f"ray start exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"

    def own_processes(self) -> list[int]:
        """PIDs of processes started for this head: every one names its temp dir on its command line."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if self.temp_dir.encode() in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass  # gone meanwhile
        return pids

    def stop(self) -> None:
        """SIGTERM to `ray start --block` (it stops what it started), then anything left of this head by PID."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.own_processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if not self.own_processes():
                break
            time.sleep(2)
        left = self.own_processes()
        assert not left, f"processes of this head still running: {left}"
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def cli(args: list[str], env: dict[str, str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def write_job(folder: Path, name: str, storage: Path, epochs: int, roles: dict | None = None, **extra) -> Path:
    spec = {
        "name": name,
        "strategy": "multi_worker_mirrored",
        "roles": roles or {"chief": {"count": 1, "resources": {"cpu": 1}},
                           "worker": {"count": 1, "resources": {"cpu": 1}}},
        "entrypoint": {"function": "examples.digits:train", "args": {"epochs": epochs}},
        "storage_path": str(storage),
        "timeouts": {"scheduling_s": 120, "startup_s": 120, "job_s": 300},
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def last_state(job_dir: Path) -> str | None:
    attempts = JobRecord(job_dir, job_dir.name).attempts()
    return attempts[-1].state if attempts else None


@pytest.mark.timeout(300)
def test_a_job_submitted_through_the_jobs_api_with_token_auth_on(tmp_path):
    dashboard_port = free_port()
    head = RayHead(tmp_path, "--num-cpus=4", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                   f"--dashboard-port={dashboard_port}", RAY_JOB_STOP_WAIT_TIME_S="30")
    api = f"http://127.0.0.1:{dashboard_port}"
    try:
        def answers() -> bool:
            head.assert_running()
            try:
                return http_status(f"{api}/api/version", None) in (200, 401)
            except OSError:
                return False

        wait_for(answers, 90, "the Jobs API to answer")
        # Token auth is on: no token is 401, another token 403, the cluster's token gets in.
        assert http_status(f"{api}/api/jobs/", None) == 401
        assert http_status(f"{api}/api/jobs/", "not-the-token") == 403
        assert http_status(f"{api}/api/jobs/", head.token) == 200

        # The folder shipped as the job's working dir: the code and the spec, as in a checkout.
        work = tmp_path / "work"
        for package in ("controller", "workers", "examples"):
            shutil.copytree(REPO / package, work / package, ignore=shutil.ignore_patterns("__pycache__"))
        runs = tmp_path / "runs"
        spec = write_job(work, "digits-submit", runs, epochs=2)

        no_token = ray_env(home_with_token(tmp_path, None), auth_mode="disabled")
        refused = cli(["submit", spec.name, "--address", api], no_token, work, 60)
        assert refused.returncode == 2 and "requires token authentication" in refused.stderr, refused.stderr
        other_token = ray_env(home_with_token(tmp_path, "not-the-token"))
        wrong = cli(["submit", spec.name, "--address", api], other_token, work, 60)
        assert wrong.returncode == 2 and "rejected this client's token" in wrong.stderr, wrong.stderr

        done = cli(["submit", spec.name, "--address", api, "--follow", "--timeout", "200",
                    "--submission-id", "tfray-test-digits"], head.client_env(), work, 230)
        assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}\n{head.agent_log_tail()}"
        assert "job tfray-test-digits SUCCEEDED" in done.stdout and "progress" in done.stdout
        job_dir = runs / "digits-submit"
        assert {row["task"] for row in read_metrics(job_dir)} == TASKS
        sealed = sealed_checkpoints(job_dir)
        assert sealed and read_seal(sealed[-1][1])["epoch"] == 2
        assert last_state(job_dir) == "SUCCEEDED"

        # A second submit with the same id is refused by Ray: a retried submit never runs a job twice.
        again = cli(["submit", spec.name, "--address", api, "--submission-id", "tfray-test-digits"],
                    head.client_env(), work, 60)
        assert again.returncode == 2 and "cannot submit" in again.stderr, again.stderr

        # Stopping: the controller gets SIGTERM, tears its tasks down and records STOPPED.
        long_spec = write_job(work, "digits-stop", runs, epochs=500,
                              roles={"worker": {"count": 1, "resources": {"cpu": 1}}})
        submitted = cli(["submit", long_spec.name, "--address", api, "--submission-id", "tfray-test-stop"],
                        head.client_env(), work, 60)
        assert submitted.returncode == 0, submitted.stderr
        # Stopped once it trains (a stop during its start-up has nothing to save: the test would be vacuous).
        wait_for(lambda: last_rows(runs / "digits-stop"), 120, "the second job to report its first steps")
        # `tfray status --address`: the head answers through a short job of its own.
        asked = cli(["status", long_spec.name, "--address", api, "--json"], head.client_env(), work, 90)
        assert asked.returncode == 0, f"{asked.stdout[-3000:]}\n{asked.stderr[-3000:]}"
        view = json.loads(asked.stdout)
        assert view["job"] == "digits-stop" and view["state"] == "RUNNING" and view["driver"]
        stopped = cli(["stop", "tfray-test-stop", "--address", api, "--wait", "60"], head.client_env(), work, 90)
        assert stopped.returncode == 0 and "job tfray-test-stop STOPPED" in stopped.stdout, stopped.stdout
        wait_for(lambda: last_state(runs / "digits-stop") == "STOPPED", 30,
                 "the controller to record STOPPED")
        # The stop kept what it saved: the tasks got a notice, saved, and that checkpoint is registered.
        stopped_dir = runs / "digits-stop"
        latest = CheckpointManifest(stopped_dir, keep=3).latest()
        reported = [row["step"] for row in read_metrics(stopped_dir)]
        assert latest is not None and latest.step >= max(reported, default=0), (latest, reported[-3:])
        (attempt,) = JobRecord(stopped_dir, "digits-stop").attempts()
        assert set(attempt.statuses.values()) == {"STOPPED"}, attempt.statuses
    finally:
        head.stop()


OBSERVER = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
while True:
    nodes = [{"alive": n["Alive"], "head": "node:__internal_head__" in n["Resources"],
              "labels": n.get("Labels", {}), "resources": n["Resources"]} for n in ray.nodes()]
    print(json.dumps({"time": time.time(), "nodes": nodes}), flush=True)
    time.sleep(1)
"""


class NodeWatch:
    """A driver that prints the cluster's nodes every second; the test keeps every snapshot."""

    def __init__(self, head: RayHead):
        self.snapshots: list[list[dict]] = []
        self.proc = subprocess.Popen([sys.executable, "-c", OBSERVER, head.address], env=head.client_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.snapshots.append(json.loads(line)["nodes"])

    def added(self, snapshot: list[dict]) -> list[dict]:
        return [n for n in snapshot if n["alive"] and not n["head"]]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.mark.timeout(300)
def test_fake_multinode_adds_nodes_for_a_job_and_removes_them_when_idle(tmp_path):
    # The shipped config, with its fake nodes joining this test's head instead of <host IP>:6379.
    config = yaml.safe_load((REPO / "cluster_configs" / "fake_multinode.yaml").read_text())
    port = free_port()
    config["provider"]["gcs_address"] = f"127.0.0.1:{port}"
    config_path = tmp_path / "fake_multinode.yaml"
    config_path.write_text(yaml.safe_dump(config))
    # CPU 0 on the head (as in the config): no task fits until the autoscaler adds nodes.
    head = RayHead(tmp_path, "--num-cpus=0", "--include-dashboard=false", f"--autoscaling-config={config_path}",
                   "--object-store-memory=200000000", port=port, RAY_FAKE_CLUSTER="1",
                   AUTOSCALER_UPDATE_INTERVAL_S="1",
                   # Several raylets on one machine: Ray's metrics pipeline would take most of the CPU
                   # (tests/integration/conftest.py, NO_METRICS).
                   RAY_enable_metrics_collection="false")
    watch = None
    try:
        watch = NodeWatch(head)
        wait_for(lambda: head.assert_running() or watch.snapshots, 90, "the head to accept a driver")
        assert not watch.added(watch.snapshots[-1]), "nodes before any job asked for them"

        # A chief on a TPU node, which no node type of the config offers: failed at once, no node started.
        started = time.monotonic()
        never = write_job(tmp_path, "digits-never", tmp_path / "runs", epochs=2,
                          roles={"chief": {"count": 1, "resources": {"cpu": 1, "custom": {"tpu_node": 1}}},
                                 "worker": {"count": 1, "resources": {"cpu": 1, "custom": {"spot": 1}}}})
        refused = cli(["run", str(never), "--address", head.address], head.client_env(), REPO, 120)
        assert refused.returncode == 1 and time.monotonic() - started < 30, refused.stderr[-3000:]
        assert "no node type of this cluster can ever hold what the job asks for: CPU=1, tpu_node=1" in \
            refused.stderr and "cpu_spot:" in refused.stderr, refused.stderr[-3000:]
        assert not watch.added(watch.snapshots[-1]), "nodes were started for a job that can never run"

        # Two 1-CPU tasks on spot nodes: the config's cpu_spot nodes have 1 CPU each, so two are needed.
        spot = {"cpu": 1, "custom": {"spot": 1}}
        spec = write_job(tmp_path, "digits-autoscale", tmp_path / "runs", epochs=2,
                         roles={"chief": {"count": 1, "resources": spot}, "worker": {"count": 1, "resources": spot}})
        run = cli(["run", str(spec), "--address", head.address], head.client_env(), REPO, 240)
        assert run.returncode == 0, f"{run.stdout[-4000:]}\n{run.stderr[-3000:]}"
        assert "waiting for the job's resources" in run.stderr and "the autoscaler is launching" in run.stderr
        job_dir = tmp_path / "runs" / "digits-autoscale"
        assert last_state(job_dir) == "SUCCEEDED"
        assert {row["task"] for row in read_metrics(job_dir)} == {"chief-0", "worker-0"}
        assert sealed_checkpoints(job_dir)

        most = max(watch.snapshots, key=lambda snap: len(watch.added(snap)))
        added = watch.added(most)
        assert len(added) >= 2, f"the autoscaler added {len(added)} node(s) for a job that needs 2"
        assert all(n["labels"].get("market-type") == "spot" and n["resources"].get("spot") for n in added), added

        # Idle for idle_timeout_minutes (0.2 in the config): every added node goes.
        wait_for(lambda: watch.snapshots and not watch.added(watch.snapshots[-1]), 120,
                 "the autoscaler to remove the idle nodes")
    finally:
        if watch is not None:
            watch.stop()
        head.stop()
