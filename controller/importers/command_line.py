"""A container's command line as an entrypoint: a script or module with its exact argv, or the image's own
ENTRYPOINT marked to fill in.

A Kubernetes container (a TFJob replica) and a Vertex AI ``containerSpec``
run ``command`` + ``args``; with no ``command`` the image's ENTRYPOINT runs,
given ``args`` (Kubernetes' rule, which Vertex AI follows). Many manifests
have none (two of the four TFJob examples of Kubeflow's training-operator
v1.9, most ``gcloud ai custom-jobs create --config`` files): the image
decides. What it runs is in the image, not the manifest, so the spec gets
``IMAGE_ENTRYPOINT``, which ``tfray validate`` refuses until it is replaced,
and ``args`` stay its argv. Unless ``args`` is itself a Python command line
(``[python, train.py]``, ``[train.py]``): an image built to run what it is
given has no ENTRYPOINT (TensorFlow's own images have none), so that is what
ran.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from controller.importers.common import ManifestError, Program
from controller.spec import IMAGE_ENTRYPOINT

PYTHON = re.compile(r"python(\d+(\.\d+)*)?")
SHELLS = {"sh", "bash", "dash", "zsh"}
SHELL_SYNTAX = re.compile(r"[;&|<>`$(){}\n*?]")  # anything but one plain command
# Interpreter options that take no value, and what becomes of each here.
PYTHON_FLAGS = {"-u": ("PYTHONUNBUFFERED", "1"), "-B": ("PYTHONDONTWRITEBYTECODE", "1"), "-O": ("PYTHONOPTIMIZE", "1"),
                "-OO": ("PYTHONOPTIMIZE", "2"), "-E": None, "-s": None, "-S": None, "-I": None, "-q": None}


def runs_python(words: list[str]) -> bool:
    """Whether a command line starts with a Python interpreter (python, python3.11, /usr/bin/python3) or a
    ``.py`` script."""
    return bool(words) and (PYTHON.fullmatch(posixpath.basename(words[0])) is not None or words[0].endswith(".py"))


def entrypoint_from(command: list | None, args: list | None, where: str, workdir: str | None = None,
                    mounts: tuple[str, ...] = ()) -> Program:
    """A container's command line as a script or module entrypoint with its exact argv; without a command,
    ``args`` as the command line when it is one, else the image's ENTRYPOINT to fill in."""
    if not all(isinstance(part, (list, type(None))) for part in (command, args)):
        raise ManifestError(f"{where}: command and args must be lists of strings")
    words = [*(command or []), *(args or [])]
    if not all(isinstance(w, (str, int, float)) and not isinstance(w, bool) for w in words):
        raise ManifestError(f"{where}: command and args must be lists of strings")
    words = [str(w) for w in words]
    notes: list[str] = []
    if not command:
        if not runs_python(words):
            return _mounted(Program(where, {"script": IMAGE_ENTRYPOINT, **({"argv": words} if words else {})}, {},
                                    notes, runs_image_entrypoint=True), mounts)
        notes.append(f"no command: args {shlex.join(words[:2])}{' ...' if len(words) > 2 else ''} is taken as the "
                     "command line (what runs when the image has no ENTRYPOINT of its own, as TensorFlow's have "
                     "none); if the image has one, it ran with these as its arguments: set entrypoint by hand")
    env: dict[str, str] = {}
    if posixpath.basename(words[0]) in SHELLS and len(words) >= 3 and words[1] == "-c":
        if SHELL_SYNTAX.search(words[2]) or len(words) > 3:
            raise ManifestError(f"{where}: runs a shell script ({words[2]!r}); tfray runs one Python script or module "
                                "per task: put the steps into the script, or write the spec's entrypoint by hand")
        try:
            words = shlex.split(words[2])
        except ValueError as err:
            raise ManifestError(f"{where}: cannot read the shell line {words[2]!r} ({err})") from None
    if PYTHON.fullmatch(posixpath.basename(words[0])):
        rest = words[1:]
        while rest and rest[0] in PYTHON_FLAGS:
            flag = rest.pop(0)
            if PYTHON_FLAGS[flag]:
                env[PYTHON_FLAGS[flag][0]] = PYTHON_FLAGS[flag][1]
            notes.append(f"python {flag} becomes " + ("{}={} in env".format(*PYTHON_FLAGS[flag])
                         if PYTHON_FLAGS[flag] else "nothing (tasks run the code in the launcher's interpreter)"))
        if rest[:1] == ["-m"] and len(rest) >= 2:
            entrypoint = {"module": rest[1], "argv": rest[2:]}
        elif rest and not rest[0].startswith("-"):
            entrypoint = {"script": _script_path(rest[0], workdir, notes), "argv": rest[1:]}
        else:
            raise ManifestError(f"{where}: runs python {' '.join(rest[:2])}: tfray runs a script or a module "
                                "(python train.py / python -m pkg.train)")
    elif words[0].endswith(".py"):
        entrypoint = {"script": _script_path(words[0], workdir, notes), "argv": words[1:]}
    else:
        raise ManifestError(f"{where}: runs {words[0]!r}, not Python: tfray runs a Python script or module in each "
                            "task; point command at it (command: [python, train.py])")
    if not entrypoint["argv"]:
        del entrypoint["argv"]
    return _mounted(Program(where, entrypoint, env, notes), mounts)


def _mounted(program: Program, mounts: tuple[str, ...]) -> Program:
    """The program, with a note for each argument that names a volume of the pod."""
    for arg in program.entrypoint.get("argv", []):
        mount = next((m for m in mounts if arg.partition("=")[2].startswith(m) or arg.startswith(m)), None)
        if mount:
            program.notes.append(f"argv {arg!r} names {mount}, a volume of the pod: give a path every Ray node "
                                 "sees, or a gs:// / s3:// URI")
    return program


def _script_path(path: str, workdir: str | None, notes: list[str]) -> str:
    """A script's path in the image, as a path next to the spec: its part under the container's workingDir
    (if relative or under it), else its file name."""
    workdir = workdir if isinstance(workdir, str) and posixpath.isabs(workdir) else None
    inside = posixpath.normpath(posixpath.join(workdir or "/", path))
    relative = posixpath.relpath(inside, workdir) if workdir and inside.startswith(workdir.rstrip("/") + "/") else None
    chosen = relative if relative else (path if not posixpath.isabs(path) else posixpath.basename(path))
    if chosen != path:
        notes.append(f"the image's {inside} is expected at {chosen}, relative to the spec's folder; put the "
                     "script there or edit entrypoint.script")
    return chosen
