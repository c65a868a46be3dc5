"""How many requests a provider is sent at once (`max_concurrent`).

A local server often answers one request at a time (llama.cpp with one
slot, Ollama with OLLAMA_NUM_PARALLEL=1, LM Studio) and queues the rest
inside itself, where a queued request's first-byte timeout runs while
another one is answered, and a probe behind a long answer looks like a dead
backend. With a limit, the daemon keeps the queue instead: the engine
passes a provider with no free slot over for the next one in the chain
(coming back to it when they all fail), and waits for a slot, first come
first served, when none is left to try: in the lines of all the providers
it passed over at once (take_first), taking whichever slot comes first. A
probe waits for a slot too.

A Gate is kept per provider name for the daemon's life once the provider
has a limit, so requests begun under one config generation and a reloaded
one share it and a slot is always given back where it was taken: a reload
changes its limit in place. A provider that loses its limit (or leaves the
config) keeps its gate with no limit: the requests waiting go at once, and
those running (and those sent since) are still counted, so that a limit a
later reload brings back sees who runs. A provider that never had a limit
has no gate, which keeps its requests free of any cost here; the requests
it runs when a reload first gives it one are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence

from coderouterd.config.model import ProviderConfig
from coderouterd.tasks import spawn

# The limit of a gate whose provider has none: no count reaches it, so the gate
# counts and never blocks with no branch on the request path, and `limit` stays
# the int that ctl status reads from a gated one.
NO_LIMIT = sys.maxsize


class Gate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(not w.done() for w in self._waiters)

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody is waiting for it."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        return False

    async def take(self) -> None:
        """Take a slot, waiting in line for one. Cancelled while waiting, it
        leaves the line; cancelled just as a slot came, it passes it on."""
        if self.take_now():
            return
        granted = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.cancelled():
                with contextlib.suppress(ValueError):  # _grant may have dropped it
                    self._waiters.remove(granted)
            else:
                self.give_back()
            raise

    def give_back(self) -> None:
        self.in_use -= 1
        self._grant()

    def set_limit(self, limit: int) -> None:
        """A new limit for the requests running too: a lower one lets nobody
        in until enough of them are done; a higher one, or NO_LIMIT, lets the
        line in at once."""
        self.limit = limit
        self._grant()

    def _grant(self) -> None:
        while self._waiters and self.in_use < self.limit:
            granted = self._waiters.popleft()
            if not granted.done():  # a cancelled waiter is on its way out
                self.in_use += 1
                granted.set_result(None)


async def take_first(gates: Sequence[Gate]) -> int:
    """Wait in line at every gate at once; return the index of the first
    (in order) whose slot came, holding that slot and no other.

    Each other line is left: a place not yet served is given up, a slot
    that came meanwhile (or as this was cancelled) is given back to the
    next in line.
    """
    if len(gates) == 1:
        await gates[0].take()
        return 0
    lines = [spawn(g.take(), name="slot-line") for g in gates]
    winner = -1
    try:
        await asyncio.wait(lines, return_when=asyncio.FIRST_COMPLETED)
        winner = next(i for i, line in enumerate(lines) if _holds(line))
    finally:
        for i, (gate, line) in enumerate(zip(gates, lines, strict=True)):
            if i != winner:
                line.cancel()
                line.add_done_callback(functools.partial(_give_back_if_held, gate))
    return winner


def _holds(line: asyncio.Future[None]) -> bool:
    return line.done() and not line.cancelled() and line.exception() is None


def _give_back_if_held(gate: Gate, line: asyncio.Future[None]) -> None:
    # A take() cancelled while in line gives back a slot granted meanwhile
    # itself; one that had returned already holds it.
    if _holds(line):
        gate.give_back()


class Slots:
    """The gates of the providers that have or had a `max_concurrent`."""

    def __init__(self) -> None:
        # Never emptied: a request may hold a slot of any of them. One small
        # gate per provider name ever given a limit.
        self._gates: dict[str, Gate] = {}

    def configure(self, providers: Iterable[ProviderConfig]) -> None:
        """Apply the config's limits to the gates in place; a provider that
        lost its limit, or is gone, keeps its gate with NO_LIMIT."""
        limits = {p.name: p.max_concurrent for p in providers}
        for name, gate in self._gates.items():
            limit = limits.get(name)
            gate.set_limit(NO_LIMIT if limit is None else limit)
        for name, limit in limits.items():
            if limit is not None and name not in self._gates:
                self._gates[name] = Gate(limit)

    def gate(self, provider: str) -> Gate | None:
        """The gate of `provider` if it has a limit now: its slots as
        `ctl status` and /metrics show them."""
        gate = self._gates.get(provider)
        return None if gate is None or gate.limit == NO_LIMIT else gate

    def kept(self, provider: str) -> Gate | None:
        """Where a request to `provider` takes its slot: the gate kept for it
        if it has or had a limit (with none now it only counts); None if it
        never had one."""
        return self._gates.get(provider)

    @contextlib.asynccontextmanager
    async def held(self, provider: str) -> AsyncIterator[None]:
        """A slot of `provider` (if it has or had a limit) for the block, waited for."""
        gate = self._gates.get(provider)
        if gate is None:
            yield
            return
        await gate.take()
        try:
            yield
        finally:
            gate.give_back()
