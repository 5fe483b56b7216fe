"""TF_CONFIG generation (pure): cluster addresses + task identity -> dict.

TensorFlow reads ``TF_CONFIG`` when a strategy is built, so the controller
assembles the cluster from every task's reported ``host:port`` and hands each
task its own copy before any strategy exists. The evaluator is never in the
``cluster`` map (putting it there hangs a parameter-server coordinator,
Kubeflow TFJob #1213); it gets a cluster of its own, ``{"evaluator": [itself]}``.
Single-process strategies (``mirrored``, ``one_device``) get no TF_CONFIG, nor
do the tf.data service's servers, which run no strategy.
"""

from __future__ import annotations

from controller.plan.tasks import TaskKey, TaskSpec
from controller.spec import ROLE_ORDER, Strategy


def placeholder_address(key: TaskKey) -> str:
    """The address a dry run shows for a task whose port is not reserved yet."""
    return f"<{key}-host>:<port>"


def cluster_spec(tasks: list[TaskSpec], addresses: dict[TaskKey, str]) -> dict[str, list[str]]:
    """The ``cluster`` part of TF_CONFIG: role -> addresses ordered by index."""
    cluster: dict[str, list[str]] = {}
    for role in ROLE_ORDER:
        members = sorted((t for t in tasks if t.role == role.value and t.in_cluster), key=lambda t: t.index)
        if members:
            cluster[role.value] = [addresses[t.key] for t in members]
    return cluster


def tf_config(cluster: dict[str, list[str]], key: TaskKey) -> dict:
    """The TF_CONFIG of one task."""
    return {"cluster": cluster, "task": {"type": key.role, "index": key.index}}


def tf_configs(strategy: Strategy, tasks: list[TaskSpec], addresses: dict[TaskKey, str]) -> dict[TaskKey, dict | None]:
    """Every task's TF_CONFIG (None for single-process strategies)."""
    if not strategy.is_multi_task:
        return {t.key: None for t in tasks}
    cluster = cluster_spec(tasks, addresses)
    return {
        t.key: None if t.serves_data else tf_config(cluster if t.in_cluster else {t.role: [addresses[t.key]]}, t.key)
        for t in tasks
    }
