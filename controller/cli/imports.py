"""The CLI's commands that turn another system's job into a job spec: ``import-tfjob`` and ``import-vertex``.

Each reads one manifest, writes the spec (to ``-o`` or stdout) with what is
done differently and what did not carry over as comments at its top, and
says the same on stderr. The spec is validated before it is written, so what
it writes loads; ``tfray validate`` then checks its entrypoint once the code
is in place. Nothing runs and nothing starts.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from controller.cli.exit_codes import EXIT_BAD_INPUT, EXIT_OK

if TYPE_CHECKING:  # the importers and the spec are imported by the commands that run: `tfray --help` needs neither
    from controller.importers.common import Imported

TFJOB_EPILOG = """\
what becomes what:
  tfReplicaSpecs Chief/Master, Worker, PS, Evaluator   roles chief, worker, ps, evaluator with their replicas
  a PS replica                                        strategy parameter_server (else multi_worker_mirrored)
  the tensorflow container's resources                roles.<role>.resources (limits, else requests):
                                                      cpu "2"/"500m", memory "4Gi"/"512Mi"/"2G", nvidia.com/gpu
  its command + args                                  entrypoint script or module, with its exact argv
  no command: args [python, train.py]                 that command line
  no command, other args (the image's ENTRYPOINT)     entrypoint.script to fill in (validate refuses it until then)
  its env                                             env (valueFrom entries are listed, not copied)
  runPolicy.activeDeadlineSeconds / backoffLimit      timeouts.job_s / failure budgets
  restartPolicy per replica                           said against tfray's failure policy, per role
  image, volumes, nodeSelector, cleanPodPolicy, ...   listed at the top of the spec and on stderr

examples:
  tfray import-tfjob tfjob.yaml -o job.yaml     write the spec, then: tfray validate job.yaml
  tfray import-tfjob tfjob.yaml                 print it
  kubectl get tfjob my-job -o yaml | tfray import-tfjob - -o job.yaml
"""

VERTEX_EPILOG = """\
what becomes what:
  workerPoolSpecs[0], [1], [2], [3]                   roles chief, worker, ps, evaluator with replicaCount
  machineSpec.machineType, acceleratorType/Count      roles.<role>.resources (the table in docs/migrating.md)
  containerSpec.command + args, pythonPackageSpec     entrypoint script or module, with its exact argv
  .pythonModule + args                                (no command: as for import-tfjob)
  env                                                 env
  baseOutputDirectory.outputUriPrefix                 storage_path (AIP_MODEL_DIR etc. point into the job folder)
  scheduling.timeout                                  timeouts.job_s
  imageUri, packageUris, network, serviceAccount ...  listed at the top of the spec and on stderr

Reads a CustomJob as the REST API returns it (JSON, with jobSpec), the body of
`gcloud ai custom-jobs create --config` (YAML with workerPoolSpecs), the same
with snake_case keys (worker_pool_specs), as the Python SDK writes them, or the
SDK's bare list of worker pool specs (CustomJob(worker_pool_specs=[...])).

examples:
  tfray import-vertex customjob.json -o job.yaml
  gcloud ai custom-jobs describe JOB_ID --format=json | tfray import-vertex - -o job.yaml
"""


def _read(source: str, what: str):
    """The manifest's data and how to name it (``-``: stdin, e.g. from ``kubectl get tfjob NAME -o yaml``)."""
    from controller.spec import load_yaml, parse_yaml

    if source == "-":
        return parse_yaml(sys.stdin.read(), "stdin"), "stdin"
    return load_yaml(Path(source), what), source


def _fallback_name(source: str) -> str:
    """The job's name when the manifest gives none: the file's name."""
    return "imported" if source == "-" else Path(source).stem


def _finish(imported: Imported, source: str, how: str, output: str | None, force: bool) -> int:
    """Validate the spec, write it with its notes, and say the same on stderr."""
    from controller.importers.common import ManifestError, render
    from controller.spec import SpecError, parse_spec

    out = Path(output) if output else None
    try:
        parse_spec(imported.spec, source=f"the spec made from {source}", base_dir=out.parent if out else ".")
    except SpecError as err:
        raise ManifestError(f"{err}\n(the manifest asks for something a job spec cannot say; fix the manifest or "
                            "write that part of the spec by hand)") from None
    text = render(imported, source, how)
    for title, items in (("done differently", imported.changed), ("not carried over", imported.not_carried)):
        for item in items:
            print(f"{title}: {item}", file=sys.stderr)
    if out is None:
        sys.stdout.write(text)
        return EXIT_OK
    if out.exists() and not force:
        print(f"error: {out} exists; pass --force to replace it", file=sys.stderr)
        return EXIT_BAD_INPUT
    out.write_text(text)
    ep = imported.spec["entrypoint"]
    code = ep.get("script") or ep.get("module")
    from controller.spec import IMAGE_ENTRYPOINT

    if code == IMAGE_ENTRYPOINT:
        print(f"wrote {out}: fill in entrypoint.script (the script the image's ENTRYPOINT runs) and put that code "
              f"where the spec says, then `tfray validate {out}`", file=sys.stderr)
        return EXIT_OK
    print(f"wrote {out}: put the code ({code}) where the spec says, then `tfray validate {out}`", file=sys.stderr)
    return EXIT_OK


def cmd_import_tfjob(args) -> int:
    from controller.importers.tfjob import import_tfjob

    manifest, source = _read(args.manifest, "TFJob manifest")
    imported = import_tfjob(manifest, source, _fallback_name(args.manifest))
    return _finish(imported, source, "import-tfjob", args.output, args.force)


def cmd_import_vertex(args) -> int:
    from controller.importers.vertex import import_vertex

    manifest, source = _read(args.manifest, "CustomJob")
    imported = import_vertex(manifest, source, _fallback_name(args.manifest))
    return _finish(imported, source, "import-vertex", args.output, args.force)


def _add(sub, name: str, help_text: str, description: str, epilog: str, what: str, func) -> None:
    p = sub.add_parser(name, help=help_text, description=textwrap.fill(description, 100), epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help=f"{what} (YAML or JSON; - reads stdin)")
    p.add_argument("-o", "--output", metavar="SPEC.yaml", help="write the spec here (default: print it); relative "
                   "paths in it resolve against this file's folder")
    p.add_argument("--force", action="store_true", help="replace SPEC.yaml if it exists")
    p.set_defaults(func=func)


def add_commands(sub) -> None:
    _add(sub, "import-tfjob", "turn a Kubeflow TFJob manifest into a job spec (what did not carry over is listed)",
         "Write the job spec a Kubeflow TFJob (kubeflow.org/v1) becomes: roles, resources, entrypoint with its "
         "exact argv, env, time limit and budgets. What has no meaning here (image, volumes, node selectors, "
         "cleanPodPolicy, a role running another command) is listed at the top of the spec and on stderr.",
         TFJOB_EPILOG, "TFJob manifest", cmd_import_tfjob)
    _add(sub, "import-vertex", "turn a Vertex AI CustomJob into a job spec (what did not carry over is listed)",
         "Write the job spec a Vertex AI CustomJob becomes: worker pools 0-3 as chief, worker, ps and evaluator, "
         "machine types as CPUs, memory and GPUs, the container's or Python package's entrypoint with its exact "
         "argv, env, the output folder and time limit. What has no meaning here is listed at the top of the spec "
         "and on stderr.", VERTEX_EPILOG, "CustomJob", cmd_import_vertex)
