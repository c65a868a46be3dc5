"""Monthly spend per provider against its budget (pure).

Totals are keyed by UTC month, so a new month starts from zero by itself:
nothing has to be reset at midnight, and the totals of a past month stay
readable. The book is loaded from the database at start-up and updated in
memory as requests finish; the database keeps the durable copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from coderouterd.config.model import ProviderConfig

THRESHOLDS = (80, 100)
SKIP_BUDGET = "budget_exceeded"


class BudgetBook:
    def __init__(self, totals: Mapping[tuple[str, str], float] | None = None) -> None:
        self._spent: dict[tuple[str, str], float] = dict(totals or {})

    def spent(self, provider: str, month: str) -> float:
        return self._spent.get((provider, month), 0.0)

    def add(self, provider: str, month: str, usd: float, budget: float | None) -> list[int]:
        """Record spend; return the thresholds (percent of budget) this crossed."""
        before = self.spent(provider, month)
        after = before + usd
        self._spent[(provider, month)] = after
        if not budget:
            return []
        return [t for t in THRESHOLDS if before < budget * t / 100 <= after]

    def exhausted(self, provider: ProviderConfig, month: str) -> bool:
        budget = provider.cost.monthly_budget_usd if provider.cost else None
        # Spending exactly the budget exhausts it: the next call would go over.
        return budget is not None and self.spent(provider.name, month) >= budget

    def blocked(self, providers: Iterable[ProviderConfig], month: str) -> dict[str, str]:
        """Providers the plan must skip this month, with the reason."""
        return {p.name: SKIP_BUDGET for p in providers if self.exhausted(p, month)}
