"""The job spec, part three: a Ray runtime environment for every task actor (optional).

What Ray can prepare on each node before a task starts: environment
variables, pip packages, the job's code (a folder or a zip URI), extra Python
modules, or a container image. It is off by default, because an actor with a
runtime_env of its own cannot take one of the worker processes Ray keeps
warm: each such actor waits for a new process, about 0.5 s more
(``bench/actor_start.py``, docs/design.md §6), and a pip install is paid on
every node the first time. The shape is checked here (unknown keys, wrong
types, combinations Ray refuses); paths are resolved against the spec's folder
and checked, with Ray's own parser, by ``controller.ray.runtime_env``.
"""

from __future__ import annotations

from pydantic import Field, StrictStr, field_validator, model_validator

from controller.spec.training import SpecModel, check_environment

# What Ray runs beside an image_uri (ray/_private/runtime_env/image_uri.py, get_compatible_keys).
IMAGE_URI_ALONE = ("pip", "working_dir", "py_modules")


class RuntimeEnvSpec(SpecModel):
    """Ray's ``runtime_env`` for every task actor; each field is Ray's own, under its name."""

    env_vars: dict[str, StrictStr] = Field(
        default_factory=dict, description="Environment variables Ray sets in each task actor's process before it "
        "starts (its launcher and training processes inherit them); `env` needs no runtime_env and costs nothing.")
    pip: list[StrictStr] | StrictStr | None = Field(
        None, description="Packages Ray installs into a virtualenv on each node, e.g. ['tensorflow-datasets==4.9.9'], "
        "or the path of a requirements.txt (relative to the spec's folder). Pin versions: every node installs its "
        "own.")
    working_dir: StrictStr | None = Field(
        None, description="The job's code: a folder (relative to the spec's folder) that Ray packs once and unpacks "
        "on every node, or the URI of a zip (gs://, s3://, https://). Tasks run in Ray's copy of it: a script by its "
        "path inside it, modules imported from it.")
    py_modules: list[StrictStr] = Field(
        default_factory=list, description="Python packages (folders relative to the spec's folder, .whl files, or "
        "zip URIs) that Ray ships to every node and puts on the import path.")
    excludes: list[StrictStr] = Field(
        default_factory=list, description="Files left out of working_dir and py_modules folders (gitignore syntax, "
        "e.g. ['data/', '*.ckpt']); .gitignore'd files are left out already.")
    image_uri: StrictStr | None = Field(
        None, description="A container image each task actor runs in (Ray starts it with podman, which every node "
        "needs); Ray allows only env_vars beside it, and the image needs the same Ray, Python and tfray.")

    @field_validator("env_vars")
    @classmethod
    def _env_vars_are_an_environment(cls, value: dict[str, str]) -> dict[str, str]:
        return check_environment(value, "runtime_env.env_vars")

    @field_validator("pip", "working_dir", "image_uri")
    @classmethod
    def _not_blank(cls, value):
        texts = value if isinstance(value, list) else [value]
        if any(text is not None and (not text.strip() or "\0" in text) for text in texts):
            raise ValueError("must not be empty or hold a NUL character")
        return value

    @model_validator(mode="after")
    def _what_ray_allows(self) -> "RuntimeEnvSpec":
        if self.image_uri is not None:
            beside = [name for name in IMAGE_URI_ALONE if getattr(self, name)]
            if beside:
                raise ValueError(f"image_uri cannot be used with {', '.join(beside)}: Ray runs an image with only "
                                 "env_vars beside it; put those into the image")
        if self.excludes and not (self.working_dir or self.py_modules):
            raise ValueError("excludes applies to working_dir and py_modules folders; set one or remove excludes")
        if not self.model_fields_set:
            raise ValueError("an empty runtime_env changes nothing but slows every actor's start; remove it")
        return self

    @property
    def working_dir_is_uri(self) -> bool:
        return self.working_dir is not None and "://" in self.working_dir
