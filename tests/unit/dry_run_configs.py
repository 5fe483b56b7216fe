"""Every task's TF_CONFIG as `tfray dry-run` computes it (the plan, then the TF_CONFIG functions), for the
importer tests to hold against what the original system gave."""

from __future__ import annotations

from controller.plan.tasks import plan
from controller.plan.tf_config import tf_configs
from controller.spec import parse_spec


def dry_run_tf_configs(spec_data: dict) -> dict[tuple[str, int], dict]:
    """Keyed by (role, index); each task's address is its name (``worker-1``), so addresses compare by place."""
    spec = parse_spec(spec_data)
    tasks = plan(spec)
    configs = tf_configs(spec.strategy, tasks, {t.key: str(t.key) for t in tasks})
    return {(key.role, key.index): config for key, config in configs.items()}
