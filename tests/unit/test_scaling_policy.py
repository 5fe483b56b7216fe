"""The scaling policy: which sizes to ask for and when to look for room to grow. Pure."""

import pytest

from controller.machine.scaling_policy import ScalingPolicy
from controller.spec import Elastic
from controller.states.state import Size


@pytest.mark.parametrize("elastic, capacity_lost, sizes", [
    (None, False, [Size(3, 120)]),
    (None, True, [Size(3, 120)]),  # a fixed-size job always asks for its size
    (Elastic(min_workers=1, capacity_wait_s=42), False, [Size(3, 120), Size(2, 5), Size(1, 5)]),
    (Elastic(min_workers=1, capacity_wait_s=42), True, [Size(3, 42), Size(2, 5), Size(1, 5)]),
    (Elastic(min_workers=3), True, [Size(3, 60)]),
])
def test_sizes(elastic, capacity_lost, sizes):
    assert list(ScalingPolicy(3, elastic, 120, 5).sizes(capacity_lost)) == sizes


@pytest.mark.parametrize("workers, checkpoint, look", [(1, True, True), (1, False, False), (3, True, False)])
def test_room_is_looked_for_only_when_small_and_at_a_checkpoint(workers, checkpoint, look):
    assert ScalingPolicy(3, Elastic(min_workers=1), 120, 5).should_look_for_room(workers, checkpoint) is look


def test_the_failure_message_names_the_minimum():
    assert ScalingPolicy(3, None, 120, 5).none_fit("no room") == "no room"
    assert "elastic.min_workers=2" in ScalingPolicy(3, Elastic(min_workers=2), 120, 5).none_fit("no room")
