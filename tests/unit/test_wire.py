"""The wire protocol: task names formatted and parsed in one place; the roles agree with the spec's."""

import pytest

from controller.spec import ROLE_ORDER
from protocol.wire import ROLES, FailureCause, TaskEnd, TaskKey


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
