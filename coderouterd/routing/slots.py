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

A Gate is kept per provider name for the daemon's life, so requests begun
under one config generation and a reloaded one share it; a reload changes
its limit in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence

from coderouterd.config.model import ProviderConfig
from coderouterd.tasks import spawn


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
    """The gates of the providers that have a `max_concurrent`."""

    def __init__(self) -> None:
        self._gates: dict[str, Gate] = {}

    def configure(self, providers: Iterable[ProviderConfig]) -> None:
        """Apply the config's limits; a provider that lost its limit stops
        being gated (slots its requests hold are given back to a gate no
        one else uses)."""
        limits = {p.name: p.max_concurrent for p in providers if p.max_concurrent is not None}
        for name in list(self._gates):
            if name not in limits:
                del self._gates[name]
        for name, limit in limits.items():
            gate = self._gates.get(name)
            if gate is None:
                self._gates[name] = Gate(limit)
            elif gate.limit != limit:
                gate.set_limit(limit)

    def gate(self, provider: str) -> Gate | None:
        return self._gates.get(provider)

    @contextlib.asynccontextmanager
    async def held(self, provider: str) -> AsyncIterator[None]:
        """A slot of `provider` (if it has a limit) for the block, waited for."""
        gate = self._gates.get(provider)
        if gate is None:
            yield
            return
        await gate.take()
        try:
            yield
        finally:
            gate.give_back()
