"""Imports every domain's tables so Base.metadata is complete (Alembic and tests use it)."""

from ronda.api_keys.models import ApiKey
from ronda.audit.models import AuditHead, AuditLog
from ronda.auth.models import AuthSession, RecoveryCode, RefreshToken
from ronda.core.db import Base
from ronda.tenants.models import Tenant
from ronda.users.models import User

__all__ = ["ApiKey", "AuditHead", "AuditLog", "AuthSession", "Base", "RecoveryCode", "RefreshToken", "Tenant", "User"]
