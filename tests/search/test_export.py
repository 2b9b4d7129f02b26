"""Why a trial ended, as exported to trials.csv."""

from __future__ import annotations

import pytest

from hpsearch.search.budget import BudgetConfig
from hpsearch.search.export import asha_rungs, stop_reason


@pytest.mark.parametrize(("max_epochs", "grace", "factor", "rungs"), [
    (20, 4, 3, {4, 12}), (3, 1, 3, {1, 3}), (9, 1, 3, {1, 3, 9}), (10, 2, 3, {2, 6}), (2, 4, 3, set()),
])
def test_asha_rungs_match_rays_milestones(max_epochs, grace, factor, rungs):
    budget = BudgetConfig(max_epochs=max_epochs, grace_period=grace, reduction_factor=factor)
    assert asha_rungs(budget) == rungs


def test_stop_reasons():
    asha = BudgetConfig(max_epochs=20, grace_period=4, reduction_factor=3, time_budget_s=60)
    assert stop_reason("completed", {"epoch": 4}, asha) == "asha"
    assert stop_reason("completed", {"epoch": 12}, asha) == "asha"
    assert stop_reason("completed", {"epoch": 7}, asha) == "time_budget"  # between rungs: ASHA never stops there
    assert stop_reason("completed", {"epoch": 20}, asha) == "max_epochs"
    assert stop_reason("completed", {"epoch": 3, "stopped_by_patience": True}, asha) == "patience"
    assert stop_reason("failed", {"epoch": 3}, asha) == "error"
    assert stop_reason("incomplete", {"epoch": 3}, asha) == "interrupted"
    fifo = BudgetConfig(max_epochs=20, grace_period=4, scheduler="fifo", time_budget_s=60)
    assert stop_reason("completed", {"epoch": 4}, fifo) == "time_budget"  # no scheduler stops trials
    still = BudgetConfig(max_epochs=20, grace_period=4, scheduler="fifo")
    assert stop_reason("completed", {"epoch": 4}, still) == "stopped"  # never "time_budget" without one


def test_stop_reasons_of_the_other_schedulers_and_of_deployment_bounds():
    for name in ("hyperband", "median"):
        budget = BudgetConfig(max_epochs=20, grace_period=4, scheduler=name)
        assert stop_reason("completed", {"epoch": 5}, budget) == name
        assert stop_reason("completed", {"epoch": 20}, budget) == "max_epochs"
    bounded = BudgetConfig(max_epochs=20, max_ms_per_image=1.0)
    assert stop_reason("completed", {"epoch": 1, "infeasible": True}, bounded) == "infeasible"


def test_feasibility_follows_every_bound():
    budget = BudgetConfig(max_ms_per_image=2.0, max_params=1e6)
    assert budget.limits == {"ms_per_image": 2.0, "parameters": 1e6}
    assert budget.within_limits({"ms_per_image": 1.5, "parameters": 5e5}) is True
    assert budget.within_limits({"ms_per_image": 2.5, "parameters": 5e5}) is False
    assert budget.within_limits({"ms_per_image": 1.5, "parameters": 2e6}) is False
    assert budget.within_limits({"ms_per_image": None, "parameters": 5e5}) is None  # not measured
    assert BudgetConfig().limits == {}
