"""A spec's ``runtime_env`` as Ray takes it: checked before Ray starts, its local code shipped once.

``for_ray`` turns ``spec.runtime_env`` into the dict every task actor is
created with: local paths resolved against the spec's folder and checked to
exist, then read by Ray's own parser (``ray.runtime_env.RuntimeEnv``), so what
Ray would refuse is a SpecError naming ``runtime_env`` before anything starts,
not an actor that fails to start. ``ship`` runs once a job is connected to
Ray: Ray takes a local ``working_dir`` or ``py_modules`` folder only at the
job level (``ray.init``), so for an actor's own runtime_env the folder is
packed and uploaded to the cluster here, with Ray's packaging, and replaced by
its ``gcs://`` URI, as ``ray.init`` does for a job's (a private Ray API; Ray is
pinned, docs/design.md §6).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from controller.spec import JobSpec, SpecError

log = logging.getLogger("tfray")


def for_ray(spec: JobSpec) -> dict | None:
    """The runtime_env of every task actor, None when the spec has none; SpecError naming the field otherwise."""
    env = spec.runtime_env
    if env is None:
        return None
    out = env.model_dump(exclude_unset=True)
    if env.working_dir is not None and not env.working_dir_is_uri:
        folder = _existing(spec, "runtime_env.working_dir", env.working_dir)
        if not folder.is_dir():
            raise SpecError(f"runtime_env.working_dir: {folder} is a file; give a folder (Ray packs it), or a zip "
                            "by its URI")
        _script_inside(spec, folder)
        out["working_dir"] = str(folder)
    if isinstance(env.pip, str):
        out["pip"] = str(_existing(spec, "runtime_env.pip", env.pip))  # a requirements file, read by Ray here
    if env.py_modules:
        out["py_modules"] = [module if "://" in module else str(_existing(spec, f"runtime_env.py_modules.{i}", module))
                             for i, module in enumerate(env.py_modules)]
    from ray.runtime_env import RuntimeEnv

    try:
        RuntimeEnv(**out)
    except (ValueError, TypeError) as err:
        raise SpecError(f"runtime_env: Ray refuses it: {err}") from None
    return out


def import_paths(spec: JobSpec) -> list[str]:
    """Where the tasks import from under the runtime_env, on this machine: the local working_dir, and the
    folders holding local py_modules packages (so ``validate`` finds an entrypoint there)."""
    env = spec.runtime_env
    if env is None:
        return []
    paths = [str(spec.resolve(env.working_dir))] if env.working_dir and not env.working_dir_is_uri else []
    return paths + [str(spec.resolve(m).parent) for m in env.py_modules if "://" not in m and spec.resolve(m).is_dir()]


def _existing(spec: JobSpec, field: str, path: str) -> Path:
    resolved = spec.resolve(path)
    if not resolved.exists():
        raise SpecError(f"{field}: '{path}' does not exist (looked at {resolved}); paths are relative to the spec's "
                        "folder")
    return resolved


def _script_inside(spec: JobSpec, folder: Path) -> None:
    """Each node runs Ray's copy of the working_dir, so a script outside it would not be there."""
    script = spec.entrypoint.script
    if script is not None and not spec.resolve(script).is_relative_to(folder):
        raise SpecError(f"entrypoint.script: {spec.resolve(script)} is outside runtime_env.working_dir ({folder}): "
                        "only that folder reaches the nodes; move the script into it or widen the working_dir")


def ship(runtime_env: dict | None) -> dict | None:
    """The runtime_env with its local folders uploaded to the connected cluster (each once per content, as
    Ray names a package by its hash) and replaced by their URIs; URIs and other fields as they are."""
    if not runtime_env or not (runtime_env.get("working_dir") or runtime_env.get("py_modules")):
        return runtime_env
    from ray._private.runtime_env.py_modules import upload_py_modules_if_needed
    from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

    scratch = tempfile.mkdtemp(prefix="tfray-runtime-env-")  # where Ray writes the zip before uploading it
    try:
        shipped = dict(runtime_env)
        shipped = upload_py_modules_if_needed(shipped, include_gitignore=True, scratch_dir=scratch, logger=log)
        shipped = upload_working_dir_if_needed(shipped, include_gitignore=True, scratch_dir=scratch, logger=log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shipped.pop("excludes", None)  # read by the packing only (ray.init drops it the same way)
    return shipped
