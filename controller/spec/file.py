"""Reading a job spec file: text, YAML and the model, each failure said with the file and the field.

A spec must be UTF-8 text (a binary or latin-1 file is named as such, with the
byte), YAML without duplicate keys (the last one would silently win), and a
mapping the :class:`~controller.spec.job.JobSpec` model accepts. Errors are
:class:`~controller.spec.job.SpecError` with the field path and what to do;
nothing here runs user code or starts anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from controller.spec.job import JobSpec, SpecError


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: the job spec is not valid:"]
    for item in err.errors():
        path = ".".join(str(p) for p in item["loc"])
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key; check its spelling (see `tfray schema` for every allowed key)"
        elif item["type"] == "missing":
            msg = "required field is missing"
        elif not item["type"].startswith("value_error"):  # a wrong type or bound: show what was given
            msg = f"{msg} (got {_shown(item.get('input'))})"
        lines.append(f"  - {path}: {msg}" if path else f"  - {msg}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that gives one key twice (YAML would keep the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: YAML's own error says so
                break
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {first} and {key_node.start_mark.line + 1}); "
                    "keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def parse_spec(data: Any, source: str = "spec", base_dir: str | os.PathLike = ".") -> JobSpec:
    """Validate a loaded YAML/JSON mapping into a JobSpec, or raise SpecError."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the job spec must be a YAML mapping (key: value), got {type(data).__name__}")
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, source)) from None
    spec._base_dir = str(base_dir)
    return spec


def read_text(path: Path, what: str = "job spec") -> str:
    """A file's text, or SpecError naming what is wrong with it (missing, a folder, binary, not UTF-8)."""
    if path.is_dir():
        raise SpecError(f"{path}: is a folder, not a {what} file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such {what} file; pass the path of a YAML {what}") from None
    except OSError as err:
        raise SpecError(f"{path}: cannot be read ({err.strerror})") from None
    if b"\0" in raw:
        raise SpecError(f"{path}: is a binary file, not a YAML {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"{path}: is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); save it "
                        "as UTF-8") from None


def parse_yaml(text: str, source: str) -> Any:
    """YAML text's data (JSON is YAML too), or SpecError naming ``source`` and what is wrong with it."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        raise SpecError(f"{source}: not valid YAML: {err}") from None
    except RecursionError:
        raise SpecError(f"{source}: not valid YAML: nested too deeply") from None


def load_yaml(path: Path, what: str = "job spec") -> Any:
    """A YAML file's data, or SpecError naming the file and what is wrong with it."""
    return parse_yaml(read_text(path, what), str(path))


def load_spec(path: str | os.PathLike) -> JobSpec:
    """Read and validate a job spec file; relative paths in it resolve against its folder."""
    path = Path(path)
    return parse_spec(load_yaml(path), source=str(path), base_dir=path.resolve().parent)
