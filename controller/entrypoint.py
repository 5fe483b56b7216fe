"""Entrypoint checks: does what the spec names exist? Found without running it.

A function entrypoint is located with ``importlib.util.find_spec`` and its
source parsed with ``ast`` for a top-level definition; running the module
would import TensorFlow into the driver, which the controller never does.
A spec can so be checked before anything is scheduled.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

from controller.spec import JobSpec, SpecError


def _find_module_file(module: str, search_path: list[str]) -> str | None:
    """Locate a module's source file without executing it (only parent packages' __init__ run)."""
    saved = list(sys.path)
    sys.path[:0] = [p for p in search_path if p not in sys.path]
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    finally:
        sys.path[:] = saved
    if found is None:
        return None
    return found.origin or "namespace"


def check_entrypoint(spec: JobSpec, search_path: list[str]) -> None:
    """Check the entrypoint exists, without importing user code or TensorFlow.

    A function entrypoint is found with ``importlib.util.find_spec`` and its
    source parsed with ``ast`` for a top-level ``def``; running the module
    would import TensorFlow into the driver, which the controller never does.
    """
    ep = spec.entrypoint
    if ep.script:
        script = spec.resolve(ep.script)
        if not script.is_file():
            raise SpecError(f"entrypoint.script: '{ep.script}' does not exist (looked at {script})")
        return
    module = ep.module or ep.function.split(":")[0]
    field = "entrypoint.module" if ep.module else "entrypoint.function"
    origin = _find_module_file(module, search_path)
    if origin is None:
        raise SpecError(
            f"{field}: cannot find module '{module}' on the path ({', '.join(search_path)}); "
            "run from the folder that holds it or install its package"
        )
    if ep.function:
        func = ep.function.split(":")[1]
        if origin.endswith(".py"):
            tree = ast.parse(Path(origin).read_text(), filename=origin)
            names = {
                node.name
                for node in tree.body
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            } | {
                target.id
                for node in tree.body
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            if func not in names:
                raise SpecError(f"{field}: module '{module}' ({origin}) defines no top-level '{func}'")
