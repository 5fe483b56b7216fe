"""Does the entrypoint exist? Found by reading its source, never by running it.

``validate`` and ``dry-run`` must not execute user code (a package's
``__init__`` can do anything), and the driver must not import TensorFlow. So
a module is located the way the import system would find it, one dotted part
at a time, with the finders' ``find_spec`` only (a parent package is never
executed); a function is looked for in the module's syntax tree, following
simple re-exports (``from .train import train``). What cannot be decided by
reading (a name made at import time, a ``*`` import) is a warning, not an
error: the job will look it up when it runs. Source that does not parse, or
is not text, is an error that names the file and the line, and so is an
import of Keras 3 in a multi-task job (``keras3_imports.py``).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable
from pathlib import Path

from controller.spec.job import JobSpec, SpecError
from controller.spec.keras3_imports import refuse_keras3

MAX_REEXPORTS = 8  # how many `from x import name` hops are followed
# What an importer writes as the script when the original ran its container image's own ENTRYPOINT, which the
# manifest does not name: a spec that loads (so the rest of it can be read and edited) but never validates or runs.
IMAGE_ENTRYPOINT = "FILL-IN-the-script-the-image-ENTRYPOINT-runs.py"


class EntrypointNotFound(SpecError):
    """The script or module is not on this machine (it may still come with a runtime_env working_dir URI)."""


def find_module(module: str, search_path: list[str]) -> Path | None:
    """The source file of a dotted module (a package's ``__init__.py``), None when there is none to read.
    Raises SpecError when the module cannot be found."""
    paths: list[str] | None = [*search_path, *(p for p in sys.path if p)]
    spec = None
    for depth, part in enumerate(module.split(".")):
        name = ".".join(module.split(".")[:depth + 1])
        spec = _find_spec(name, paths)
        if spec is None:
            raise EntrypointNotFound(f"cannot find module '{name}' on the path ({', '.join(search_path)}); run from "
                                     "the folder that holds it or install its package")
        paths = list(spec.submodule_search_locations or [])
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _find_spec(name: str, paths: list[str]):
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, paths)
        except (ImportError, ValueError, TypeError):
            continue
        if spec is not None:
            return spec
    return None


def parse_source(path: Path, field: str) -> ast.Module:
    """A Python file's syntax tree, or SpecError naming the file and line (or that it is not text)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise SpecError(f"{field}: cannot read {path} ({err.strerror})") from None
    try:
        return ast.parse(raw, filename=str(path))  # bytes: honours a PEP 263 coding line, else UTF-8
    except SyntaxError as err:
        raise SpecError(f"{field}: {path} line {err.lineno}: {err.msg}; fix the file (it would fail when the "
                        "job runs)") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise SpecError(f"{field}: {path} is not Python source ({err})") from None


def _defines(tree: ast.Module, name: str) -> ast.stmt | None:
    """The top-level statement that binds ``name``: a def, a class, an assignment or an import."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return node
    return None


def _dynamic(tree: ast.Module) -> bool:
    """Whether the module may make names in ways reading cannot follow (``*`` imports, ``__getattr__``)."""
    return any((isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names))
               or (isinstance(node, ast.FunctionDef) and node.name == "__getattr__") for node in tree.body)


def find_function(module: str, func: str, search_path: list[str], field: str,
                  check_source: Callable[[Path, ast.Module], None] = lambda path, tree: None) -> list[str]:
    """Check ``module:func`` exists by reading source; the warnings where reading cannot tell.
    ``check_source`` is given each module read on the way (the named one, then each it re-exports from)."""
    for _ in range(MAX_REEXPORTS):
        path = find_module(module, search_path)
        if path is None:
            return [f"{field}: '{module}' has no Python source to read; '{func}' is looked up when the job runs"]
        tree = parse_source(path, field)
        check_source(path, tree)
        found = _defines(tree, func)
        if isinstance(found, ast.ImportFrom):
            alias = next(a for a in found.names if (a.asname or a.name) == func)
            base = module if path.name == "__init__.py" else module.rpartition(".")[0]
            for _ in range(found.level - 1):
                base = base.rpartition(".")[0]
            module = ".".join(p for p in (base if found.level else "", found.module or "") if p)
            func = alias.name
            continue
        if found is not None:
            return []
        if _dynamic(tree):
            return [f"{field}: {path} may define '{func}' at import time (a * import or __getattr__); it is "
                    "looked up when the job runs"]
        raise SpecError(f"{field}: module '{module}' ({path}) defines no top-level '{func}'")
    return [f"{field}: '{func}' is re-exported more than {MAX_REEXPORTS} times; it is looked up when the job runs"]


def check_entrypoint(spec: JobSpec, search_path: list[str]) -> list[str]:
    """Check the entrypoint exists and parses, without running it; returns warnings (raises SpecError).
    Code that comes with a runtime_env ``working_dir`` URI is not here to read: not finding it is a warning."""
    try:
        return _check_entrypoint(spec, search_path)
    except EntrypointNotFound as err:
        if spec.runtime_env is None or not spec.runtime_env.working_dir_is_uri:
            raise
        return [f"{err}; it is looked for in runtime_env.working_dir ({spec.runtime_env.working_dir}) when the "
                "job runs"]


def _check_entrypoint(spec: JobSpec, search_path: list[str]) -> list[str]:
    ep = spec.entrypoint
    if ep.script == IMAGE_ENTRYPOINT:  # a SpecError, not EntrypointNotFound: no working_dir can bring it
        raise SpecError(f"entrypoint.script: {IMAGE_ENTRYPOINT} is left to fill in: the imported job ran its "
                        "container image's own ENTRYPOINT, which the manifest does not say; set entrypoint.script "
                        "to the Python script it runs (`docker inspect -f '{{.Config.Entrypoint}}' IMAGE` shows "
                        "it), relative to the spec's folder, or write entrypoint.module instead")
    if ep.script:
        script = spec.resolve(ep.script)
        if script.is_dir():
            raise EntrypointNotFound(f"entrypoint.script: '{ep.script}' is a folder ({script}); a script file is "
                                     f"needed, the Python file each task runs, e.g. {script / 'train.py'}")
        if not script.is_file():
            raise EntrypointNotFound(f"entrypoint.script: '{ep.script}' does not exist (looked at {script})")
        tree = parse_source(script, "entrypoint.script")
        refuse_keras3(spec, script, tree, "entrypoint.script")
        return _fault_warnings(spec, tree)
    if ep.module:
        try:
            path = find_module(ep.module, search_path)
        except EntrypointNotFound as err:
            raise EntrypointNotFound(f"entrypoint.module: {err}") from None
        if path is None:
            return []
        tree = parse_source(path, "entrypoint.module")
        refuse_keras3(spec, path, tree, "entrypoint.module")
        return _fault_warnings(spec, tree)
    module, func = ep.function.split(":")
    try:
        return find_function(module, func, search_path, "entrypoint.function",
                             lambda path, tree: refuse_keras3(spec, path, tree, "entrypoint.function"))
    except SpecError as err:
        message = str(err)
        raise type(err)(message if message.startswith("entrypoint.") else f"entrypoint.function: {message}") from None


def _fault_warnings(spec: JobSpec, tree: ast.Module) -> list[str]:
    """A step or save fault needs the task to report; a script that never asks for its context does not."""
    if any(isinstance(node, (ast.Name, ast.Attribute)) and "get_context" in ast.unparse(node)
           for node in ast.walk(tree)):
        return []
    return [f"faults.{i}: {f.task} fires at a reported step or save, but the script never calls "
            "workers.get_context(), so it reports none: this fault will not fire (use @after=SECONDS)"
            for i, f in enumerate(spec.faults) if f.at_step is not None or f.at_save is not None]
