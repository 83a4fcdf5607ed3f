"""kept_steps: which probe steps stay within a budget (the storage budget, the report, the widget)."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from app.core.thinning import kept_steps

steps_and_sizes = st.dictionaries(st.integers(0, 10_000), st.integers(1, 1000), min_size=1, max_size=200)


def test_everything_stays_within_the_budget() -> None:
    sizes = {s: 10 for s in range(0, 100, 10)}
    assert kept_steps(sizes, 100) == set(sizes)
    assert kept_steps(sizes, 10_000, pinned={7}) == set(sizes)  # a pinned step not stored is no step


def test_over_the_budget_it_keeps_endpoints_pins_and_an_even_spread() -> None:
    sizes = dict.fromkeys(range(101), 10)  # a probe every step, 101 of them
    kept = kept_steps(sizes, 200, pinned={37})
    assert {0, 100, 37} <= kept and sum(sizes[s] for s in kept) <= 200
    spread = sorted(kept - {37, 100})
    gaps = {b - a for a, b in pairwise(spread)}
    assert gaps == {8}  # one step in each window of 8 training steps: 0, 8, ..., 96
    assert len(kept) == 15  # 13 of the stride, the pin and the latest: 150 bytes (stride 4: 270)


def test_when_even_the_steps_always_kept_do_not_fit_only_they_stay() -> None:
    assert kept_steps({0: 100, 5: 100, 9: 100}, 50, pinned={5}) == {0, 5, 9}
    assert kept_steps({3: 100}, 1) == {3}


@given(steps_and_sizes, st.integers(0, 100_000), st.sets(st.integers(0, 10_000), max_size=5))
def test_kept_steps_fit_keep_what_must_stay_and_thin_again_to_the_same(
    sizes: dict[int, int], budget: int, pinned: set[int]
) -> None:
    kept = kept_steps(sizes, budget, pinned)
    must = {min(sizes), max(sizes)} | (pinned & set(sizes))
    assert must <= kept <= set(sizes)
    assert sum(sizes[s] for s in kept) <= budget or kept == must
    again = {s: sizes[s] for s in kept}
    assert kept_steps(again, budget, pinned) == kept  # deterministic: what was kept stays kept


@given(steps_and_sizes, st.integers(0, 100_000))
def test_thinning_is_nested_as_frames_arrive(sizes: dict[int, int], budget: int) -> None:
    """Storing frames one by one and thinning after each keeps a subset of thinning at the end: a
    step once dropped never comes back, and the latest is always there."""
    stored: dict[int, int] = {}
    for step in sorted(sizes):
        stored[step] = sizes[step]
        stored = {s: stored[s] for s in kept_steps(stored, budget)}
        assert step in stored and min(sizes) in stored
    assert sum(stored.values()) <= budget or set(stored) == {min(sizes), max(sizes)}
