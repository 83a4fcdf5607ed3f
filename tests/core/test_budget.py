"""The probe budget: the fixed rule, the fraction rule, itemization, from injected costs (no clock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import pytest

from app.core.budget import ITEMIZE_SHARE, Plan, ProbeBudget


@dataclass
class Costs:
    train: float = 1.0  # seconds per training step
    plain: float = 0.2  # seconds per probe without the itemized matrix
    itemized: float = 2.0  # seconds per itemized probe


@dataclass
class Trace:
    probes: dict[int, bool] = field(default_factory=dict)  # step -> itemized
    shares: list[float] = field(default_factory=list)  # the share after each step

    def gaps(self) -> list[int]:
        steps = sorted(self.probes)
        return [b - a for a, b in pairwise(steps)]


def run(budget: ProbeBudget, steps: range, costs: Costs | list[Costs]) -> Trace:
    """Drive the budget as a training loop would: probe when planned, report what each part cost."""
    trace = Trace()
    for step in steps:
        c = costs if isinstance(costs, Costs) else costs[step - steps.start]
        plan = budget.plan(step)
        if plan is not None:
            trace.probes[step] = plan.itemize
            budget.spent_probing(c.itemized if plan.itemize else c.plain, plan.itemize)
        budget.spent_training(c.train)
        trace.shares.append(budget.share)
    return trace


def test_fixed_rule_probes_at_first_and_multiples_of_every() -> None:
    watchlike = run(ProbeBudget(every=10, fraction=None, itemize=False, first=1), range(1, 51), Costs())
    assert watchlike.probes == {1: False, 10: False, 20: False, 30: False, 40: False, 50: False}
    enginelike = run(ProbeBudget(every=3, fraction=None, itemize=True, first=0), range(0, 8), Costs())
    assert enginelike.probes == {0: True, 3: True, 6: True}


@pytest.mark.parametrize("every", [None, 0])
def test_no_interval_probes_only_at_first(every: int | None) -> None:
    trace = run(ProbeBudget(every=every, fraction=None, itemize=True, first=0), range(0, 30), Costs())
    assert trace.probes == {0: True}


def test_force_probes_off_schedule_and_the_budget_still_decides_itemization() -> None:
    budget = ProbeBudget(every=100, fraction=None, itemize="auto", first=0)
    assert budget.plan(0) == Plan(itemize=True)
    budget.spent_probing(2.0, itemized=True)
    budget.spent_training(10.0)  # the itemized share is 2.0 / 10 = 20 %, over ITEMIZE_SHARE
    assert budget.plan(7) is None
    assert budget.plan(7, force=True) == Plan(itemize=False)


def test_auto_itemizes_the_first_probe_then_only_within_the_itemize_share() -> None:
    budget = ProbeBudget(every=10, fraction=None, itemize="auto", first=1)
    trace = run(budget, range(1, 2001), Costs(train=1.0, plain=0.2, itemized=2.0))
    assert trace.probes[1] is True
    assert set(trace.probes) == {1} | set(range(10, 2001, 10))  # the schedule is unchanged
    itemized = [s for s, i in trace.probes.items() if i and s > 1]
    # n itemized probes need 100 x 2 n s of training before the last: 9 (the first included) in 2000 s
    assert len(itemized) == 8
    assert (len(itemized) + 1) * 2.0 <= ITEMIZE_SHARE * 2000
    # spread over the run, not bunched at its start
    assert itemized[0] == 410 and itemized[-1] == 1810


def test_a_fraction_keeps_probing_within_it_and_close_to_it() -> None:
    budget = ProbeBudget(every=None, fraction=0.05, itemize=False, first=0)
    trace = run(budget, range(0, 1000), Costs(train=1.0, plain=0.2))
    assert trace.probes[0] is False
    # the first probe is always made; once training has paid for it the share never exceeds 5 %
    assert all(share <= 0.05 + 1e-12 for share in trace.shares[4:])
    assert budget.share == pytest.approx(0.05, abs=0.2 / 1000)
    gaps = trace.gaps()
    assert gaps[0] == 8  # the first probe is paid for first: 0.2 + 0.2 s within 5 % of 8 s
    assert set(gaps[1:]) <= {3, 4, 5} and sum(gaps[1:]) / len(gaps[1:]) == pytest.approx(4, abs=0.02)


def test_the_expected_cost_follows_the_measured_cost() -> None:
    cheap, dear = Costs(train=1.0, plain=0.1), Costs(train=1.0, plain=0.5)
    budget = ProbeBudget(every=None, fraction=0.1, itemize=False, first=0)
    trace = run(budget, range(0, 400), [cheap] * 200 + [dear] * 200)
    early = [g for s, g in zip(sorted(trace.probes)[1:], trace.gaps(), strict=True) if 10 < s < 200]
    late = [g for s, g in zip(sorted(trace.probes)[1:], trace.gaps(), strict=True) if s > 260]
    assert sum(early) / len(early) == pytest.approx(1, abs=0.02)  # 0.1 s of probing per 1 s
    assert sum(late) / len(late) == pytest.approx(5, abs=0.1)  # 0.5 s of probing per 5 s
    assert budget.share <= 0.1


def test_with_a_fraction_every_is_the_smallest_gap() -> None:
    trace = run(ProbeBudget(every=7, fraction=0.5, itemize=False, first=0), range(0, 100), Costs(plain=0.01))
    assert set(trace.gaps()) == {7}


def test_auto_with_a_fraction_splits_it_and_itemized_probes_never_hold_back_plain_ones() -> None:
    budget = ProbeBudget(every=None, fraction=0.05, itemize="auto", first=0)
    trace = run(budget, range(0, 3000), Costs(train=1.0, plain=0.2, itemized=5.0))
    itemized = [s for s, i in trace.probes.items() if i]
    assert itemized[0] == 0 and len(itemized) >= 4  # 1 % of 3000 s = 30 s: 6 of 5 s
    assert len(itemized) * 5.0 <= ITEMIZE_SHARE * 3000 + 1e-9
    assert budget.share <= 0.05 and budget.share == pytest.approx(0.05, abs=0.01)
    # the plain probes keep their pace: 0.2 s on 4 % of training, every 5 s (6 on float rounding)
    assert max(trace.gaps()[5:]) <= 6


def test_itemize_true_with_a_fraction_pays_for_itemized_probes() -> None:
    budget = ProbeBudget(every=None, fraction=0.05, itemize=True, first=0)
    trace = run(budget, range(0, 1000), Costs(train=1.0, itemized=2.0))
    gaps = trace.gaps()
    assert all(trace.probes.values()) and gaps[0] == 80 and set(gaps[1:]) <= {39, 40, 41}
    assert budget.share <= 0.05


def test_a_small_fraction_halves_the_itemize_share() -> None:
    budget = ProbeBudget(every=None, fraction=0.01, itemize="auto", first=0)
    trace = run(budget, range(0, 10000), Costs(train=1.0, plain=0.2, itemized=5.0))
    itemized = [s for s, i in trace.probes.items() if i]
    assert len(itemized) * 5.0 <= 0.005 * 10000 + 1e-9 and len(itemized) >= 9
    assert budget.share <= 0.01


def test_share_is_zero_before_training() -> None:
    budget = ProbeBudget(every=10, fraction=None, itemize=True, first=0)
    budget.spent_probing(1.0, itemized=True)
    assert budget.share == 0.0
    budget.spent_training(4.0)
    assert budget.share == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": -1, "fraction": None, "itemize": True}, "every must be"),
        ({"every": 10, "fraction": 0.0, "itemize": True}, "probe_budget must be in"),
        ({"every": 10, "fraction": 0.6, "itemize": True}, "probe_budget must be in"),
        ({"every": 10, "fraction": float("nan"), "itemize": True}, "probe_budget must be in"),
        ({"every": 10, "fraction": None, "itemize": "sometimes"}, "itemize must be"),
    ],
)
def test_bad_arguments_are_refused_with_a_sentence(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ProbeBudget(first=0, **kwargs)  # type: ignore[arg-type]


def test_budget_left_unused_is_not_spent_in_a_burst() -> None:
    # probes get 10 x cheaper at step 300; the expected cost (a median) follows a few probes late,
    # so the budget runs under meanwhile; afterwards probes keep an even pace, no catching up
    dear, cheap = Costs(train=1.0, plain=2.0), Costs(train=1.0, plain=0.2)
    budget = ProbeBudget(every=None, fraction=0.05, itemize=False, first=0)
    trace = run(budget, range(0, 1000), [dear] * 300 + [cheap] * 700)
    late = [g for s, g in zip(sorted(trace.probes)[1:], trace.gaps(), strict=True) if s > 300]
    assert min(late) >= 3 and sorted(late)[len(late) // 2] == 4  # 0.2 s on 5 % of 1 s steps
    assert budget.share < 0.05


def test_a_kind_not_measured_yet_is_probed_once_to_learn_its_cost() -> None:
    budget = ProbeBudget(every=None, fraction=0.05, itemize="auto", first=0)
    trace = run(budget, range(0, 200), Costs(train=1.0, plain=0.2, itemized=20.0))
    assert list(trace.probes.items())[:2] == [(0, True), (1, False)]
    assert sorted(trace.gaps()[2:])[len(trace.gaps()) // 2] == 5  # then 0.2 s on 4 % of 1 s steps


def spectra_steps(budget: ProbeBudget, steps: range, plain: float = 0.1) -> tuple[list[int], list[int]]:
    """The probe steps, and those whose Plan carries the W_hh spectra (the last step forced)."""
    probes, carrying = [], []
    for step in steps:
        plan = budget.plan(step, force=step == steps[-1])
        if plan is not None:
            budget.spent_probing(plain, plan.itemize)
            probes.append(step)
            if plan.spectra:
                carrying.append(step)
        budget.spent_training(1.0)
    return probes, carrying


def test_spectra_come_with_every_kth_probe_by_step_and_at_the_ends() -> None:
    every_probe = ProbeBudget(every=10, fraction=None, itemize=False, first=0)
    assert spectra_steps(every_probe, range(0, 101))[1] == list(range(0, 101, 10))
    engine = ProbeBudget(every=10, fraction=None, itemize=False, first=0, spectra_every=4)
    assert spectra_steps(engine, range(0, 101))[1] == [0, 40, 80, 100]  # 100: the forced last probe
    # a fork's budget starting at step 30 agrees with its parent's from there on (by step, not count)
    fork = ProbeBudget(every=10, fraction=None, itemize=False, first=30, spectra_every=4)
    assert spectra_steps(fork, range(30, 101))[1] == [30, 40, 80, 100]
    watch = ProbeBudget(every=10, fraction=None, itemize=False, first=1, spectra_every=3)
    assert spectra_steps(watch, range(1, 62))[1] == [1, 30, 60, 61]


def test_with_a_fraction_spectra_come_with_every_kth_probe_planned() -> None:
    budget = ProbeBudget(every=None, fraction=0.5, itemize=False, first=0, spectra_every=2)
    probes, carrying = spectra_steps(budget, range(0, 40), plain=1.0)
    assert len(probes) > 4 and probes[-1] == 39  # the last one forced
    assert carrying == [p for i, p in enumerate(probes) if i % 2 == 0 or p == 39]
