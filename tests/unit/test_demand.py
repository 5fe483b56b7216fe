"""Demand that can never be met is said at once: bundles against the node types of a cluster config, and the
autoscaler's report while a placement group waits."""

from pathlib import Path

import yaml

from controller.plan import demand
from controller.states.state import JobState
from controller.states.task_group import InfeasibleDemandError
from tests.unit import fakes

ROOT = Path(__file__).parents[2]
FAKE = yaml.safe_load((ROOT / "cluster_configs" / "fake_multinode.yaml").read_text())


def test_node_types_of_a_config_leave_out_types_that_never_start():
    types = demand.node_types(FAKE)
    assert [t.name for t in types] == ["ray.head.default", "cpu_spot", "cpu_on_demand"]
    assert types[1].resources["spot"] == 1000 and types[1].max_workers == 4 and types[0].max_workers is None
    config = {"available_node_types": {"h": {"resources": {}}, "never": {"max_workers": 0}}, "head_node_type": "h"}
    assert [t.name for t in demand.node_types(config)] == ["h"]


def test_a_resource_no_node_type_declares_never_fits_and_the_message_says_what_is_offered():
    asked = [{"CPU": 1, "tpu_node": 1}, {"CPU": 1, "spot": 1}]
    message = demand.never_fits_message(asked, "pack", demand.node_types(FAKE))
    assert message.startswith("no node type of this cluster can ever hold what the job asks for: CPU=1, tpu_node=1.")
    assert "cpu_spot: CPU=1, cpu_node=1000" in message and "spot=1000" in message
    assert "ray.head.default: CPU=0" in message
    assert demand.never_fits_message([{"CPU": 1, "spot": 1}] * 3, "pack", demand.node_types(FAKE)) is None


def test_a_resource_no_node_type_offers_is_named_with_the_node_types_and_a_gpu_type_says_what_to_do():
    message = demand.never_fits_message([{"CPU": 1, "GPU": 1, "accelerator_type:A100": 0.001}], "pack",
                                        demand.node_types(FAKE))
    assert "No node type offers accelerator_type:A100 (the node types: ray.head.default, cpu_spot, " \
           "cpu_on_demand)." in message
    assert "declare it in the resources of the node type with those GPUs" in message
    assert "No node type offers" not in demand.never_fits_message([{"CPU": 2, "spot": 1}], "pack",
                                                                   demand.node_types(FAKE))  # too much, not none


def test_an_on_premise_clusters_machines_say_what_they_offer_when_they_start():
    local = {"provider": {"type": "local"}, "head_node_type": "local.cluster.node",
             "available_node_types": {"local.cluster.node": {"resources": {}, "max_workers": 2}}}
    assert demand.never_fits_message([{"CPU": 1, "on_demand": 1, "accelerator_type:T4": 0.001}], "pack",
                                     demand.node_types(local)) is None


def test_too_much_of_a_declared_resource_never_fits_and_strict_pack_counts_the_whole_job():
    types = demand.node_types(FAKE)
    assert demand.never_fits_message([{"CPU": 2, "spot": 1}], "pack", types)
    assert demand.never_fits_message([{"CPU": 1, "spot": 1}] * 2, "strict_pack", types).count("all on one node") == 1
    assert demand.never_fits_message([{"CPU": 1, "spot": 1}] * 2, "spread", types) is None


def test_a_cloud_type_that_leaves_cpu_gpu_and_memory_to_its_instance_type_is_taken_to_have_them():
    aws = yaml.safe_load((ROOT / "cluster_configs" / "aws.yaml").read_text())
    types = demand.node_types(aws)
    assert demand.never_fits_message([{"CPU": 4, "memory": 8 * 2**30, "spot": 1}], "pack", types) is None
    assert "tpu" in demand.never_fits_message([{"CPU": 1, "tpu": 1}], "pack", types)


def test_without_an_autoscaler_only_the_nodes_there_count():
    nodes = [{"CPU": 2.0, "memory": 4e9, "node:127.0.0.1": 1.0}]
    assert demand.static_unfit_message([{"CPU": 1}], "pack", nodes) is None
    message = demand.static_unfit_message([{"CPU": 1, "GPU": 1}], "pack", nodes)
    assert "could hold CPU=1, GPU=1" in message and "Waiting for a node that does to join" in message


def test_the_autoscalers_report_in_one_line():
    status = {"autoscaler_report": {
        "pending_launches": {"cpu_spot": 2, "gpu_spot": 0},
        "pending_nodes": [["10.0.0.5", "cpu_spot", "setting-up"]],
        "failed_nodes": [["10.0.0.6", "gpu_spot"]],
        "node_availability_summary": {"node_availabilities": {
            "cpu_spot": {"is_available": True, "unavailable_node_information": None},
            "gpu_spot": {"is_available": False, "unavailable_node_information": {
                "category": "QuotaExceeded", "description": "GPUS_ALL_REGIONS quota 0"}}}}}}
    assert demand.describe_wait(status) == ("launching 2 cpu_spot; setting up cpu_spot (setting-up); failed to start "
                                            "gpu_spot; cannot launch gpu_spot: QuotaExceeded GPUS_ALL_REGIONS quota 0")
    assert demand.describe_wait({"autoscaler_report": {"pending_launches": {}}}) is None
    assert demand.describe_wait(None) is None


def test_infeasible_demand_fails_the_job_at_once_without_trying_smaller_sizes(tmp_path):
    spec = fakes.make_spec(tmp_path, elastic={"min_workers": 1, "capacity_wait_s": 5})
    group = fakes.FakeTaskGroup(provision_error=InfeasibleDemandError("no node type offers on_demand=1"))
    controller = fakes.controller_for(spec, group)
    assert fakes.states(controller, 2) == [JobState.PROVISIONING, JobState.FAILED]
    assert len(group.provisions) == 1 and "on_demand" in controller.message and group.shutdowns == 1


class PlacementGroupWaits:
    """``ray.wait`` on a placement group's ready ref: ready once ``after`` blocking waits have passed."""

    def __init__(self, after: int):
        self.after, self.blocking = after, []

    def __call__(self, refs, timeout):
        if timeout:
            self.blocking.append(timeout)
        return (refs, []) if len(self.blocking) >= self.after else ([], refs)


def test_a_waiting_placement_group_says_what_the_autoscaler_does_between_its_waits(monkeypatch, caplog):
    import ray

    from controller import settings
    from controller.ray import demand as ray_demand

    status = {"autoscaler_report": {"pending_launches": {"cpu_spot": 2}}}
    monkeypatch.setattr(ray_demand, "autoscaler_status", lambda: status)
    monkeypatch.setattr(settings, "DEMAND_CHECK_S", 0.01)
    waits = PlacementGroupWaits(after=3)
    monkeypatch.setattr(ray, "wait", waits)
    caplog.set_level("WARNING", logger="tfray")
    assert ray_demand.wait_for("ref", timeout_s=30)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "the autoscaler is launching 2 cpu_spot" in said[0]  # once, while it is unchanged
    assert waits.blocking == [0.01] * 3
    monkeypatch.setattr(ray, "wait", PlacementGroupWaits(after=10**9))
    assert not ray_demand.wait_for("ref", timeout_s=0.05)
