"""The providers a request has still to try, and whose attempt starts next.

Each provider's budget is asked about again as its turn comes: the spend may
have reached the budget after the plan was made, while the request waited
for a slot or tried the providers before. It is the budget of the month the
request arrived in, the month its spend is filed under, whenever the turn
comes. So is whether it is out of rotation (plan.rotation_skip): the
operator or self-healing may have taken it out meanwhile. A soft reason
(plan.is_soft) skips it only while another provider is left that nothing
skips, or one was tried: as in the plan, soft reasons never leave a request
nothing to try. So the providers the plan skipped for soft reasons are kept
in reserve: when the queue runs out with no attempt started on a provider
nothing skipped, they are asked about again and sorted out as a plan made
now would (plan.sort_out): those nothing skips are tried, else those only
soft reasons skip; one a hard reason skips now (taken out by hand, its
budget spent) stays out. A provider whose slots (max_concurrent) are all
taken is tried after the rest; when every one left is busy, the request
waits in line at each and takes whichever frees a slot first.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Sequence

from coderouterd.clock import Clock
from coderouterd.config.model import ProviderConfig
from coderouterd.routing.plan import SKIP_BUSY, SKIP_CONTEXT, is_soft, sort_out
from coderouterd.routing.progress import Progress
from coderouterd.routing.slots import Gate, Slots

# The reason to skip a provider whose budget is spent for a request that
# arrived at the given wall time (its month's budget), or None.
BudgetCheck = Callable[[ProviderConfig, float], str | None]
# The reason a request's plan under the named profile skips the named
# provider taken out of rotation as of now (plan.rotation_skip), or None.
RotationCheck = Callable[[str, str], str | None]
# Waits for the first of the gates to give a slot; returns its index.
SlotWait = Callable[[Sequence[Gate]], Awaitable[int]]


class Lineup:
    def __init__(
        self,
        progress: Progress,
        *,
        arrived: float,
        clock: Clock,
        slots: Slots,
        budget_spent: BudgetCheck,
        out_of_rotation: RotationCheck,
        wait: SlotWait,
    ) -> None:
        """`arrived`: when the request arrived (wall clock)."""
        plan = progress.plan
        self._queue = collections.deque(plan.attempts)
        # Skipped by the plan for soft reasons: tried when nothing else is left.
        self._reserve = list(plan.reserve)
        self._last_resort = plan.last_resort
        # A window is not asked about again at run time: the plan's reason stands.
        self._too_small = {s.provider for s in plan.skipped if s.reason == SKIP_CONTEXT}
        # Providers passed over for want of a free slot.
        self._passed: set[str] = set()
        self._progress = progress
        self._arrived = arrived
        self._clock = clock
        self._slots = slots
        self._budget_spent = budget_spent
        self._out_of_rotation = out_of_rotation
        self._wait = wait
        # An attempt started on a provider nothing skipped: a soft reason may skip the rest.
        self._held = False

    def __bool__(self) -> bool:
        return bool(self._queue) or (bool(self._reserve) and not self._held)

    async def next(self) -> tuple[ProviderConfig, Gate | None] | None:
        """The provider whose attempt starts now, taken from the queue with its
        slot (None: it has no limit); None when the one at the head is passed
        over: its budget spent, out of rotation, or busy (then tried after
        the rest), or when the queue ran out and the reserve refills it."""
        progress, queue = self._progress, self._queue
        if not queue:
            self._draw_reserve()
            return None
        provider = queue.popleft()
        name = provider.name
        reason, fit = self._passed_over(provider)
        if reason is not None:
            self._pass_over(provider, reason)
            return None
        gate = self._slots.kept(name)
        if gate is None or gate.take_now():
            self._held |= fit
            progress.start_attempt(name)
            return provider, gate
        if queue and name not in self._passed:
            # The next provider may answer now; this one is tried after the rest.
            progress.skip(name, SKIP_BUSY)
            self._passed.add(name)
            queue.append(provider)
            return None
        provider, gate, queued_at = await self._first_free(provider)
        # While this one waited, the requests answered may have spent the
        # budget, and the provider may have been taken out of rotation.
        reason, fit = self._passed_over(provider)
        if reason is not None:
            gate.give_back()
            self._pass_over(provider, reason)
            return None
        self._held |= fit
        progress.start_attempt(provider.name, queued_at=queued_at)
        return provider, gate

    def _pass_over(self, provider: ProviderConfig, reason: str) -> None:
        """Skip `provider` for `reason`; one a soft reason skips waits in
        reserve, for when the rest are skipped for hard reasons."""
        self._progress.skip(provider.name, reason)
        if is_soft(reason):
            self._reserve.append(provider)

    def _passed_over(self, provider: ProviderConfig) -> tuple[str | None, bool]:
        """Why `provider` is passed over as its turn comes (None: it is tried),
        and whether nothing would skip it."""
        reason = self._skipped_for(provider)
        if reason is None:
            return None, True
        if is_soft(reason) and not self._another_left():
            return None, False
        return reason, False

    def _skipped_for(self, provider: ProviderConfig) -> str | None:
        """The plan's reason to skip `provider` as of now: its budget spent,
        out of rotation under the request's profile, or its window smaller
        than the prompt; None if there is none."""
        spent = self._budget_spent(provider, self._arrived)
        if spent is not None:
            return spent
        out = self._out_of_rotation(self._progress.plan.profile, provider.name)
        if out is None and provider.name in self._too_small:
            return SKIP_CONTEXT
        return out

    def _another_left(self) -> bool:
        """Whether the request was sent to, or has yet to try (in the queue or
        the reserve), a provider nothing skips: never so once the providers
        tried are the last resort."""
        if self._last_resort:
            return False
        left = (*self._queue, *self._reserve)
        return self._held or any(self._skipped_for(p) is None for p in left)

    def _draw_reserve(self) -> None:
        """The queue ran out with no attempt started on a provider nothing
        skipped: the reserve's providers are sorted out as a plan made now
        would sort them. Each is reported by what it meets now: its earlier
        skip gives way to its attempt, or to the reason that skips it now;
        those soft reasons skip while another is tried stay in reserve."""
        reserve = {p.name: p for p in self._reserve}
        checked = [(name, self._skipped_for(p)) for name, p in reserve.items()]
        tried, skipped, self._last_resort = sort_out(checked)
        self._queue.extend(reserve[name] for name in tried)
        self._reserve = [reserve[s.provider] for s in skipped if is_soft(s.reason)]
        now = {s.provider: s.reason for s in skipped}
        for name in reserve:
            self._progress.reskip(name, now.get(name))

    async def _first_free(self, provider: ProviderConfig) -> tuple[ProviderConfig, Gate, float]:
        """Whichever of `provider` and the rest of the queue (every one of them
        passed over as busy) frees a slot first, waited for in line at each,
        its slot taken, and when the wait began; the others keep their places
        in the queue."""
        queue = self._queue
        busy = [(p, g) for p in (provider, *queue) if (g := self._slots.kept(p.name)) is not None]
        queued_at = self._clock.monotonic()
        self._progress.waiting([p.name for p, _ in busy])
        chosen, gate = busy[await self._wait([g for _, g in busy])]
        if chosen is not provider:
            queue.remove(chosen)
            queue.appendleft(provider)
        return chosen, gate, queued_at
