"""Imports every domain's tables so Base.metadata is complete (Alembic and tests use it)."""

from ronda.agents.models import Agent, EnrollmentToken
from ronda.api_keys.models import ApiKey
from ronda.audit.models import AuditHead, AuditLog
from ronda.auth.models import AuthSession, RecoveryCode, RefreshToken
from ronda.core.db import Base
from ronda.devices.models import Device, DeviceCount, DeviceData, DeviceEvaluation, DevicePort
from ronda.tenants.models import Tenant
from ronda.users.models import User

__all__ = [
    "Agent",
    "ApiKey",
    "AuditHead",
    "AuditLog",
    "AuthSession",
    "Base",
    "Device",
    "DeviceCount",
    "DeviceData",
    "DeviceEvaluation",
    "DevicePort",
    "EnrollmentToken",
    "RecoveryCode",
    "RefreshToken",
    "Tenant",
    "User",
]
