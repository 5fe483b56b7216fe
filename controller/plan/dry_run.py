"""The dry-run text: every task's role, index, resources and TF_CONFIG, with placeholder addresses.

Built from the plan and the TF_CONFIG functions alone (pure), so it runs no
user code and starts nothing; golden files pin it (``tests/golden``).
"""

from __future__ import annotations

import json
import os

from controller import settings
from controller.plan.gpus import describe_devices, describe_job, uses_gpus
from controller.plan.tasks import describe_bundle, describe_process, dispatcher_of, plan
from controller.plan.tf_config import placeholder_address, tf_configs
from protocol.data_service import DATA_SERVICE_ENV, WORK_DIR, service_url
from protocol.layout import KERAS_BACKUP_DIR


def render_plan(spec) -> str:
    """The dry-run text: every task's role, index, resources and TF_CONFIG (placeholder addresses)."""
    tasks = plan(spec)
    configs = tf_configs(spec.strategy, tasks, {t.key: placeholder_address(t.key) for t in tasks})
    ep = spec.entrypoint
    target = ep.function or ep.script or ep.module
    lines = [
        f"job: {spec.name}",
        f"strategy: {spec.strategy.value}",
        f"entrypoint: {ep.kind} {target}" + (f" args {json.dumps(ep.args, sort_keys=True)}" if ep.args else "")
        + (f" argv {json.dumps(ep.argv)}" if ep.argv is not None else ""),
        *([] if ep.function else [f"keras fit: BackupAndRestore each epoch into {KERAS_BACKUP_DIR}/ where fit has "
                                  "no BackupAndRestore or JobCallback (entrypoint.keras_backup)" if ep.keras_backup
                                  else "keras fit: as the script wrote it (entrypoint.keras_backup: false)"]),
        f"storage: {spec.storage_path}/{spec.name}"
        + ("" if os.path.isabs(os.path.expanduser(spec.storage_path)) or "://" in spec.storage_path
           else " (relative to the spec's folder)"),
        f"placement: {spec.placement.value}, {len(tasks)} tasks in one placement group",
        f"checkpoints: every {spec.checkpoint.every_n_epochs} epoch(s), keep {spec.checkpoint.keep}",
        "failure budgets: " + ", ".join(f"{k}={v}" for k, v in spec.failure.limits().items())
        + f", backoff {spec.failure.backoff_s:g}s doubling to {spec.failure.max_backoff_s:g}s",
        "timeouts: " + ", ".join(f"{k}={v:g}s" for k, v in spec.timeouts.model_dump().items() if v is not None),
        *describe_job(spec),
    ]
    for fault in spec.faults:
        where = f"{fault.task}'s host" if fault.action.on_network else fault.task
        lines.append(f"fault: {fault.action.value} {where} at {fault.when()} (run {fault.restart} of the cluster)")
    dispatcher = dispatcher_of(tasks)
    if dispatcher is not None:
        lines.append(f"tf.data service: {service_url(placeholder_address(dispatcher.key))} (every task's "
                     f"ctx.data_service and {DATA_SERVICE_ENV}; journal in the job folder's {WORK_DIR}/)")
    lines.append("")
    for task in tasks:
        notes = [n for n, on in (("chief", task.is_chief), ("serves tf.distribute.Server", task.serves_training),
                                 (f"serves the tf.data service's {task.role[5:]}", task.serves_data),
                                 ("side-car, outside the training cluster", task.sidecar)) if on]
        lines.append(f"{task.key}{' (' + ', '.join(notes) + ')' if notes else ''}")
        lines.append(f"  resources: {describe_bundle(task.bundle)}")
        lines.append(f"  process: {describe_process(task.niceness, {**task.env, **spec.env}, task.cpu_affinity)}")
        if uses_gpus(spec):
            lines.append(f"  GPUs: {describe_devices(task.devices, settings.GPU_CONTEXT_RESERVE_MB)}")
        config = configs[task.key]
        none = "(none: it runs no strategy)" if task.serves_data else "(none: single process)"
        lines.append(f"  TF_CONFIG: {json.dumps(config, sort_keys=True) if config else none}")
    return "\n".join(lines) + "\n"
