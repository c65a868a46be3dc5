"""The providers a request has still to try, and whose attempt starts next.

Each provider's budget is asked about again as its turn comes: the spend may
have reached the budget after the plan was made, while the request waited
for a slot or tried the providers before. It is the budget of the month the
request arrived in, the month its spend is filed under, whenever the turn
comes. So is whether it is out of rotation (plan.rotation_skip): the
operator or self-healing may have taken it out meanwhile. A soft reason
(plan.is_soft) skips it only while another provider is left that nothing
skips, or one was tried: as in the plan, soft reasons never leave a request
nothing to try. A provider whose slots (max_concurrent) are all taken is
tried after the rest; when every one left is busy, the request waits in line
at each and takes whichever frees a slot first.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Sequence

from coderouterd.clock import Clock
from coderouterd.config.model import ProviderConfig
from coderouterd.routing.plan import SKIP_BUSY, is_soft
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
        self._queue = collections.deque(progress.plan.attempts)
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
        return bool(self._queue)

    async def next(self) -> tuple[ProviderConfig, Gate | None] | None:
        """The provider whose attempt starts now, taken from the queue with its
        slot (None: it has no limit); None when the one at the head is passed
        over: its budget spent, out of rotation, or busy (then tried after
        the rest)."""
        progress, queue = self._progress, self._queue
        provider = queue.popleft()
        name = provider.name
        reason, fit = self._passed_over(provider)
        if reason is not None:
            progress.skip(name, reason)
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
            progress.skip(provider.name, reason)
            return None
        self._held |= fit
        progress.start_attempt(provider.name, queued_at=queued_at)
        return provider, gate

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
        """The plan's reason to skip `provider` as of now: its budget spent, or
        out of rotation under the request's profile; None if there is none."""
        spent = self._budget_spent(provider, self._arrived)
        if spent is not None:
            return spent
        return self._out_of_rotation(self._progress.plan.profile, provider.name)

    def _another_left(self) -> bool:
        """Whether the request was sent to, or has yet to try, a provider
        nothing skips: never so when the plan was the last resort already."""
        if self._progress.plan.last_resort:
            return False
        return self._held or any(self._skipped_for(p) is None for p in self._queue)

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
