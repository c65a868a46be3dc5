"""The one place that creates asyncio tasks.

Every task gets a name and a strong reference until it finishes, so none is
garbage-collected mid-flight and shutdown can cancel whatever is left.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_live: set[asyncio.Task[Any]] = set()

# The reason a task is cancelled with when the daemon abandons it at
# shutdown, so the code being cancelled can tell that from a client leaving.
SHUTDOWN = "coderouterd.shutdown"
# What the request log says of a request so abandoned.
ABANDONED_AT_SHUTDOWN = "abandoned at shutdown"

# Why each task was cancelled, recorded before the cancel itself: the message
# a CancelledError carries can be lost. A task whose own asyncio.timeout fires
# in the same loop step as the cancel sees only that timeout's bare
# CancelledError.
_reasons: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = weakref.WeakKeyDictionary()


def cancel_with(task: asyncio.Task[Any], reason: str) -> None:
    """Cancel `task` for a reason the code running in it can read back."""
    _reasons[task] = reason
    task.cancel(reason)


def cancelled_by_shutdown(exc: BaseException) -> bool:
    """Whether `exc`, caught in the task it cancels, is the daemon abandoning
    that task at shutdown; any other cancellation is the client leaving."""
    task = asyncio.current_task()
    return (
        isinstance(exc, asyncio.CancelledError)
        and task is not None
        and _reasons.get(task) == SHUTDOWN
    )


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _live.add(task)
    task.add_done_callback(_live.discard)
    return task


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a task and wait for it to finish, swallowing its outcome."""
    if not task.done():
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
    except Exception:  # noqa: S110 - the caller abandoned this result on purpose
        pass


def live_tasks() -> frozenset[asyncio.Task[Any]]:
    return frozenset(_live)
