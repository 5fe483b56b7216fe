"""The fault injector's pure paths (the signal paths kill processes and are run by the integration tests)."""

import pytest

from workers.faults import FaultInjector, InjectedFault


def test_a_raise_fault_fires_once_at_its_step():
    injector = FaultInjector("worker-1", [{"action": "raise", "at_step": 5}])
    injector.on_step(4)
    with pytest.raises(InjectedFault, match="worker-1"):
        injector.on_step(5)
    injector.on_step(6)  # fired already


def test_a_timed_raise_fires_at_the_next_report():
    injector = FaultInjector("chief-0", [{"action": "raise", "after_s": 0}])
    injector._fire(injector.faults[0])  # what the timer does
    with pytest.raises(InjectedFault):
        injector.on_step(1)
