"""What `ctl exclude`, `ctl restore` and `ctl probe` of one provider do, and the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coderouterd.ctl.model import ProviderActionReply

if TYPE_CHECKING:
    from coderouterd.daemon import Daemon


async def provider_action(
    daemon: Daemon, action: str, provider: str, uid: int | None
) -> ProviderActionReply:
    """Take `provider` out (`exclude`), put it back (`restore`) or probe it now."""
    try:
        if action == "probe":
            return await _probe_now(daemon, provider, uid)
        change = daemon.healing.exclude if action == "exclude" else daemon.healing.restore
        changed = change(provider, uid=uid)
    except KeyError:
        known = ", ".join(p.name for p in daemon.holder.current.config.providers)
        message = f"no provider {provider!r} (configured: {known})"
        return ProviderActionReply(ok=False, provider=provider, action=action, message=message)
    if action == "exclude":
        done = "excluded: no profile tries it until `ctl restore`"
        message = done if changed else "already excluded by hand"
    else:
        # The operator says the backend is fixed: a context window it
        # told (or showed by cutting a prompt) may have grown too, and
        # its past answers no longer judge it.
        forgot = daemon.windows.forget(provider, via="manual", uid=uid)
        undrifted = daemon.drift.forget(provider)
        message = "restored" if changed else "was not excluded"
        if forgot:
            message += "; the context window it told is forgotten"
        if undrifted:
            message += "; its drift is forgotten"
        changed = changed or forgot or undrifted
    return ProviderActionReply(
        ok=True, provider=provider, action=action, changed=changed, message=message
    )


async def _probe_now(daemon: Daemon, provider: str, uid: int | None) -> ProviderActionReply:
    outcome, restored = await daemon.healing.probe_now(provider, uid=uid)
    took = f"{outcome.latency_ms:.0f} ms"
    status = "" if outcome.status is None else f" (status {outcome.status})"
    if outcome.ok:
        message = f"answered in {took}{status}" + ("; restored" if restored else "")
    else:
        message = f"failed after {took}: {outcome.reason}{status}"
    return ProviderActionReply(
        ok=True, provider=provider, action="probe", changed=restored, message=message
    )
