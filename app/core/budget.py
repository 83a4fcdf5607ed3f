"""The probe budget: when to probe and whether to include the itemized matrix, from measured costs.

What this is: `ProbeBudget` answers, once per training step, "probe now?" with a `Plan` (probe,
itemized or not) or None. The caller reports what training and each probe really cost
(`spent_training`, `spent_probing`), and the budget decides from those measurements:

- `fraction=None`: today's fixed rule, a probe at `first` and at every multiple of `every`
  (`every` None or 0: at `first` only).
- `fraction=f` (0 < f <= 0.5): a probe when the probing done so far plus the expected cost of the
  next probe stays within f x the training time so far, and f x the training since the last
  probe pays for it (so probes come evenly spaced, never in a burst of catching up); always at
  `first`. `every`, if given, is then the smallest gap between two probes.
- `itemize=True` / `False`: every probe itemized / none. `"auto"`: the first probe is itemized,
  a later one only while the itemized probes' time, with this one, stays within ITEMIZE_SHARE of
  training time. With a fraction too, the itemized probes get their own share, the smaller of
  ITEMIZE_SHARE and half the fraction, and the plain probes the rest: the two together stay
  within the fraction, and a costly itemized probe never holds back the plain ones.

With `spectra_every=k` (app.core.jacobians.spectra_every: how costly a net's W_hh spectra are),
a Plan's `spectra` is true in every k-th probe: with the fixed rule at the steps whose
(step // every) is a multiple of k, so a run and its fork agree; else every k-th probe planned;
always at `first` and a forced probe (the run's endpoints).

The expected cost of a probe is the median of the last COST_WINDOW measured probes of its kind
(itemized or plain). A kind not measured yet is expected to cost nothing, so it is probed as
soon as it may be, once, to learn its cost: with itemize="auto" the first probe is itemized, and
the first plain one follows at the next step (an itemized probe can cost many plain ones, and
taking its cost for theirs would leave the plain probes waiting for a long time).

What this is not: a clock. It never reads the time itself, so it is deterministic under test:
the engine and `gatescope.watch` measure and report. Both use it, so built-in and attached runs
follow one rule.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Literal

ITEMIZE_SHARE = 0.01  # the itemized probes' share of training time, with itemize="auto"
COST_WINDOW = 5  # probes of one kind whose median is the expected cost of the next
MAX_FRACTION = 0.5


@dataclass(frozen=True)
class Plan:
    """Probe at this step; `itemize`: include the itemized matrix (dl_s/dh_t for every s);
    `spectra`: include the W_hh spectra."""

    itemize: bool
    spectra: bool = True


class ProbeBudget:
    """When to probe and whether to include the itemized matrix, from measured costs."""

    def __init__(
        self,
        *,
        every: int | None,
        fraction: float | None,
        itemize: bool | Literal["auto"],
        first: int,
        spectra_every: int = 1,
    ) -> None:
        if every is not None and every < 0:
            raise ValueError(f"every must be a whole number >= 0 (0 or None: no fixed interval), not {every}")
        if fraction is not None and not 0 < fraction <= MAX_FRACTION:
            raise ValueError(
                f"probe_budget must be in (0, {MAX_FRACTION}] (a share of training time), not {fraction}"
            )
        if itemize not in (True, False, "auto"):
            raise ValueError(f'itemize must be True, False or "auto", not {itemize!r}')
        self.every = every or None
        self.fraction = fraction
        self.itemize = itemize
        self.first = first
        self.spectra_every = max(1, spectra_every)
        self._planned_count = 0
        self._training = 0.0
        self._probing = 0.0
        self._itemizing = 0.0
        self._costs: dict[bool, deque[float]] = {
            True: deque(maxlen=COST_WINDOW),
            False: deque(maxlen=COST_WINDOW),
        }
        self._last: int | None = None
        self._mark = {True: 0.0, False: 0.0}

    def plan(self, step: int, *, force: bool = False) -> Plan | None:
        """Probe at `step`? Call once per step; a Plan means the caller probes now (and reports it).

        `force`: probe whatever the schedule says (the engine's last step); only itemization is
        still decided by the budget.
        """
        if step == self.first or self._last is None:
            return self._planned(step, self.itemize is not False, force=True)
        if self.fraction is None:
            due = force or (self.every is not None and step % self.every == 0)
            return self._planned(step, self._fits(True), force) if due else None
        if not force and self.every is not None and step - self._last < self.every:
            return None
        if self.itemize != "auto":
            return self._planned(step, self.itemize, force) if force or self._fits(self.itemize) else None
        if self._fits(True):
            return self._planned(step, True, force)
        return self._planned(step, False, force) if force or self._fits(False) else None

    def spent_training(self, seconds: float) -> None:
        """Training took `seconds` more (a step's wall time, probes excluded)."""
        self._training += max(seconds, 0.0)

    def spent_probing(self, seconds: float, itemized: bool) -> None:
        """The probe just planned took `seconds`; `itemized`: it included the itemized matrix."""
        seconds = max(seconds, 0.0)
        self._probing += seconds
        if itemized:
            self._itemizing += seconds
        self._costs[itemized].append(seconds)

    @property
    def share(self) -> float:
        """Probe seconds / training seconds so far (0 before any training)."""
        return self._probing / self._training if self._training > 0 else 0.0

    # -- the rules --------------------------------------------------------------------------

    def _planned(self, step: int, itemize: bool, force: bool = False) -> Plan:
        self._last = step
        self._mark[False] = self._training  # training time at the last probe (of any kind) ...
        if itemize:
            self._mark[True] = self._training  # ... and at the last itemized one
        k, count = self.spectra_every, self._planned_count
        self._planned_count += 1
        if self.fraction is None and self.every is not None:
            spectra = (step // self.every) % k == 0
        else:
            spectra = count % k == 0
        return Plan(itemize=itemize, spectra=force or spectra)

    def _fits(self, itemized: bool) -> bool:
        """The next probe of this kind fits its share of the training time, so far and since the last.

        With itemize="auto" the itemized probes have their own share and the plain ones the rest
        of the fraction; otherwise every probe is of one kind and has the whole fraction. "Since
        the last" (the training since the last probe of that kind pays for this one) keeps probes
        evenly spaced: budget left unused early on is not spent in a burst later.
        """
        if self.itemize != "auto" and self.fraction is None:
            return self.itemize
        if self.itemize != "auto":
            assert self.fraction is not None
            share, spent, since = self.fraction, self._probing, self._training - self._mark[False]
        elif itemized:
            share, spent, since = self._itemize_share, self._itemizing, self._training - self._mark[True]
        else:
            assert self.fraction is not None
            share = self.fraction - self._itemize_share
            spent, since = self._probing - self._itemizing, self._training - self._mark[False]
        cost = self._expected(itemized)
        return spent + cost <= share * self._training and cost <= share * since

    @property
    def _itemize_share(self) -> float:
        """With itemize="auto": the itemized probes' share of training time."""
        return ITEMIZE_SHARE if self.fraction is None else min(ITEMIZE_SHARE, self.fraction / 2)

    def _expected(self, itemized: bool) -> float:
        costs = self._costs[itemized]
        return statistics.median(costs) if costs else 0.0
