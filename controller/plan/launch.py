"""What each task is sent to run (pure): environment, TF_CONFIG, entrypoint, storage, restore point, faults.

Like the plan and TF_CONFIG, a launch is a request built by a pure function
from the spec and the addresses the tasks reported, so tests can pin it
without Ray. A replacement task gets its predecessor's launch, role and
index included, but not its faults: an injected fault fires once.
"""

from __future__ import annotations

import dataclasses

from controller import settings
from controller.plan.gpus import collective
from controller.plan.tasks import TaskSpec, dispatcher_of
from controller.plan.tf_config import tf_configs
from controller.spec import JobSpec, Role, Strategy
from controller.store.checkpoints import CheckpointRecord
from protocol.data_service import service_url
from protocol.wire import (
    COLLECTIVE_ENV,
    ActorConfig,
    DevicePlan,
    Entrypoint,
    RestorePoint,
    StoragePlan,
    TaskKey,
    TaskLaunch,
)


def task_env(spec: JobSpec) -> dict[str, str]:
    """Every task's environment: the fixed TF settings, the strategy's, the all-reduce, then the spec's own.
    (Each task's GPUs are its actor's to set: only it knows which ones Ray assigned.)"""
    strategy_env = settings.PSS_TASK_ENV if spec.strategy is Strategy.PARAMETER_SERVER else {}
    return {**settings.TASK_ENV, **strategy_env, COLLECTIVE_ENV: collective(spec), **spec.env}


def build_launches(spec: JobSpec, tasks: list[TaskSpec], addresses: dict[TaskKey, str], env: dict[str, str], *,
                   attempt: int, restarts: int, restore: CheckpointRecord | None,
                   sys_path: list[str], storage_token: str | None = None) -> dict[TaskKey, TaskLaunch]:
    """One launch per task for this run of the cluster (``restarts`` picks the faults that apply)."""
    ep = spec.entrypoint
    target, import_path, cwd = code_location(spec, sys_path)
    configs = tf_configs(spec.strategy, tasks, addresses)
    dispatcher = dispatcher_of(tasks)
    entrypoint = Entrypoint(kind=ep.kind, target=target, args=dict(ep.args), argv=tuple(ep.command_line()), env=env,
                            sys_path=import_path, cwd=cwd, keras_backup=ep.keras_backup and ep.kind != "function")
    storage = StoragePlan(job_dir=str(spec.job_dir), mode=spec.effective_storage_mode.value, token=storage_token)
    point = RestorePoint(restore.path, restore.step, restore.epoch, restore.batch) if restore else None
    return {
        task.key: TaskLaunch(
            job_name=spec.name,
            attempt=attempt,
            strategy=spec.strategy.value,
            role=task.role,
            index=task.index,
            is_chief=task.is_chief,
            num_workers=sum(1 for t in tasks if t.in_cluster),
            tf_config=configs[task.key],
            entrypoint=entrypoint,
            storage=storage,
            restore=point,
            run=restarts,
            checkpoint_every_n_epochs=spec.checkpoint.every_n_epochs,
            runs_server=task.runs_server,
            servers=servers_to_reach(spec.strategy, task, tasks, addresses),
            server_wait_s=spec.timeouts.startup_s,
            faults=tuple(f.model_dump(mode="json") for f in spec.faults  # the controller does the network's
                         if f.task == str(task.key) and f.restart == restarts and not f.action.on_network),
            preemption_grace_s=spec.timeouts.preemption_grace_s,
            address=addresses[task.key],
            cpu_affinity=task.cpu_affinity,
            data_service=service_url(addresses[dispatcher.key]) if dispatcher else None,
        )
        for task in tasks
    }


def servers_to_reach(strategy: Strategy, task: TaskSpec, tasks: list[TaskSpec],
                     addresses: dict[TaskKey, str]) -> tuple[tuple[str, str], ...]:
    """(task, host:port) of the servers a task must reach before its code runs: a PSS coordinator every ps and
    worker; a task that trains the tf.data service's dispatcher and workers; a data worker its dispatcher."""
    if task.role == Role.DATA_WORKER.value:
        wanted = [dispatcher_of(tasks)]
    elif task.runs_server or not task.in_cluster:
        wanted = []
    else:
        pss_coordinator = strategy is Strategy.PARAMETER_SERVER and task.is_chief
        wanted = [t for t in tasks if t.serves_data or (pss_coordinator and t.serves_training)]
    return tuple((str(t.key), addresses[t.key]) for t in wanted)


def code_location(spec: JobSpec, sys_path: list[str]) -> tuple[str, tuple[str, ...], str | None]:
    """Where every task finds the code: (entrypoint target, import path, working folder).

    Without a runtime_env ``working_dir`` the code is where the spec's files are on this machine (the same
    paths on every node: one machine, a shared folder, or ``tfray submit``'s shipped folder): a script by
    its absolute path, run in the first search folder. With one, each node has Ray's copy of it and the actor
    already runs in it, with the copy first on its import path: a script by its path inside it, nothing
    added to the import path (this machine's paths would shadow the copy), no change of folder."""
    ep = spec.entrypoint
    working_dir = spec.runtime_env.working_dir if spec.runtime_env else None
    if working_dir is None:
        target = str(spec.resolve(ep.script)) if ep.script else (ep.function or ep.module)
        return target, tuple(sys_path), (sys_path[0] if sys_path and (ep.script or ep.module) else None)
    if ep.script and not spec.runtime_env.working_dir_is_uri:
        return spec.resolve(ep.script).relative_to(spec.resolve(working_dir)).as_posix(), (), None
    return ep.script or ep.function or ep.module, (), None


def replacement_launch(launch: TaskLaunch) -> TaskLaunch:
    """The launch of a task replaced alone: its predecessor's, without the faults that already fired."""
    return dataclasses.replace(launch, faults=())


def actor_config(key: TaskKey, env: dict[str, str], devices: DevicePlan = DevicePlan(), *,
                 own_env: dict[str, str] | None = None, niceness: int | None = 0) -> ActorConfig:
    """What a task's actor is built with: its identity, its environment (its own thread settings under the
    job's, so a variable the spec's env sets wins), its niceness, its GPUs and its intervals."""
    return ActorConfig(
        role=key.role, index=key.index, env={**(own_env or {}), **env}, devices=devices, niceness=niceness,
        gpu_context_reserve_mb=settings.GPU_CONTEXT_RESERVE_MB, nvidia_smi_timeout_s=settings.NVIDIA_SMI_TIMEOUT_S,
        heartbeat_interval_s=settings.HEARTBEAT_INTERVAL_S,
        heartbeat_reply_timeout_s=settings.HEARTBEAT_REPLY_TIMEOUT_S,
        alive_interval_s=settings.ALIVE_INTERVAL_S, sidecar_poll_s=settings.SIDECAR_POLL_S,
        inbox_call_timeout_s=settings.INBOX_CALL_TIMEOUT_S, stop_run_timeout_s=settings.STOP_RUN_TIMEOUT_S,
        gather_timeout_s=settings.GATHER_TIMEOUT_S, output_tail_lines=settings.OUTPUT_TAIL_LINES,
        server_probe_max_s=settings.SERVER_PROBE_MAX_S, exit_handlers_s=settings.EXIT_HANDLERS_S,
        output_flush_s=settings.OUTPUT_FLUSH_S, log_max_bytes=settings.TASK_LOG_MAX_BYTES,
        log_backups=settings.TASK_LOG_BACKUPS,
    )
