"""The catalogue of audited events: dotted type -> (human name, category)."""

from __future__ import annotations

EVENTS: dict[str, tuple[str, str]] = {
    "auth.login.succeeded": ("User Login Success", "authentication"),
    "auth.login.failed": ("User Login Failed", "authentication"),
    "auth.account.locked": ("Account Locked", "authentication"),
    "auth.account.unlocked": ("Account Unlocked", "authentication"),
    "auth.logout": ("User Logout", "authentication"),
    "auth.token.refreshed": ("Token Refreshed", "authentication"),
    "auth.token.reuse_detected": ("Refresh Token Reuse Detected", "security"),
    "auth.token.rejected": ("Token Rejected", "security"),
    "auth.password.changed": ("Password Changed", "authentication"),
    "auth.mfa.setup_started": ("MFA Setup Started", "authentication"),
    "auth.mfa.enabled": ("MFA Enabled", "authentication"),
    "auth.mfa.disabled": ("MFA Disabled", "authentication"),
    "auth.mfa.failed": ("MFA Failed", "authentication"),
    "auth.mfa.recovery_code_used": ("Recovery Code Used", "authentication"),
    "auth.rate_limited": ("Rate Limit Exceeded", "security"),
    "user.created": ("User Created", "user_management"),
    "user.updated": ("User Updated", "user_management"),
    "user.role_changed": ("User Role Changed", "user_management"),
    "user.deactivated": ("User Deactivated", "user_management"),
    "user.reactivated": ("User Reactivated", "user_management"),
    "user.profile_updated": ("Profile Updated", "user_management"),
    "tenant.created": ("Tenant Created", "settings"),
    "tenant.updated": ("Setting Changed", "settings"),
    "tenant.deleted": ("Tenant Deactivated", "settings"),
    "api_key.created": ("API Key Created", "settings"),
    "api_key.revoked": ("API Key Revoked", "settings"),
    "audit.verified": ("Audit Log Verified", "security"),
    "device.compliance_changed": ("Device Compliance Changed", "compliance"),
    "agent.token_created": ("Agent Enrolment Token Created", "settings"),
    "agent.token_revoked": ("Agent Enrolment Token Revoked", "settings"),
    "agent.enrolled": ("Agent Enrolled", "device_management"),
    "agent.revoked": ("Agent Revoked", "device_management"),
    "device.created": ("Device Created", "device_management"),
    "device.updated": ("Device Updated", "device_management"),
    "device.deleted": ("Device Deleted", "device_management"),
    "webhook.created": ("Webhook Created", "integrations"),
    "webhook.updated": ("Webhook Updated", "integrations"),
    "webhook.deleted": ("Webhook Deleted", "integrations"),
    "webhook.tested": ("Webhook Test Sent", "integrations"),
    "webhook.failing": ("Webhook Marked Failing", "integrations"),
    "service.created": ("Service Created", "services"),
    "service.updated": ("Service Updated", "services"),
    "service.deleted": ("Service Deleted", "services"),
    "service.reviewed": ("Service Review Completed", "services"),
    "service.review_overdue": ("Service Review Overdue", "services"),
    "scan.started": ("Scan Started", "scans"),
    "scan.stopped": ("Scan Stopped", "scans"),
    "scan.completed": ("Scan Completed", "scans"),
    "scan.failed": ("Scan Failed", "scans"),
    "alert.created": ("Alert Raised", "alerts"),
    "alert.acknowledged": ("Alert Acknowledged", "alerts"),
    "alert.resolved": ("Alert Resolved", "alerts"),
    "agent.offline": ("Agent Went Offline", "device_management"),
    "cve.update_requested": ("CVE Feed Update Requested", "settings"),
    "report.requested": ("Report Requested", "compliance"),
    "report.generated": ("Report Generated", "compliance"),
    "report.failed": ("Report Generation Failed", "compliance"),
    "report.requeued": ("Report Generation Resumed", "compliance"),
}
CATEGORIES = sorted({category for _, category in EVENTS.values()})


def describe(event_type: str) -> tuple[str, str]:
    if event_type in EVENTS:
        return EVENTS[event_type]
    words = event_type.replace(".", " ").replace("_", " ").title()
    return words, event_type.split(".", 1)[0]
