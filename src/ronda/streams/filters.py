"""Which events a stream carries to a caller: its tenant, its permissions, the stream, `events=`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ronda.core.events import EVENT_TYPES, Event, wire_name
from ronda.core.principal import Principal
from ronda.streams.auth import CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, StreamRefused

# The permission an event needs, by its domain (the part before the first dot).
DOMAIN_PERMISSIONS = {
    "scan": "scans_read", "device": "devices_read", "agent": "devices_read", "alert": "alerts_read",
    "cve": "cve_read", "service": "services_read", "report": "reports_read", "webhook": "webhooks_manage",
}
# The user role sees only what it owns (as in the REST API): these events carry the owner.
OWNER_KEYS = ("user_id", "owner_id")
TERMINAL_SCAN_EVENTS = ("scan.completed", "scan.failed", "scan.cancelled")
BY_NAME: dict[str, str] = {**{t: t for t in EVENT_TYPES}, **{wire_name(t): t for t in EVENT_TYPES}}


def parse_filter(raw: str | None, allowed: tuple[str, ...]) -> frozenset[str] | None:
    """`events=` as bus types; None when absent. Unknown names, or names this stream never carries,
    refuse the connection with a reason naming them."""
    if raw is None or not raw.strip():
        return None
    wanted: set[str] = set()
    for name in (part.strip() for part in raw.split(",")):
        if not name:
            continue
        bus_type = BY_NAME.get(name)
        if bus_type is None:
            raise StreamRefused(CLOSE_BAD_REQUEST, f"Unknown event name in events=: {name}")
        if bus_type.split(".", 1)[0] not in allowed:
            raise StreamRefused(CLOSE_BAD_REQUEST, f"events=: {name} is not carried by this stream")
        wanted.add(bus_type)
    return frozenset(wanted)


@dataclass(frozen=True, slots=True)
class Selector:
    principal: Principal
    domains: tuple[str, ...]  # the event domains this stream carries
    wanted: frozenset[str] | None
    all_tenants: bool = False
    scan_id: str | None = None

    def permitted(self, event: Event) -> bool:
        domain = event.type.split(".", 1)[0]
        permission = DOMAIN_PERMISSIONS.get(domain)
        if permission is None:
            return self.principal.is_admin
        if permission not in self.principal.permissions:
            return False
        if self.principal.role == "user" and domain != "alert":
            return any(event.data.get(key) == self.principal.user_id for key in OWNER_KEYS)
        return True

    def wants(self, event: Event) -> bool:
        if not self.all_tenants and event.tenant_id != self.principal.tenant_id:
            return False
        if event.type.split(".", 1)[0] not in self.domains:
            return False
        if self.wanted is not None and event.type not in self.wanted:
            return False
        if self.scan_id is not None and event.data.get("scan_id") != self.scan_id:
            return False
        return self.permitted(event)


def check_permission(principal: Principal, permission: str | None) -> None:
    if permission is not None and permission not in principal.permissions:
        raise StreamRefused(CLOSE_FORBIDDEN, f"Missing permission: {permission}")


def message(event: Event) -> dict[str, Any]:
    from ronda.core.timeutil import iso

    return {"event": wire_name(event.type), "timestamp": iso(event.occurred_at), "data": event.data}
