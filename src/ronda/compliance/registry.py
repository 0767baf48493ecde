"""The registry of evidence queries the framework catalogues name: key -> async function(ctx) -> Evidence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ronda.compliance import evidence_devices as devices
from ronda.compliance import evidence_identity as identity
from ronda.compliance import evidence_network as network
from ronda.compliance import evidence_services as services
from ronda.compliance.context import EvidenceContext
from ronda.compliance.types import Evidence

EvidenceQuery = Callable[[EvidenceContext], Awaitable[Evidence]]

EVIDENCE: dict[str, EvidenceQuery] = {
    "device_compliance": devices.device_compliance,
    "disk_encryption": devices.disk_encryption,
    "firewall": devices.firewall,
    "screen_lock": devices.screen_lock,
    "os_patching": devices.os_patching,
    "antivirus": devices.antivirus,
    "asset_inventory": devices.asset_inventory,
    "users_mfa": identity.users_mfa,
    "privileged_mfa": identity.privileged_mfa,
    "inactive_accounts": identity.inactive_accounts,
    "api_key_hygiene": identity.api_key_hygiene,
    "audit_chain": identity.audit_chain,
    "audit_activity": identity.audit_activity,
    "service_reviews": services.service_reviews,
    "service_sso_mfa": services.service_sso_mfa,
    "service_encryption": services.service_encryption,
    "service_logging": services.service_logging,
    "supplier_inventory": services.supplier_inventory,
    "risky_services": network.risky_services,
    "cleartext_services": network.cleartext_services,
    "network_scans": network.network_scans,
    "vulnerabilities": network.vulnerabilities,
}
