"""The Python API: run a job from a notebook, a pipeline (Airflow, a Ray job) or a test, without the CLI.

    from controller import load_spec, run
    result = run("cluster_configs/jobs/digits_mwms.yaml")            # or a JobSpec, or a mapping
    result.state, result.latest_checkpoint, result.chief_metrics

``run`` is the one run sequence, and ``tfray run`` is ``run`` with a
terminal's hooks (:class:`RunHooks`): the spec and its ``faults`` are checked
(``SpecError``), the entrypoint is read (never run) and the storage path
tried, another driver of the job refuses it (``JobRunningError``), a job that
already succeeded is not trained again unless ``fresh`` (which moves the old
job folder aside), a local run is warned about what it exposes, and Ray is
started (or joined at ``address``) only then. It returns the ``JobResult``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from controller import settings
from controller.ray import runtime_env
from controller.ray.session import ClusterUnreachableError, check_reachable, init_ray, local_ray_environment  # noqa: F401
from controller.spec import (
    HOST_NETWORK_ENV,
    FaultSpec,
    JobSpec,
    SpecError,
    check_entrypoint,
    check_host_network,
    check_storage,
    exposure_warning,
    format_validation_error,
    load_spec,
    parse_spec,
)
from controller.store.lease import FileLease, JobRunningError, running_message

if TYPE_CHECKING:  # imported where a job runs: `tfray validate` goes through checked() only, and never needs them
    from controller.predict.summary import PredictResult
    from controller.ray.serving import Endpoint
    from controller.report.driver_log import DriverLog
    from controller.states.network import HostNetwork
    from controller.states.result import JobResult

log = logging.getLogger("tfray")


def search_path(spec_path: str | None) -> list[str]:
    """Where entrypoint modules are looked for: the working folder, then the spec's folder."""
    paths = [os.getcwd(), *([str(Path(spec_path).resolve().parent)] if spec_path else [])]
    return list(dict.fromkeys(paths))


def with_faults(spec: JobSpec, faults: list[str] | tuple = ()) -> JobSpec:
    """The spec with faults in the CLI's form (``worker-1:kill@step=50``) added, validated like the rest."""
    if not faults:
        return spec
    from pydantic import ValidationError

    try:
        parsed = [FaultSpec.parse(text).model_dump(mode="json") for text in faults]
    except ValidationError as err:
        raise SpecError(format_validation_error(err, "--fault")) from None
    except ValueError as err:
        raise SpecError(f"--fault: {err}") from None
    data = spec.model_dump(mode="json")
    data["faults"] = data["faults"] + parsed
    return parse_spec(data, source="job spec with --fault", base_dir=spec._base_dir)


def host_network(network: HostNetwork | None = None) -> HostNetwork | None:
    """The host network a run's network faults act on (``controller/states/network.py``): ``network`` when
    given, else the one ``TFRAY_HOST_NETWORK`` names as ``module:factory`` (called with no arguments, e.g.
    ``bench.netns:attached``), else None. SpecError naming the variable when it cannot be had."""
    target = os.environ.get(HOST_NETWORK_ENV) if network is None else None
    if not target:
        return network
    module, _, name = target.partition(":")
    try:
        import importlib

        return getattr(importlib.import_module(module), name)()
    except Exception as err:  # whatever the factory raises: said as bad input, with the variable named
        raise SpecError(f"{HOST_NETWORK_ENV}={target}: no host network from it ({type(err).__name__}: {err}); "
                        "it names module:factory, importable here") from None


def checked(spec_or_path: JobSpec | str | os.PathLike | dict, faults: list[str] | tuple = (),
            network: HostNetwork | None = None) -> tuple[JobSpec, list]:
    """The spec (read, with its faults), its entrypoint read and its storage tried, a host network there for
    its network faults (``network``, or :func:`host_network`'s); and the warnings.
    A bad ``TFRAY_<NAME>`` override of a setting is refused here too (``settings.SettingsError``)."""
    settings.check_env()
    if isinstance(spec_or_path, JobSpec):
        spec, path = spec_or_path, None
    elif isinstance(spec_or_path, dict):
        spec, path = parse_spec(spec_or_path), None
    else:
        spec, path = load_spec(spec_or_path), str(spec_or_path)
    spec = with_faults(spec, faults)
    runtime_env.for_ray(spec)  # its paths and what Ray would refuse, before anything starts
    warnings = check_entrypoint(spec, runtime_env.import_paths(spec) + search_path(path))
    check_storage(spec)
    if any(f.action.on_network for f in spec.faults):
        check_host_network(spec, host_network(network))
    return spec, warnings


def ready_to_run(spec: JobSpec, fresh: bool, spec_path: str = "JOB.yaml") -> tuple[str | None, list[str]]:
    """Before Ray starts: another driver refuses the run (JobRunningError). Returns why there is nothing to
    run (the job already succeeded), or None, and the warnings to show; ``fresh`` moves the old job aside."""
    from controller.machine.resume import already_succeeded, drift, move_aside

    holder = FileLease(spec.job_dir).holder()
    if holder is not None:
        raise JobRunningError(running_message(spec.name, holder, spec_path))
    if fresh:
        aside = move_aside(spec)
        return None, [f"job {spec.name} starts over; its old folder is {aside}"] if aside else []
    done = already_succeeded(spec, spec_path)
    if done is not None:
        return done, []
    changed = drift(spec)
    return None, [changed] if changed else []


class RunHooks:
    """What the caller of :func:`run` does at the sequence's turns; these defaults are the API's (the logger's
    warnings). ``tfray run`` prints instead, takes SIGTERM as Ctrl-C and ends with a summary
    (``controller/cli/terminal.py``). The sequence itself, every check and warning, is :func:`run`'s alone."""

    def warn(self, text: str) -> None:
        """Something to know before the job starts: the entrypoint, a changed spec, what a local run exposes."""
        log.warning("%s", text)

    def nothing_to_run(self, message: str) -> None:
        """The job already succeeded: nothing is trained and Ray does not start."""
        log.info("%s", message)

    def starting_ray(self) -> None:
        """Every check passed; Ray starts (or is joined) next."""

    def running(self, spec: JobSpec) -> None:
        """Ray is up; the controller runs the job next."""

    def ended(self, spec: JobSpec, result: JobResult) -> None:
        """The job ran to its end (not called when there was nothing to run)."""


def run(spec_or_path: JobSpec | str | os.PathLike | dict, *, address: str | None = None, faults: list | tuple = (),
        fresh: bool = False, on_progress: Callable | None = None,
        on_output: Callable[[str, list[str]], None] | None = None, num_cpus: float | None = None,
        dashboard: bool = False, hooks: RunHooks | None = None, driver_log: DriverLog | None = None,
        network: HostNetwork | None = None) -> JobResult:
    """Run a job to its end and return how it ended (see the module's docstring); ``num_cpus`` and
    ``dashboard`` are a new local Ray's (:func:`init_ray`); ``network`` is what the spec's network faults act
    on (:func:`host_network`). The ``tfray`` logger's records (at the level the
    caller's logging lets through) are kept in the attempt's ``driver.log``, with whatever the caller writes
    into ``driver_log`` (`tfray run`: everything it prints)."""
    from controller.report.driver_log import DriverLog

    hooks = hooks or RunHooks()
    driver_log = driver_log or DriverLog()
    with driver_log.keeping(log):
        path = None if isinstance(spec_or_path, (JobSpec, dict)) else str(spec_or_path)
        network = host_network(network)
        spec, warnings = checked(spec_or_path, faults, network)
        for text in warnings:
            hooks.warn(text)
        done, notes = ready_to_run(spec, fresh, path or "JOB.yaml")
        for text in notes:
            hooks.warn(text)
        if done is not None:
            hooks.nothing_to_run(done)
            return finished_result(spec, done)
        exposed = exposure_warning(spec, joining_cluster=bool(address or os.environ.get("RAY_ADDRESS")))
        if exposed:
            hooks.warn(exposed)
        hooks.starting_ray()
        init_ray(address, num_cpus, dashboard=dashboard)
        hooks.running(spec)
        result = run_job(spec, search_path(path), on_progress=on_progress, on_output=on_output,
                         on_attempt=lambda number: driver_log.open(spec.job_dir, number), network=network)
        hooks.ended(spec, result)
        return result


def run_job(spec: JobSpec, sys_path: list[str], on_progress: Callable | None = None,
            on_output: Callable[[str, list[str]], None] | None = None,
            on_attempt: Callable[[int], None] | None = None, network: HostNetwork | None = None) -> JobResult:
    """Run one checked job on the Ray this process is connected to (no resume checks); its JobResult.
    ``network``: what its network faults act on."""
    from controller.machine.controller import Controller
    from controller.ray.group import RayTaskGroup
    from controller.ray.prometheus import RayGauges

    controller = Controller(spec, RayTaskGroup(spec.name, runtime_env.for_ray(spec)), sys_path=sys_path,
                            on_progress=on_progress, on_output=on_output, on_attempt=on_attempt,
                            export_gauges=RayGauges(), network=network)
    return controller.run()


def predict(spec_or_path: JobSpec | str | os.PathLike | dict, input: str, output: str, *,
            address: str | None = None, num_cpus: float | None = None,
            on_progress: Callable[[int, int | None, float], None] | None = None, progress_bars: bool = False,
            **options) -> PredictResult:
    """Run the job's model over ``input`` into Parquet at ``output`` on Ray (``tfray predict``; docs/design.md
    §14); the keyword ``options`` are :class:`controller.predict.request.PredictOptions`' (``model``,
    ``checkpoint``, ``id_column``, ``labels``, ``concurrency``, ``overwrite``...). Everything is checked
    before Ray starts (SpecError); ``on_progress(rows written, rows in all or None, seconds)`` is called every
    few seconds. Returns the run's :class:`controller.predict.summary.PredictResult`."""
    from controller.predict.request import check_room, options_of, plan_predict

    spec, sys_path = _model_user(spec_or_path)
    request = plan_predict(spec, options_of(input, output, options), sys_path, runtime_env.for_ray(spec))
    from controller.ray.batch import run_predict

    joining = _joining(address)
    if not joining:
        check_room(request.settings, num_cpus or os.cpu_count() or 1, None)
    init_ray(address, num_cpus)
    return run_predict(request, on_progress=on_progress, progress_bars=progress_bars, fixed_size=not joining)


def serve(spec_or_path: JobSpec | str | os.PathLike | dict, *, address: str | None = None,
          num_cpus: float | None = None, on_wait: Callable[[float], None] | None = None, **options) -> Endpoint:
    """Serve the job's model on Ray Serve with TF Serving's REST API (``tfray serve``; docs/design.md §14); the
    keyword ``options`` are :class:`controller.predict.serving.ServeOptions`' (``model``, ``name``, ``port``,
    ``min_replicas``...). Everything is checked before Ray starts (SpecError). Returns once every replica
    has loaded the model (``on_wait(seconds)`` meanwhile): the :class:`controller.ray.serving.Endpoint`, whose
    ``stop()`` takes it down."""
    from controller.predict.serving import check_room, options_of, plan_serve

    spec, sys_path = _model_user(spec_or_path)
    request = plan_serve(spec, options_of(options), sys_path, runtime_env.for_ray(spec))
    from controller.ray.serving import Endpoint, start_serving

    if not _joining(address):
        check_room(request, num_cpus or os.cpu_count() or 1)
    init_ray(address, num_cpus)
    return Endpoint(url=start_serving(request, on_wait), request=request)


def _model_user(spec_or_path: JobSpec | str | os.PathLike | dict) -> tuple[JobSpec, list[str]]:
    """The spec of a command that uses the job's model (predict, serve), and the paths its code imports from."""
    settings.check_env()
    path = None if isinstance(spec_or_path, (JobSpec, dict)) else str(spec_or_path)
    spec = spec_or_path if isinstance(spec_or_path, JobSpec) else (
        parse_spec(spec_or_path) if isinstance(spec_or_path, dict) else load_spec(spec_or_path))
    return spec, runtime_env.import_paths(spec) + search_path(path)


def _joining(address: str | None) -> bool:
    """Whether Ray is a cluster's (it may grow) rather than a new local one: actors a local Ray cannot hold would
    wait forever. A Ray this process already holds may be a cluster's."""
    import ray  # only now: bad input is said without it

    return bool(address or os.environ.get("RAY_ADDRESS")) or ray.is_initialized()


def finished_result(spec: JobSpec, message: str) -> JobResult:
    """What a run of a job that already succeeded returns: nothing was trained."""
    from controller.states.result import JobResult
    from controller.states.state import JobState
    from controller.store.checkpoints import CheckpointManifest

    return JobResult(state=JobState.SUCCEEDED, message=message, job_dir=str(spec.job_dir), attempt=0,
                     latest_checkpoint=CheckpointManifest(spec.job_dir, keep=spec.checkpoint.keep).latest())


def __getattr__(name: str):
    """``controller.api.JobResult``, imported when asked for (see the imports above)."""
    if name == "JobResult":
        from controller.states.result import JobResult

        return JobResult
    if name == "PredictFailedError":
        from controller.predict.summary import PredictFailedError

        return PredictFailedError
    if name == "ServeFailedError":
        from controller.ray.serving import ServeFailedError

        return ServeFailedError
    raise AttributeError(f"module 'controller.api' has no attribute {name!r}")


# init_ray and the others are the API's names too: run() calls init_ray from here, where tests patch it.
__all__ = ["run", "run_job", "predict", "serve", "RunHooks", "load_spec", "JobResult", "JobSpec", "SpecError", "JobRunningError",
           "ClusterUnreachableError"]
