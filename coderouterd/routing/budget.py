"""Monthly spend per provider against its budget (pure).

Totals are keyed by UTC month, so a new month starts from zero by itself:
nothing has to be reset at midnight, and the totals of a past month stay
readable. The book is loaded from the database at start-up and updated in
memory as requests finish; the database keeps the durable copy.

A threshold (a percent of the budget) is passed once the month's spend
reaches that share of it; a budget of 0 is passed by any spend. Spend
crosses a threshold when it passes it (`add`), and so does a new budget
under the spend already made (`rebudgeted`, at a reload).

The book also holds the thresholds audited for each provider, month and
budget (`audit`), loaded from the audit log at start-up: a threshold of one
budget crossed again in a month (a budget raised, then put back by a reload
or a restart) is audited once, so an alert on it fires once; the thresholds
of another budget (a raised one the spend then passes) are its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from coderouterd.config.model import ProviderConfig

THRESHOLDS = (80, 100)
SKIP_BUDGET = "budget_exceeded"
# Months whose audited thresholds are kept: this one's and the last one's,
# which a request that arrived before midnight is still spent in.
_MONTHS_AUDITED = 2
# Costs are float sums (ten requests at $0.10 add up to 0.9999999999999999):
# a mark is reached within a billionth of a dollar, far below any price's
# resolution and far above a sum's rounding error.
_SLACK = 1e-9


def budget_of(provider: ProviderConfig) -> float | None:
    return provider.cost.monthly_budget_usd if provider.cost else None


def passed(spent: float, budget: float | None) -> list[int]:
    """The thresholds `spent` has passed under `budget` (None: no budget)."""
    if budget is None or spent <= 0:
        return []
    return [t for t in THRESHOLDS if _reaches(spent, budget * t / 100)]


class BudgetBook:
    def __init__(
        self,
        totals: Mapping[tuple[str, str], float] | None = None,
        audited: Iterable[tuple[str, str, float, int]] = (),
    ) -> None:
        """`audited`: (provider, month, budget, percent) of each threshold
        the audit log holds as crossed."""
        self._spent: dict[tuple[str, str], float] = dict(totals or {})
        # Month -> (provider, budget, percent) of each threshold audited in it.
        self._audited: dict[str, set[tuple[str, float, int]]] = {}
        for provider, month, budget, percent in audited:
            self.audit(provider, month, budget, [percent])

    def spent(self, provider: str, month: str) -> float:
        return self._spent.get((provider, month), 0.0)

    def add(self, provider: str, month: str, usd: float, budget: float | None) -> list[int]:
        """Record spend; return the thresholds (percent of budget) this crossed.
        A negative amount is refused: spend never lowers the month's total."""
        if usd < 0:
            raise ValueError(f"negative spend {usd!r} for {provider!r}")
        before = self.spent(provider, month)
        after = before + usd
        self._spent[(provider, month)] = after
        return _newly(passed(after, budget), passed(before, budget))

    def rebudgeted(
        self, provider: str, month: str, old: float | None, new: float | None
    ) -> list[int]:
        """The thresholds the month's spend passes under the `new` budget and
        did not under the `old` one (None: none)."""
        spent = self.spent(provider, month)
        return _newly(passed(spent, new), passed(spent, old))

    def audit(self, provider: str, month: str, budget: float, crossed: Iterable[int]) -> list[int]:
        """Of the thresholds of `budget` `crossed`, those not audited yet in
        the provider's month: they count as audited from now on."""
        percents = list(crossed)
        if not percents:
            return []
        done = self._audited.setdefault(month, set())
        fresh = [t for t in percents if (provider, budget, t) not in done]
        done.update((provider, budget, t) for t in fresh)
        for old in sorted(self._audited)[:-_MONTHS_AUDITED]:
            del self._audited[old]
        return fresh

    def exhausted(self, provider: ProviderConfig, month: str) -> bool:
        budget = budget_of(provider)
        # Spending exactly the budget exhausts it: the next call would go over.
        return budget is not None and _reaches(self.spent(provider.name, month), budget)

    def blocked(self, providers: Iterable[ProviderConfig], month: str) -> dict[str, str]:
        """Providers the plan must skip this month, with the reason."""
        return {p.name: SKIP_BUDGET for p in providers if self.exhausted(p, month)}


def _reaches(spent: float, mark: float) -> bool:
    return spent >= mark - _SLACK


def _newly(now: list[int], before: list[int]) -> list[int]:
    return [t for t in now if t not in before]
