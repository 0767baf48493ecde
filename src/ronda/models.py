"""Imports every domain's tables so Base.metadata is complete (Alembic and tests use it)."""

from ronda.agents.models import Agent, EnrollmentToken
from ronda.alerts.models import AgentOfflineMark, Alert
from ronda.api_keys.models import ApiKey
from ronda.audit.models import AuditHead, AuditLog
from ronda.auth.models import AuthSession, RecoveryCode, RefreshToken
from ronda.core.db import Base
from ronda.cve.models import CveCpe, CveImport, CveMatch, CveRecord, CveState
from ronda.devices.models import Device, DeviceCount, DeviceData, DeviceEvaluation, DevicePort
from ronda.probes.models import Probe
from ronda.reports.models import Report
from ronda.scans.models import Scan, ScanHost
from ronda.services.models import Service, ServiceReview
from ronda.sites.models import Site
from ronda.tenants.models import Tenant
from ronda.users.models import User
from ronda.webhooks.models import Webhook, WebhookDelivery

__all__ = [
    "Agent",
    "AgentOfflineMark",
    "Alert",
    "ApiKey",
    "AuditHead",
    "AuditLog",
    "AuthSession",
    "Base",
    "CveCpe",
    "CveImport",
    "CveMatch",
    "CveRecord",
    "CveState",
    "Device",
    "DeviceCount",
    "DeviceData",
    "DeviceEvaluation",
    "DevicePort",
    "EnrollmentToken",
    "Probe",
    "RecoveryCode",
    "RefreshToken",
    "Report",
    "Scan",
    "ScanHost",
    "Service",
    "ServiceReview",
    "Site",
    "Tenant",
    "User",
    "Webhook",
    "WebhookDelivery",
]
