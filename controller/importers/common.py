"""What the importers share: Kubernetes quantities, one program for every role, the list of what did not carry
over, and the commented spec they write.

A TFJob or a Vertex AI CustomJob says, per role, what to run (a command line
in a container image), with what resources and environment. A job spec says
it once for the job, and its tasks run on the Ray cluster's nodes, not in an
image. So an importer maps what has a meaning here and lists the rest, each
item with where it came from and what to do instead: an ``Imported`` carries
the spec (a plain mapping, validated by the caller), what is done differently
(``changed``) and what was left out (``not_carried``).
"""

from __future__ import annotations

import json
import math
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

from controller.spec import ENV_NAME, IMAGE_ENTRYPOINT, RESERVED_ENV, SpecError


class ManifestError(SpecError):
    """A manifest that cannot become a job spec: the message names the file, the field and what to do."""


@dataclass
class Imported:
    spec: dict[str, Any]
    changed: list[str] = field(default_factory=list)  # what the spec does differently from the original
    not_carried: list[str] = field(default_factory=list)  # what the original says and the spec does not


@dataclass
class Program:
    """What one role of the original runs: its entrypoint, environment and notes, and where it was said."""

    where: str
    entrypoint: dict
    env: dict[str, str]
    notes: list[str]  # what became of interpreter options, script paths, volume paths in argv
    runs_image_entrypoint: bool = False  # no command: the image's ENTRYPOINT ran, which the manifest does not say


def mapping(value: Any, where: str) -> dict:
    """A manifest's mapping (an absent one is empty), or ManifestError saying where it is something else."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: must be a mapping, not {type(value).__name__} {_preview(value)}")
    return value


# ------------------------------------------------------------------ quantities
# Kubernetes resource quantities (k8s.io/apimachinery/pkg/api/resource): a number, then a binary or
# decimal suffix or an exponent: "2", "500m", "1.5", "4Gi", "2G", "1e9".
QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?")
SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60, "n": Decimal("1e-9"),
          "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "P": 10**15, "E": 10**18}


def quantity(value: Any, where: str) -> Decimal:
    """A Kubernetes quantity's value, or ManifestError naming the field."""
    match = QUANTITY.fullmatch(str(value).strip()) if isinstance(value, (str, int, float)) else None
    if match is None or isinstance(value, bool):
        raise ManifestError(f"{where}: {value!r} is not a Kubernetes quantity; write e.g. '2', '500m', '4Gi' or '2G'")
    number, suffix = match.groups()
    try:
        scale = Decimal(10) ** int(suffix[1:]) if suffix and suffix[0] in "eE" else Decimal(SUFFIX.get(suffix, 1))
        amount = Decimal(number) * scale
    except InvalidOperation:
        raise ManifestError(f"{where}: {value!r} is not a Kubernetes quantity") from None
    if amount < 0:
        raise ManifestError(f"{where}: {value!r} is negative")
    return amount


def cpu_cores(value: Any, where: str) -> float:
    """'2' -> 2, '500m' -> 0.5 (Ray's precision is 1/10000 of a core)."""
    cores = round(float(quantity(value, where)), 4)
    return int(cores) if cores.is_integer() else cores


def memory_mb(value: Any, where: str) -> int:
    """Bytes as MiB, rounded up so the task gets at least what was asked: '4Gi' -> 4096, '2G' -> 1908."""
    return max(1, math.ceil(quantity(value, where) / 2**20))


# ------------------------------------------------------------------ one program for the job
def one_program(programs: dict[str, Program], runs_code: set[str], imported: Imported) -> None:
    """The job's entrypoint and env, from the roles that run code here (the first of ``programs`` in order
    gives them); what other roles ran differently, or with other variables, is said."""
    first = next(p for role, p in programs.items() if role in runs_code)
    imported.spec["entrypoint"] = first.entrypoint
    env: dict[str, str] = {}
    for role, program in programs.items():
        if role not in runs_code:
            imported.changed.append(f"{program.where}: a {role} task runs no code of yours under tfray "
                                    "(parameter_server: it serves a tf.distribute.Server); its command is not used")
        elif program.entrypoint != first.entrypoint:
            imported.not_carried.append(f"{program.where}: runs {_said(program.entrypoint)}, unlike {first.where} "
                                        f"({_said(first.entrypoint)}): every task runs one entrypoint; branch on "
                                        "the task type in TF_CONFIG (or ctx.role) instead")
        if program.entrypoint == first.entrypoint:  # the notes of a command that is not used would mislead
            imported.changed += [note for note in program.notes if note not in imported.changed]
            if program.runs_image_entrypoint:
                imported.not_carried.append(
                    f"{program.where}: no command, so the image's own ENTRYPOINT ran, and the manifest does not say "
                    f"what it is: entrypoint.script is {IMAGE_ENTRYPOINT}, which `tfray validate` refuses; set it to "
                    "the Python script that ENTRYPOINT runs (docker inspect -f '{{.Config.Entrypoint}}' IMAGE "
                    "shows it), or write entrypoint.module instead")
        for name, value in program.env.items():
            if env.setdefault(name, value) != value:
                imported.not_carried.append(f"{program.where}: env {name}={value!r} differs from another role's "
                                            f"{env[name]!r}, which the spec keeps; branch on the task type instead")
    if env:
        imported.spec["env"] = env


def _said(entrypoint: dict) -> str:
    kind = "script" if "script" in entrypoint else "module"
    return shlex.join([entrypoint[kind], *entrypoint.get("argv", [])])


def environment(items: Any, where: str, source: str, imported: Imported) -> dict[str, str]:
    """A container's env list ({name, value} or {name, valueFrom}) as the spec's env; what cannot be set
    from the spec is listed."""
    if not isinstance(items, (list, type(None))):
        raise ManifestError(f"{source}: {where}: must be a list of {{name, value}}")
    env = {}
    for i, item in enumerate(items or []):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise ManifestError(f"{source}: {where}[{i}]: an env entry is a mapping with a name")
        if "valueFrom" in item:
            source_kind = next(iter(mapping(item["valueFrom"], f"{source}: {where}.{name}.valueFrom")), "elsewhere")
            imported.not_carried.append(f"{where}.{name}: comes from {source_kind}; set it on the Ray nodes, or in "
                                        "the spec's env by hand")
        elif name in RESERVED_ENV:
            imported.changed.append(f"{where}.{name}: left out (tfray sets {name} for each task itself)")
        elif not ENV_NAME.fullmatch(name):
            imported.changed.append(f"{where}.{name}: left out (not a name a process can be given)")
        else:
            env[name] = str(item.get("value", ""))
    return env


# ------------------------------------------------------------------ what is left
def leftovers(node: dict, prefix: str, walk: set[str]) -> list[tuple[str, Any]]:
    """Every key still in ``node`` (what the importer did not take), as (dotted path, value); mappings
    named in ``walk`` are listed key by key."""
    found = []
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and key in walk:
            found += leftovers(value, path, walk)
        elif value not in (None, "", [], {}):
            found.append((path, value))
    return found


def describe_leftovers(found: dict[str, list[tuple[str, Any]]], hints: dict[str, str]) -> list[str]:
    """Lines for what was left, one per path, naming the roles (the keys of ``found``) it appeared in."""
    seen: dict[str, tuple[Any, list[str]]] = {}
    for owner, items in found.items():
        for path, value in items:
            seen.setdefault(path, (value, []))[1].append(owner)
    lines = []
    for path, (value, owners) in seen.items():
        hint = hints.get(re.sub(r"\[.*?\]", "", path).rsplit(".", 1)[-1], "")
        where = f" ({', '.join(owners)})" if owners != [""] else ""
        lines.append(f"{path} {_preview(value)}{where}" + (f": {hint}" if hint else ""))
    return lines


def _preview(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------ the spec file
def job_name(text: Any, fallback: str) -> str:
    """A name the spec accepts (it names a folder): other characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text or "")).strip("-_.")[:64]
    return name or fallback


def render(imported: Imported, source: str, how: str) -> str:
    """The spec as YAML, with what changed and what was left out as comments at its top."""
    lines = [f"Imported from {source} by `tfray {how}`.",
             "Check it with `tfray validate SPEC`; `tfray dry-run SPEC` prints every task's TF_CONFIG."]
    for title, items in (("Done differently here:", imported.changed),
                         ("Not carried over (each task is a Ray actor on the cluster's nodes, not a pod or VM):",
                          imported.not_carried)):
        if items:
            lines += ["", title] + [wrapped for item in items for wrapped in textwrap.wrap(
                item, 110, initial_indent="  - ", subsequent_indent="    ", break_long_words=False,
                break_on_hyphens=False)]  # a path or URI stays whole
    header = "\n".join(f"# {line}".rstrip() for line in lines)
    body = yaml.safe_dump(imported.spec, sort_keys=False, default_flow_style=None, width=110, allow_unicode=True)
    return f"{header}\n\n{body}"
