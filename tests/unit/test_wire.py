"""The wire protocol: task names formatted and parsed in one place; the roles agree with the spec's; the
worker side imports nothing of the controller but the wire protocol and the file layout."""

import ast
from pathlib import Path

import pytest

from controller.spec import ROLE_ORDER
from controller.wire import ROLES, FailureCause, TaskEnd, TaskKey

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, key", [("worker-1", TaskKey("worker", 1)), ("chief-0", TaskKey("chief", 0)),
                                       ("evaluator-0", TaskKey("evaluator", 0)), ("ps-12", TaskKey("ps", 12))])
def test_a_task_name_round_trips(name, key):
    assert TaskKey.parse(name) == key and str(key) == name


@pytest.mark.parametrize("name", ["worker", "worker-", "worker-x", "boss-1", "worker-1-2", "-1", ""])
def test_a_bad_task_name_says_what_a_good_one_looks_like(name):
    with pytest.raises(ValueError, match="role-index, e.g. worker-1"):
        TaskKey.parse(name)


def test_the_roles_are_the_specs_roles_in_plan_order():
    assert tuple(r.value for r in ROLE_ORDER) == ROLES


def test_an_end_says_how_it_ended():
    assert TaskEnd.done(TaskKey("chief", 0), 3).finished
    failed = TaskEnd.failed(TaskKey("worker", 1), FailureCause.HUNG, "silent")
    assert not failed.finished and failed.cause is FailureCause.HUNG


def test_workers_import_only_the_wire_protocol_and_the_layout_from_the_controller():
    allowed = {"controller", "controller.wire", "controller.layout"}
    for path in (REPO / "workers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "controller":
                names = {f"{node.module}.{a.name}" if node.module == "controller" else node.module
                         for a in node.names}
                assert names <= allowed, f"{path.name} imports {names - allowed}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("controller") or alias.name in allowed, (path.name, alias.name)
