"""The job spec, part five: how ``tfray predict`` runs the job's model over a data set (optional).

A ``predict:`` section gives what the command's flags give (a flag wins): how many actors, what each
reserves, the batch size, the model-building function that ``--checkpoint`` goes through, and a price per
node hour for the summary's cost. docs/design.md §14 says how the run goes.
"""

from __future__ import annotations

import re

from pydantic import Field, StrictInt, field_validator

from controller.spec.training import SpecModel

MAX_ACTORS = 1024
FUNCTION_RULE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class PredictSpec(SpecModel):
    """How `tfray predict JOB.yaml` runs: its actors, their resources, its batches and its price."""

    concurrency: StrictInt = Field(
        1, ge=1, le=MAX_ACTORS, description="Prediction actors, each holding one copy of the model (Ray Data's "
        "map_batches concurrency); `--concurrency` wins.")
    cpus_per_actor: float = Field(
        1.0, gt=0, le=1024, description="CPUs each actor reserves; TensorFlow's thread pools get as many (at "
        "least 1). `--cpus-per-actor` wins.")
    gpus_per_actor: float = Field(
        0.0, ge=0, le=64, description="GPUs each actor reserves (a fraction shares one GPU). `--gpus-per-actor` "
        "wins.")
    batch_size: StrictInt = Field(
        256, ge=1, le=1 << 20, description="Rows per batch the model is called on. `--batch-size` wins.")
    model_function: str | None = Field(
        None, description="module:function that returns the job's Keras model, uncompiled and untrained (its "
        "keyword arguments taken from entrypoint.args where it names them): `tfray predict --checkpoint` "
        "builds it and loads the checkpoint's weights into it.")
    price_per_node_hour: float | None = Field(
        None, ge=0, le=1e6, description="What one node of the cluster costs an hour, in your currency: the "
        "summary then gives the run's cost (node-hours x this price). Unset: no cost is said.")

    @field_validator("model_function")
    @classmethod
    def _function_is_module_colon_name(cls, value: str | None) -> str | None:
        if value is not None and not FUNCTION_RULE.fullmatch(value):
            raise ValueError(f"model_function {value!r} must be module:function, e.g. examples.digits:build_model")
        return value
