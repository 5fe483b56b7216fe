"""``settings.poll_until``, the driver's one polling wait: what it returns, how it waits, when it gives up; and
no wait in controller/ polls by hand (settings.py's docstring says every one goes through it)."""

import ast
from pathlib import Path

import pytest

from controller import settings
from controller.settings import WaitTimeout, poll_until

REPO = Path(__file__).resolve().parents[2]


class Time:
    """A clock that only the waits move."""

    def __init__(self):
        self.now, self.waits, self.rounds = 100.0, [], []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_it_returns_the_predicates_answer_and_asks_before_it_waits():
    t = Time()
    answers = iter([None, "", "found"])
    assert poll_until(lambda: next(answers), 10, 1, "x", wait=t.wait, clock=t.clock) == "found"
    assert t.waits == [1, 1]
    assert poll_until(lambda: 7, 10, 1, "x", wait=t.wait, clock=t.clock) == 7 and t.waits == [1, 1]


def test_the_last_wait_is_cut_to_the_bound_and_the_message_names_what_was_waited_for():
    t = Time()
    with pytest.raises(WaitTimeout, match=r"^the thing did not happen within 2.5s$"):
        poll_until(lambda: False, 2.5, 1, "the thing", wait=t.wait, clock=t.clock)
    assert t.waits == [1, 1, 0.5]


def test_on_round_runs_after_each_wait_that_did_not_end_it_while_time_is_left():
    t = Time()
    answers = iter([False, False, False, True])
    poll_until(lambda: next(answers), 10, 2, "x", wait=t.wait, clock=t.clock, on_round=t.rounds.append)
    assert t.rounds == [2, 4]  # never before the first wait, never after the answer
    t = Time()
    with pytest.raises(WaitTimeout):
        poll_until(lambda: False, 3, 2, "x", wait=t.wait, clock=t.clock, on_round=t.rounds.append)
    assert t.rounds == [2]  # none once the bound has passed


def test_no_bound_waits_for_the_answer_however_long_it_takes():
    t = Time()
    answers = iter([False] * 1000 + [True])
    assert poll_until(lambda: next(answers), None, 60, "x", wait=t.wait, clock=t.clock) is True
    assert len(t.waits) == 1000


def while_loops_that_wait(path: Path) -> list[int]:
    """Lines of ``while`` loops that sleep, ``ray.wait`` or read the monotonic clock in their body."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.While):
            calls = [n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
            called = {n.func.attr for n in calls}
            if called & {"sleep", "wait", "monotonic"}:
                found.append(node.lineno)
    return found


def test_no_wait_in_the_controller_polls_by_hand():
    loops = {str(p.relative_to(REPO)): while_loops_that_wait(p) for p in sorted((REPO / "controller").rglob("*.py"))
             if p != Path(settings.__file__)}
    assert not {p: lines for p, lines in loops.items() if lines}, "poll through controller.settings.poll_until"
